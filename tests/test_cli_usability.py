"""What a daily user of the command line reads: help, the guide, load times, new-plugin warnings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_zoo

# click's names for its parameter types: what a metavar shows when nobody chose a word.
CLICK_TYPE_NAMES = {"TEXT", "INTEGER", "FLOAT", "BOOLEAN", "PATH", "FILENAME", "UUID", "CHOICE"}


def commands() -> list[str]:
    lines = run_zoo("--help", COLUMNS="80").stdout.split("Commands:\n", 1)[1].splitlines()
    return [line.split()[0] for line in lines if line.strip()]


def test_help_shows_every_summary_whole_in_80_columns() -> None:
    result = run_zoo("--help", COLUMNS="80")
    assert result.returncode == 0
    listing = result.stdout.split("Commands:\n", 1)[1]
    rows = [line for line in listing.splitlines() if line.strip()]
    assert len(rows) >= 12
    for row in rows:
        assert not row.rstrip().endswith("..."), row
        assert len(row) <= 80, row


def test_metavars_read_as_words() -> None:
    for name in commands():
        result = run_zoo(name, "--help", COLUMNS="100")
        assert result.returncode == 0, result.stderr
        text = result.stdout
        shown = set(re.findall(r"\b[A-Z][A-Z_]{2,}\b", text))
        assert not shown & CLICK_TYPE_NAMES, (name, shown & CLICK_TYPE_NAMES)
        assert "DIRectory" not in text
        assert "docs/plugin-authors.md" not in text


def test_docs_prints_where_the_installed_guide_is() -> None:
    result = run_zoo("docs")
    assert result.returncode == 0, result.stderr
    guide = Path(result.stdout.strip())
    assert guide.is_file()
    assert "zoo check" in guide.read_text(encoding="utf-8")
    assert "'zoo docs'" in run_zoo("check", "--help").stdout


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from zoo_core import create_model, save_model

    path = tmp_path_factory.mktemp("timings") / "cnn"
    save_model(create_model("simple_cnn", seed=0), path)
    return path


def test_load_json_times_ready_and_first_forward_separately(saved) -> None:
    mapped = json.loads(run_zoo("load", str(saved), "--json").stdout)
    cast = json.loads(run_zoo("load", str(saved), "--dtype", "float16", "--json").stdout)
    fresh = json.loads(run_zoo("load", "simple_cnn", "--json").stdout)
    for data in (mapped, cast, fresh):
        assert isinstance(data["load_seconds"], float) and data["load_seconds"] > 0
        assert isinstance(data["forward_seconds"], float) and data["forward_seconds"] > 0
    assert (mapped["memory_mapped"], cast["memory_mapped"], fresh["memory_mapped"]) == (
        True,
        False,
        False,
    )


def test_load_summary_says_what_each_time_covers(saved) -> None:
    mapped = run_zoo("load", str(saved))
    assert mapped.returncode == 0, mapped.stderr
    text = mapped.stdout
    assert re.search(r"ready in +\d+\.\d{3} s \(weights memory-mapped, read from disk during", text)
    assert re.search(r"first forward +\d+\.\d{3} s \(\(1, 3, 28, 28\) float32 -> \(1, 10\)\)", text)
    assert "load time" not in text
    cast = run_zoo("load", str(saved), "--dtype", "bfloat16").stdout
    assert "(weights read into memory on cpu)" in cast
    assert "(built and initialised)" in run_zoo("load", "simple_cnn").stdout


def test_new_plugin_warns_about_names_already_taken(tmp_path) -> None:
    result = run_zoo("new-plugin", "zoo-cnn", "-o", str(tmp_path / "mine"))
    assert result.returncode == 0, result.stderr
    assert "zoo: warning: a distribution named zoo-cnn 0.1.0 is already installed" in result.stderr
    assert "zoo: warning: a module named zoo_cnn is already importable" in result.stderr
    assert (tmp_path / "mine" / "pyproject.toml").is_file()  # a warning, not a refusal

    (tmp_path / "zoo_mlp").mkdir()
    result = run_zoo("new-plugin", "zoo-mlp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"warning: .*zoo_mlp already exists next to the new project", result.stderr)

    result = run_zoo("new-plugin", "zoo-unheard-of", "-o", str(tmp_path / "fresh"))
    assert result.returncode == 0 and result.stderr == ""
