"""Messages that must not mislead, configs that must not crash (issue 8 items 5, 10-12)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo_core
from tests.conftest import run_zoo
from zoo_core.api import open_model
from zoo_core.errors import ConfigError, ModelNotFoundError, WeightsError
from zoo_core.plugins.contract import ModelSpec
from zoo_core.sources.verify import verify_directory


def _edit_config(path, **fields) -> None:
    record = json.loads((path / "config.json").read_text())
    record["config"].update(fields)
    (path / "config.json").write_text(json.dumps(record))


# Item 5: what a config can make zoo allocate --------------------------------------------------


def test_a_config_cannot_make_a_load_compute_gigabytes_no_file_holds(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("tiny_transformer"), tmp_path / "m")
    _edit_config(path, max_len=16_000_000)  # within the config's bound: 4 GB of positions
    with pytest.raises(WeightsError, match="buffers that no file holds; the limit is 1073741824"):
        zoo_core.load_model(path)
    problems = [str(p) for p in verify_directory(path)]
    assert any("buffers that no file holds" in p for p in problems), problems
    result = run_zoo("load", str(path))
    assert result.returncode == 1 and "ZOO_MAX_BUFFER_BYTES" in result.stderr
    # A genuine model needing more loads once the documented limit is raised.
    _edit_config(path, max_len=4096)
    result = run_zoo("load", str(path), ZOO_MAX_BUFFER_BYTES="100000")
    assert result.returncode == 1 and "the limit is 100000" in result.stderr
    assert zoo_core.load_model(path).config.max_len == 4096


# Item 10: internal errors that must be plain errors -------------------------------------------


def test_an_absurd_config_size_is_a_plain_error_in_info_verify_and_load(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "m")
    _edit_config(path, num_classes=10**30)
    for command in ("info", "verify", "load"):
        result = run_zoo(command, str(path))
        assert result.returncode == 1, (command, result.stderr)
        out = result.stdout + result.stderr
        # The config refuses it now (issue 19), before anything is built.
        assert "num_classes must be at most 1,000,000" in out, (command, out)
        assert "internal error" not in out and "frame #" not in out, (command, out)


@pytest.mark.parametrize("value", [["model.safetensors"], {"a": 1}, 7, None])
def test_an_index_mapping_to_a_non_name_is_a_plain_error(value, tmp_path) -> None:
    path = zoo_core.save_model(
        zoo_core.create_model("simple_rnn", hidden_size=64, num_layers=3),
        tmp_path / "m",
        max_shard_size="40KB",
    )
    index = json.loads((path / "model.safetensors.index.json").read_text())
    key = next(iter(index["weight_map"]))
    index["weight_map"][key] = value
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match="not a shard file name"):
        zoo_core.load_model(path)
    result = run_zoo("verify", str(path))
    assert result.returncode == 1 and "internal error" not in result.stderr


@pytest.mark.parametrize(
    ("convert", "message"),
    [
        (
            {"fc.weight": torch.float8_e4m3fn},
            "fc.weight F8_E4M3 (model expects F64, F32, F16 or BF16)",
        ),
        ({"fc.weight": torch.float64, "fc.bias": torch.float16}, "mixed floating dtypes"),
    ],
)
def test_dtypes_the_architecture_cannot_run_are_refused_at_load_and_in_verify(
    convert, message, tmp_path
) -> None:
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "m")
    weights = path / "model.safetensors"
    tensors = load_file(weights)
    for key, dtype in convert.items():
        tensors[key] = tensors[key].to(dtype)
    metadata = {"format": "pt"}
    weights.unlink()
    save_file(tensors, weights, metadata=metadata)
    with pytest.raises(WeightsError, match="do not fit simple_cnn"):
        zoo_core.load_model(path)
    assert any(message in str(p) for p in verify_directory(path, hashes=False))
    if "mixed" in message:
        # Casting every float to one dtype at load makes the mix harmless.
        model = zoo_core.load_model(path, dtype="float32")
        assert {p.dtype for p in model.parameters()} == {torch.float32}
        model(model.example_input(1))


# Item 11: messages that mislead ----------------------------------------------------------------


def test_a_seed_with_a_saved_source_is_refused_like_set(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "m")
    result = run_zoo("load", str(path), "--seed", "3")
    assert result.returncode == 2
    assert "a seed has no use" in result.stderr and "drop --seed" in result.stderr
    with pytest.raises(ConfigError, match="a seed has no use"):
        open_model(path, seed=3)


def test_a_mistyped_directory_is_mentioned_with_the_model_name(tmp_path) -> None:
    zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "cnn")
    result = run_zoo("load", "cnnn", cwd=tmp_path)
    assert result.returncode == 1
    assert "no model named 'cnnn', and no file or directory 'cnnn' exists" in result.stderr


def test_str_of_an_error_carries_its_hint() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        zoo_core.create_model("simple_cnx")
    assert "(did you mean 'simple_cnn'" in str(caught.value)
    assert caught.value.message == "no model named 'simple_cnx'"


def test_a_disabled_plugin_is_not_said_to_be_missing(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "cnn")
    result = run_zoo("load", str(path), ZOO_DISABLE_PLUGINS="zoo-cnn")
    assert result.returncode == 1
    assert "is disabled" in result.stderr
    assert "pip install" not in result.stderr
    assert "remove zoo-cnn from ZOO_DISABLE_PLUGINS" in result.stderr


def test_an_unknown_name_in_zoo_disable_plugins_is_said(tmp_path) -> None:
    result = run_zoo("list", ZOO_DISABLE_PLUGINS="zoo-cnnn")
    assert result.returncode == 0
    assert "ZOO_DISABLE_PLUGINS names 'zoo-cnnn', which is not an installed plugin" in (
        result.stderr
    )
    assert "simple_cnn" in result.stdout


@pytest.mark.parametrize("name", ["a.json", "model.safetensors"])
def test_model_names_that_look_like_files_are_refused(name) -> None:
    # (Names with a dot are refused: NAME.TAG names a weights variant, and a.json a file.)
    with pytest.raises(ValueError, match=r"must be lower case letters, digits"):
        ModelSpec(name, "pkg.mod:Model")


def test_a_directory_whose_name_is_not_utf8_loads(tmp_path) -> None:
    target = os.fsencode(tmp_path) + b"/m\xff"
    model = zoo_core.create_model("linear_regression", seed=0)
    zoo_core.save_model(model, os.fsdecode(target))
    loaded = zoo_core.load_model(os.fsdecode(target))
    assert torch.equal(loaded.linear.weight, model.linear.weight)
    assert verify_directory(os.fsdecode(target)) == []


# Item 12: usability ------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_readme_plugin_example_builds_as_written(tmp_path) -> None:
    import tomllib

    toml = next(b for b in _readme_blocks("toml") if "[project.entry-points.zoo]" in b)
    files = {"pyproject.toml": toml}
    for block in _readme_blocks("python"):
        first = block.splitlines()[0]
        if first.startswith("# zoo_mlp/"):
            files[first[2:].split(":")[0].strip()] = block
    assert set(files) == {"pyproject.toml", "zoo_mlp/plugin.py", "zoo_mlp/model.py"}
    assert "`zoo_mlp/__init__.py`" in (ROOT / "README.md").read_text()
    project = tomllib.loads(toml)["project"]
    assert project["version"] and project["name"] == "zoo-mlp"
    project_dir = tmp_path / "zoo-mlp"
    for name, text in {**files, "zoo_mlp/__init__.py": ""}.items():
        (project_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (project_dir / name).write_text(text)
    # What pip does first: the build backend reads the metadata (a version is required).
    script = (
        "import setuptools.build_meta as b, sys; "
        "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))"
    )
    out = tmp_path / "meta"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)], cwd=project_dir, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = (out / result.stdout.split()[-1] / "METADATA").read_text()
    assert "Version: 0.1.0" in metadata
    entry_points = (out / result.stdout.split()[-1] / "entry_points.txt").read_text()
    assert "mlp = zoo_mlp.plugin" in entry_points


def test_new_plugin_next_steps_install_the_test_extra(tmp_path) -> None:
    result = run_zoo("new-plugin", "zoo-demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pip install -e 'zoo-demo[test]' && pytest zoo-demo" in result.stdout


def test_ci_removes_its_virtual_environment_on_exit() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "trap 'rm -rf \"$work\"' EXIT" in script
    assert "venv=$work/venv" in script
    assert "mktemp -d)/venv" not in script


# Item 6: limits checked before the work ----------------------------------------------------------


def _many_tensors(path: Path, count: int) -> None:
    header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(count)}
    header["__metadata__"] = {"zoo.architecture": "linear_regression"}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)


def test_too_many_tensors_are_refused_before_parsing(tmp_path, monkeypatch) -> None:
    lone = tmp_path / "many.safetensors"
    _many_tensors(lone, 1001)
    monkeypatch.setenv("ZOO_MAX_TENSORS", "1000")
    with pytest.raises(WeightsError, match="describes more than 1000 tensors"):
        zoo_core.load_model(lone)
    result = run_zoo("info", str(lone))
    assert result.returncode == 1 and "more than 1000 tensors" in result.stderr
    # Across shards: the index alone says how many there are.
    path = zoo_core.save_model(
        zoo_core.create_model("simple_rnn", hidden_size=64, num_layers=3),
        tmp_path / "m",
        max_shard_size="40KB",
    )
    monkeypatch.setenv("ZOO_MAX_TENSORS", "5")
    with pytest.raises(WeightsError, match=r"lists \d+ tensors; zoo reads at most 5"):
        zoo_core.load_model(path)


def test_the_default_tensor_limit_is_documented() -> None:
    from zoo_core.storage import limits

    assert limits.max_tensors() == 200_000
    security = (ROOT / "SECURITY.md").read_text()
    for limit in limits.LIMITS.values():
        assert f"`{limit.env}`" in security, limit.env
