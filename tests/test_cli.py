"""The real ``zoo`` command, run as a subprocess: output, JSON keys, errors, exit codes."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import run_zoo

TRACEBACK = "Traceback (most recent call last)"


def imported_modules(result) -> set[str]:
    """Module names from a run with PYTHONPROFILEIMPORTTIME=1 (one line per import)."""
    names = set()
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", line)
        if match:
            names.add(match.group(1))
    return names


@pytest.mark.parametrize("args", [["list"], ["plugins"], ["--help"], ["list", "--json"]])
def test_light_commands_never_import_torch(args) -> None:
    result = run_zoo(*args, PYTHONPROFILEIMPORTTIME="1")
    assert result.returncode == 0, result.stderr
    modules = imported_modules(result)
    assert "click" in modules  # the profile really was recorded
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}
    assert "zoo_cnn.model" not in modules


def test_list_json_lists_the_bundled_models() -> None:
    result = run_zoo("list", "--json")
    assert result.returncode == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {n: rows[n]["plugin"] for n in rows} == {
        "linear_regression": "zoo-linear",
        "simple_cnn": "zoo-cnn",
        "simple_rnn": "zoo-rnn",
        "tiny_transformer": "zoo-transformer",
    }
    assert rows["simple_cnn"]["target"] == "zoo_cnn.model:SimpleCNN"
    assert rows["simple_cnn"]["version"] == "0.1.0"


def test_list_table_and_pattern() -> None:
    result = run_zoo("list", "simple_*")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PLUGIN", "SUMMARY"]
    assert [line.split()[0] for line in lines[1:]] == ["simple_cnn", "simple_rnn"]


def test_load_json_reports_the_forward_pass() -> None:
    result = run_zoo("load", "simple_cnn", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output_shape"] == [1, 10]
    assert data["architecture"] == "simple_cnn"
    assert data["plugin"] == "zoo-cnn"
    assert data["parameters"] == 3 * 16 * 9 + 16 + 16 * 14 * 14 * 10 + 10
    assert data["bytes"] == data["parameters"] * 4
    assert isinstance(data["load_seconds"], float)


def test_load_with_set_overrides() -> None:
    result = run_zoo("load", "simple_rnn", "--set", "cell=lstm", "--set", "output_size=3", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output_shape"] == [1, 3]


def test_info_shows_fields_parameters_and_input() -> None:
    result = run_zoo("info", "simple_cnn", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    fields = {f["name"]: f for f in data["fields"]}
    assert fields["num_classes"]["type"] == "int"
    assert fields["num_classes"]["default"] == 10
    assert data["input_shape"] == [1, 3, 28, 28]
    assert data["parameters"] == 31818
    human = run_zoo("info", "simple_rnn").stdout
    assert "'rnn' | 'lstm' | 'gru'" in human
    assert "(1, 20, 10)" in human


@pytest.mark.slow
def test_save_then_load_round_trip(tmp_path) -> None:
    target = tmp_path / "cnn"
    saved = run_zoo("save", "simple_cnn", str(target), "--set", "num_classes=5", "--seed", "0")
    assert saved.returncode == 0, saved.stderr
    assert "saved simple_cnn" in saved.stdout
    loaded = run_zoo("load", str(target), "--json")
    assert loaded.returncode == 0, loaded.stderr
    data = json.loads(loaded.stdout)
    assert data["output_shape"] == [1, 5]
    assert data["source_kind"] == "directory"
    bf16 = json.loads(run_zoo("load", str(target), "--dtype", "bf16", "--json").stdout)
    assert bf16["dtype"] == "bfloat16"
    assert bf16["bytes"] * 2 == data["bytes"]
    human = run_zoo("load", str(target)).stdout
    assert f"loaded from {target}" in human


def test_same_seed_gives_the_same_file(tmp_path) -> None:
    for name in ("a", "b"):
        assert run_zoo("save", "simple_rnn", str(tmp_path / name), "--seed", "4").returncode == 0
    # Compare tensors, not bytes: safetensors does not fix the order of header metadata.
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _assert_clean_error(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert TRACEBACK not in result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if not ln.startswith("zoo: warning:")]
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("zoo: error: ")
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture
def saved_cnn(tmp_path):
    path = tmp_path / "cnn"
    assert run_zoo("save", "simple_cnn", str(path)).returncode == 0
    return path


def test_error_unknown_model_suggests() -> None:
    _assert_clean_error(run_zoo("load", "simple_cnx"), 1, "no model named", "simple_cnn")


def test_error_missing_path(tmp_path) -> None:
    _assert_clean_error(run_zoo("load", str(tmp_path / "nope")), 1, "no such file or directory")


def test_error_not_safetensors(tmp_path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x80\x04this is a pickle")
    _assert_clean_error(run_zoo("load", str(bad)), 1, "not a readable safetensors file")


def test_error_truncated(saved_cnn) -> None:
    weights = saved_cnn / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    _assert_clean_error(run_zoo("load", str(saved_cnn)), 1, "truncated or corrupt")


def test_error_plugin_not_installed(saved_cnn) -> None:
    result = run_zoo("load", str(saved_cnn), ZOO_DISABLE_PLUGINS="zoo-cnn")
    # Disabled, not missing: the advice is to re-enable it, not to install it (issue 8).
    _assert_clean_error(result, 1, "zoo-cnn", "is disabled", "remove zoo-cnn from")
    assert "pip install" not in result.stderr


def test_error_key_and_shape_mismatch(saved_cnn, tmp_path) -> None:
    record = json.loads((saved_cnn / "config.json").read_text())
    record["config"]["num_classes"] = 7
    (saved_cnn / "config.json").write_text(json.dumps(record))
    _assert_clean_error(run_zoo("load", str(saved_cnn)), 1, "fc.weight [10, 3136]", "[7, 3136]")
    plain = tmp_path / "renamed.safetensors"
    meta = {"zoo.architecture": "linear_regression", "zoo.plugin": "zoo-linear"}
    save_file({"lin.weight": torch.zeros(1, 1), "linear.bias": torch.zeros(1)}, plain, meta)
    _assert_clean_error(run_zoo("load", str(plain)), 1, "missing linear.weight", "lin.weight")


def test_error_wrong_input_shape(fixture_plugins, tmp_path) -> None:
    # A plugin whose example_input does not fit its own forward: the smoke pass reports it.
    (tmp_path / "misfit.py").write_text(
        "from zoo_core import ModelSpec, hookimpl\n"
        "@hookimpl\n"
        "def zoo_register_models():\n"
        "    return [ModelSpec('misfit', 'misfit_model:Misfit')]\n"
    )
    (tmp_path / "misfit_model.py").write_text(
        "from zoo_linear.model import LinearRegression\n"
        "class Misfit(LinearRegression):\n"
        "    def example_input(self, batch_size=1):\n"
        "        return self.randn_like_input(batch_size, self.config.input_dim + 1)\n"
    )
    fixture_plugins("misfit")
    result = run_zoo("load", "misfit", PYTHONPATH=f"{tmp_path}")
    _assert_clean_error(result, 1, "expects input of shape (batch, 1), got (1, 2)")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["load", "simple_cnn", "--set", "num_classes"], "KEY=VALUE"),
        (["load", "simple_cnn", "--set", "colour=red"], "unknown config field 'colour'"),
        (["load", "simple_cnn", "--set", "num_classes=ten"], "expects int, got 'ten'"),
        (["load", "simple_rnn", "--set", "cell=transformer"], "one of 'rnn', 'lstm', 'gru'"),
        (["load", "simple_cnn", "--dtype", "float8"], "unknown dtype 'float8'"),
        (["load", "simple_cnn", "--device", "gpu"], "unknown device 'gpu'"),
        (["save", "simple_cnn", "/tmp/never-written", "--set", "x=1"], "unknown config field"),
    ],
)
def test_command_line_mistakes_exit_2(args, fragment) -> None:
    _assert_clean_error(run_zoo(*args), 2, fragment)


def test_set_on_a_saved_source_is_a_usage_error(saved_cnn) -> None:
    _assert_clean_error(
        run_zoo("load", str(saved_cnn), "--set", "num_classes=3"), 2, "config comes from the file"
    )


def test_unknown_option_is_a_click_usage_error() -> None:
    result = run_zoo("load", "simple_cnn", "--colour", "red")
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert TRACEBACK not in result.stderr


def test_cuda_where_there_is_none() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_zoo("load", "simple_cnn", "--device", "cuda")
    _assert_clean_error(result, 1, "CUDA is not available")


def test_debug_shows_the_traceback() -> None:
    for result in (
        run_zoo("--debug", "load", "simple_cnx"),
        run_zoo("load", "simple_cnx", ZOO_DEBUG="1"),
    ):
        assert result.returncode == 1
        assert TRACEBACK in result.stderr
        assert "ModelNotFoundError" in result.stderr


def test_save_refuses_to_overwrite_other_directories(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.csv").write_text("1,2,3")
    _assert_clean_error(
        run_zoo("save", "simple_cnn", str(tmp_path / "data")), 1, "not a zoo model directory"
    )
    assert (tmp_path / "data" / "keep.csv").read_text() == "1,2,3"


@pytest.mark.slow
def test_broken_and_conflicting_plugins_through_the_cli(fixture_plugins) -> None:
    fixture_plugins("broken_import", "broken_hook", "conflicting")
    plugins = json.loads(run_zoo("plugins", "--json").stdout)
    status = {p["name"]: p for p in plugins}
    assert status["broken_import"]["status"] == "broken"
    assert "zoo_nonexistent_dependency" in status["broken_import"]["error"]
    assert status["broken_hook"]["error"] == "RuntimeError: the hook exploded"
    assert status["zoo-cnn"]["status"] == "ok"
    human = run_zoo("plugins").stdout
    assert "broken_hook (broken_hook) is broken: RuntimeError: the hook exploded" in human
    assert "conflict: 'simple_cnn'" in human

    listed = run_zoo("list")
    assert listed.returncode == 0
    assert "zoo: warning: zoo plugin broken_hook is broken" in listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert names == [
        "linear_regression",
        "other_linear",
        "conflicting:simple_cnn",
        "zoo-cnn:simple_cnn",
        "simple_rnn",
        "tiny_transformer",
    ]
    _assert_clean_error(run_zoo("load", "simple_cnn"), 1, "registered by 2 plugins")
    ok = run_zoo("load", "zoo-cnn:simple_cnn", "--json")
    assert json.loads(ok.stdout)["output_shape"] == [1, 10]
    assert run_zoo("load", "simple_rnn").returncode == 0
