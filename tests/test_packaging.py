"""Real packaging: wheels of the core and the plugins, installed into a fresh venv.

Editable installs can hide a missing package-data entry or entry point; this
test builds the wheels, installs them where nothing else is installed, and
checks that plugins come and go with their distributions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ["zoo-linear", "zoo-cnn", "zoo-rnn", "zoo-transformer"]

pytestmark = pytest.mark.slow


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(project: Path, out: Path) -> None:
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--quiet", "-w", out, project,
    )  # fmt: skip


def write_broken_plugin(root: Path) -> Path:
    """A distribution whose hook module fails to import: it must not take zoo down."""
    project = root / "zoo-broken"
    (project / "zoo_broken").mkdir(parents=True)
    (project / "zoo_broken" / "__init__.py").write_text("")
    (project / "zoo_broken" / "plugin.py").write_text("raise ImportError('missing libfoo')\n")
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "zoo-broken"
            version = "9.9"
            [project.entry-points.zoo]
            broken = "zoo_broken.plugin"
            """
        )
    )
    return project


def test_wheels_install_list_load_and_uninstall(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    for project in [ROOT, *(ROOT / "plugins" / p for p in PLUGINS)]:
        build_wheel(project, wheels)
    build_wheel(write_broken_plugin(tmp_path), wheels)
    names = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert names == [
        "zoo_broken",
        "zoo_cnn",
        "zoo_core",
        "zoo_linear",
        "zoo_rnn",
        "zoo_transformer",
    ]
    # The plugin template ships in the core's wheel as package data.
    with zipfile.ZipFile(next(wheels.glob("zoo_core-*.whl"))) as wheel:
        templates = [n for n in wheel.namelist() if n.startswith("zoo_core/templates/plugin/")]
    assert "zoo_core/templates/plugin/{{package}}/plugin.py.tmpl" in templates
    assert "zoo_core/templates/plugin/gitignore.tmpl" in templates

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q"]
    zoo = venv / "bin" / "zoo"
    # The CPU build of torch lies on disk here; asking for it first keeps pip off CUDA builds.
    run(*pip, "install", "torch==2.13.0")
    run(*pip, "install", "--find-links", wheels, "zoo-core", *PLUGINS)

    listed = json.loads(run(zoo, "list", "--json").stdout)
    assert {m["name"]: m["plugin"] for m in listed} == {
        "linear_regression": "zoo-linear",
        "simple_cnn": "zoo-cnn",
        "simple_rnn": "zoo-rnn",
        "tiny_transformer": "zoo-transformer",
    }
    loaded = json.loads(run(zoo, "load", "simple_cnn", "--json").stdout)
    assert loaded["output_shape"] == [1, 10]
    saved = tmp_path / "cnn"
    run(zoo, "save", "simple_cnn", saved, "--seed", "1")
    assert json.loads(run(zoo, "load", saved, "--json").stdout)["source_kind"] == "directory"

    run(*pip, "install", "--no-index", "--find-links", wheels, "zoo-broken")
    plugins = {p["name"]: p for p in json.loads(run(zoo, "plugins", "--json").stdout)}
    assert plugins["zoo-broken"]["status"] == "broken"
    assert "missing libfoo" in plugins["zoo-broken"]["error"]
    still = run(zoo, "list")
    assert "zoo plugin zoo-broken is broken" in still.stderr
    assert "simple_cnn" in still.stdout

    run(*pip, "uninstall", "-y", "zoo-cnn", "zoo-broken")
    after = [m["name"] for m in json.loads(run(zoo, "list", "--json").stdout)]
    assert after == ["linear_regression", "simple_rnn", "tiny_transformer"]
    orphan = subprocess.run([zoo, "load", saved], capture_output=True, text=True)
    assert orphan.returncode == 1
    assert "pip install 'zoo-cnn>=0.1.0'" in orphan.stderr


def test_new_plugin_from_the_wheel_installs_editable_and_passes_its_checks(
    tmp_path: Path,
) -> None:
    """What a plugin author does, in a venv with nothing but the released core."""
    wheels = tmp_path / "wheels"
    build_wheel(ROOT, wheels)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q"]
    zoo = venv / "bin" / "zoo"
    run(*pip, "install", "torch==2.13.0")
    run(*pip, "install", "--find-links", wheels, "zoo-core[test]")

    project = tmp_path / "zoo-mlp"
    run(zoo, "new-plugin", "zoo-mlp", "--model", "tiny_mlp", "-o", project)
    run(*pip, "install", "--no-build-isolation", "-e", project)
    listed = json.loads(run(zoo, "list", "--json").stdout)
    assert [(m["name"], m["plugin"]) for m in listed] == [("tiny_mlp", "zoo-mlp")]
    checked = json.loads(run(zoo, "check", "--json").stdout)
    assert checked["passed"] is True
    assert [m["model"] for m in checked["models"]] == ["tiny_mlp"]
    tests = run(
        venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project
    )
    assert " passed" in tests.stdout
    # Editable: an edit to the project shows without reinstalling.
    plugin = project / "zoo_mlp" / "plugin.py"
    plugin.write_text(plugin.read_text().replace("a two-layer perceptron", "an edited MLP"))
    assert "an edited MLP" in run(zoo, "list").stdout
