"""The plugin author's kit through the real `zoo` command: `zoo check` and `zoo new-plugin`,
up to a generated plugin installed by pip and passing its checks and its own tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_zoo
from tests.test_cli import imported_modules

BUNDLED = ["linear_regression", "simple_cnn", "simple_rnn", "tiny_transformer"]


def fixture_env(*modules: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(FIXTURES), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "ZOO_PLUGINS": ",".join(modules)}


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert text in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_check_passes_every_installed_model() -> None:
    result = run_zoo("check", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "PLUGIN", "RESULT", "CHECKS"]
    rows = {line.split()[0]: line.split()[2] for line in lines[1:] if line.strip()}
    assert rows == dict.fromkeys(BUNDLED, "pass")


@pytest.mark.slow
def test_check_json_names_and_plugins() -> None:
    result = run_zoo("check", "simple_cnn", "--plugin", "zoo-rnn", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["passed"] is True and data["plugins"] == []
    assert [m["model"] for m in data["models"]] == ["simple_rnn", "simple_cnn"]
    checks = {c["check"]: c for c in data["models"][1]["checks"]}
    assert checks["save-load-exact"]["status"] == "pass"
    assert set(checks["gradients"]) == {"check", "status", "message", "reason", "hint", "seconds"}


@pytest.mark.slow
def test_check_reports_each_failure_with_why_and_fix() -> None:
    result = run_zoo("check", "unused_layer", "good", "-v", **fixture_env("bad_models"))
    assert_clean_error(result, 1, "zoo: error: 1 of 2 model(s) failed the zoo checks")
    rows = {line.split()[0]: line.split()[2] for line in result.stdout.splitlines()[1:3]}
    assert rows == {"unused_layer": "FAIL", "good": "pass"}
    assert "unused_layer: gradients FAILED: 2 trainable parameter(s) got no gradient" in (
        result.stdout
    )
    assert "  fix: use every layer in forward" in result.stdout
    # -v adds one row per check for each model.
    assert re.search(r"^  gradients +FAIL +2 trainable", result.stdout, re.M)
    assert re.search(r"^  save-load-exact +pass +", result.stdout, re.M)
    as_json = run_zoo("check", "unused_layer", "--json", **fixture_env("bad_models"))
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["passed"] is False
    failed = [c["check"] for c in data["models"][0]["checks"] if c["status"] == "fail"]
    assert failed == ["gradients"]


@pytest.mark.slow
def test_check_flags_a_hook_module_that_imports_torch() -> None:
    result = run_zoo("check", "--plugin", "imports_torch", **fixture_env("imports_torch"))
    assert_clean_error(result, 1, "1 of 1 model(s) failed")
    assert "heavy: hook-light FAILED: importing imports_torch and calling its hook" in result.stdout


@pytest.mark.slow
@pytest.mark.slow  # zoo check of every model: export, ONNX, compile and sharding of each
def test_an_incompatible_plugin_is_reported_by_plugins_list_and_check() -> None:
    env = fixture_env("future_api")
    needs = "needs plugin API 3, but zoo-core 0.1.0 provides plugin API 1 to 2"
    plugins = run_zoo("plugins", **env)
    assert plugins.returncode == 0
    assert f"future_api (future_api) is incompatible: {needs}" in plugins.stdout
    assert "zoo-core 0.1.0 provides plugin API 1 to 2" in plugins.stdout
    status = {p["name"]: p for p in json.loads(run_zoo("plugins", "--json", **env).stdout)}
    assert (status["future_api"]["status"], status["future_api"]["api_version"]) == (
        "incompatible",
        3,
    )
    assert status["zoo-cnn"]["api_version"] == 1
    listed = run_zoo("list", **env)
    assert listed.returncode == 0
    assert "zoo plugin future_api is incompatible" in listed.stderr
    assert "from_the_future" not in listed.stdout

    checked = run_zoo("check", "--plugin", "future_api", **env)
    assert_clean_error(checked, 1, "1 plugin(s) could not be loaded")
    assert f"future_api: plugin is incompatible: {needs}" in checked.stdout
    everything = run_zoo("check", "--json", timeout=600, **env)
    assert everything.returncode == 1
    data = json.loads(everything.stdout)
    assert [m["passed"] for m in data["models"]] == [True] * len(BUNDLED)
    assert data["plugins"][0]["status"] == "incompatible"
    assert_clean_error(
        run_zoo("load", "future_api:from_the_future", **env), 1, "is incompatible: needs"
    )


def test_check_usage_errors() -> None:
    assert_clean_error(run_zoo("check", "simple_cnx"), 1, "no model named 'simple_cnx'")
    assert_clean_error(run_zoo("check", "--plugin", "zoo-nope"), 1, "no zoo plugin named")
    disabled = run_zoo("check", "--plugin", "zoo-cnn", ZOO_DISABLE_PLUGINS="zoo-cnn")
    assert_clean_error(disabled, 1, "plugin zoo-cnn is disabled")


def test_help_lists_the_kit_and_new_plugin_never_imports_torch(tmp_path: Path) -> None:
    assert {"check", "new-plugin"} <= set(run_zoo("--help").stdout.split())
    result = run_zoo("new-plugin", "zoo-x", "-o", str(tmp_path / "x"), PYTHONPROFILEIMPORTTIME="1")
    assert result.returncode == 0, result.stderr
    modules = imported_modules(result)
    assert "zoo_core.kit.scaffold" in modules
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["new-plugin", "bad name"], "is not a valid distribution name"),
        (["new-plugin", "9lives"], "does not give a Python package name"),
        (["new-plugin", "zoo-ok", "--model", "Bad-Name"], "is not a valid model name"),
    ],
)
def test_new_plugin_rejects_bad_names(tmp_path: Path, args: list[str], text: str) -> None:
    assert_clean_error(run_zoo(*args, cwd=tmp_path), 2, text)
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    result = run_zoo("new-plugin", "zoo-mine", "-o", str(target))
    assert_clean_error(result, 1, "already exists and is not an empty directory")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no temporary left behind
    # An empty directory is fine: it becomes the project.
    (target / "keep.txt").unlink()
    assert run_zoo("new-plugin", "zoo-mine", "-o", str(target)).returncode == 0
    assert (target / "zoo_mine" / "plugin.py").is_file()


def test_new_plugin_writes_a_complete_project(tmp_path: Path) -> None:
    result = run_zoo("new-plugin", "zoo-demo-net", "--model", "demo_net", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "zoo-demo-net"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [
        ".gitignore",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "tests/test_zoo_demo_net.py",
        "zoo_demo_net/__init__.py",
        "zoo_demo_net/model.py",
        "zoo_demo_net/plugin.py",
        "zoo_demo_net/py.typed",
    ]
    pyproject = (project / "pyproject.toml").read_text()
    assert 'dependencies = ["zoo-core>=0.1,<0.2"]' in pyproject
    assert 'demo-net = "zoo_demo_net.plugin"' in pyproject
    plugin = (project / "zoo_demo_net" / "plugin.py").read_text()
    assert "ZOO_PLUGIN_API = 2" in plugin
    assert 'target="zoo_demo_net.model:DemoNet"' in plugin
    assert "class DemoNetConfig:" in (project / "zoo_demo_net" / "model.py").read_text()
    assert "{{" not in "".join((project / f).read_text() for f in files)
    assert "pip install -e zoo-demo-net" in result.stdout


@pytest.mark.slow
def test_a_generated_plugin_installs_lists_and_passes_zoo_check_and_its_tests(
    tmp_path: Path,
) -> None:
    project = tmp_path / "zoo-demo"
    assert run_zoo("new-plugin", "zoo-demo", "-o", str(project)).returncode == 0
    # A real pip install of the project, into a directory put on PYTHONPATH: the
    # test environment itself is never changed, so other tests still see exactly
    # the bundled plugins whatever happens here.
    site = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-build-isolation", "--no-deps", "--target", str(site), str(project)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    listed = {m["name"]: m for m in json.loads(run_zoo("list", "--json", **env).stdout)}
    assert listed["demo"]["plugin"] == "zoo-demo"
    assert sorted(listed) == sorted([*BUNDLED, "demo"])
    checked = run_zoo("check", "--plugin", "zoo-demo", "--json", **env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)["models"][0]
    assert (report["model"], report["passed"], report["counts"]["fail"]) == ("demo", True, 0)
    # The one warning: the scaffold's placeholder summary and model are still there.
    warned = [c for c in report["checks"] if c["status"] == "warn"]
    assert [c["check"] for c in warned] == ["scaffold-placeholders"]

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=project,
        env={**os.environ, **env},
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout
