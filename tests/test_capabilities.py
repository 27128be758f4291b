"""Capabilities and cost (issue 20 items 2 and 3): declared in specs, verified by the kit,
found by ``zoo list --supports`` without torch; parameters and FLOPs in the catalogue."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

import zoo_core
from tests.conftest import run_zoo
from tests.test_cli import imported_modules
from zoo_core import ModelSpec, WeightsSpec
from zoo_core.cli import cli
from zoo_core.plugins.contract import CAPABILITIES
from zoo_core.testing import run_checks

DECLARED = {
    "linear_regression": ["export", "onnx", "compile", "fsdp"],
    "simple_cnn": ["export", "onnx", "compile", "fsdp"],
    "simple_rnn": ["export", "onnx", "fsdp"],
    "tiny_transformer": ["export", "onnx", "compile", "fsdp", "tp"],
}
NO_TORCH = {"PYTHONPROFILEIMPORTTIME": "1", "HF_HUB_OFFLINE": "1"}


def assert_no_torch(result) -> None:
    modules = imported_modules(result)
    assert "click" in modules  # the profile really was recorded
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


# --- the contract ----------------------------------------------------------------------


def test_specs_check_and_order_what_they_declare() -> None:
    spec = ModelSpec("m", "pkg.mod:M", supports=["compile", "export", "compile"])
    assert spec.supports == ("export", "compile")
    assert ModelSpec("m", "pkg.mod:M").supports == ()
    with pytest.raises(ValueError, match=r"unknown capabilities \['jit'\].*export, onnx"):
        ModelSpec("m", "pkg.mod:M", supports=("export", "jit"))
    with pytest.raises(ValueError, match="must be a tuple of capability names"):
        ModelSpec("m", "pkg.mod:M", supports="export")
    weights = WeightsSpec("m", "t", "package://pkg/w", "0" * 64, supports=["fsdp"])
    assert weights.supports == ("fsdp",)
    assert WeightsSpec("m", "t", "package://pkg/w", "0" * 64).supports is None
    with pytest.raises(ValueError, match=r"supports of m\.t names unknown"):
        WeightsSpec("m", "t", "package://pkg/w", "0" * 64, supports=("tpu",))


def test_the_bundled_models_declare_what_they_support() -> None:
    registry = zoo_core.get_registry()
    assert {e.name: list(e.spec.supports) for e in registry.models()} == DECLARED
    assert zoo_core.list_models(supports=["compile", "tp"]) == ["tiny_transformer"]
    with pytest.raises(ValueError, match="unknown capabilities"):
        zoo_core.list_models(supports=["jit"])


# --- zoo list --supports: torch-free, from the plugin cache too ----------------------------


def test_list_supports_filters_without_importing_torch() -> None:
    result = run_zoo("list", "--supports", "export,compile", "--json", **NO_TORCH)
    assert result.returncode == 0, result.stderr
    assert_no_torch(result)
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["linear_regression", "simple_cnn", "tiny_transformer"]
    assert rows[2]["supports"] == DECLARED["tiny_transformer"]
    table = run_zoo("list", "simple_*", "--supports", "fsdp", **NO_TORCH)
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == [
        "simple_cnn",
        "simple_rnn",
    ]
    none = run_zoo("list", "--supports", "tp", "simple_*")
    assert none.returncode == 0 and "no models declare tp" in none.stdout


def test_list_pretrained_supports_uses_the_models_capabilities() -> None:
    result = run_zoo("list", "--pretrained", "--supports", "compile", "--json", **NO_TORCH)
    assert result.returncode == 0, result.stderr
    assert_no_torch(result)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    # simple_rnn.digits is left out: its model does not declare compile.
    assert sorted(rows) == ["linear_regression.diabetes", "simple_cnn.digits"]
    assert rows["simple_cnn.digits"]["supports"] == DECLARED["simple_cnn"]


def test_an_unknown_capability_is_a_usage_error() -> None:
    result = run_zoo("list", "--supports", "export,jit")
    assert result.returncode == 2
    assert "unknown capability 'jit'" in result.stderr and "export, onnx" in result.stderr
    assert "Traceback" not in result.stderr


def test_supports_comes_back_from_the_plugin_cache(tmp_path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = run_zoo("list", "--supports", "tp", "--json", **env)
    cached = run_zoo("list", "--supports", "tp", "--json", PYTHONPROFILEIMPORTTIME="1", **env)
    uncached = run_zoo("list", "--supports", "tp", "--json", ZOO_NO_CACHE="1")
    assert first.stdout == cached.stdout == uncached.stdout
    assert [r["name"] for r in json.loads(cached.stdout)] == ["tiny_transformer"]
    # Listed from the cache: the hook module was not imported, yet supports is there.
    assert "zoo_transformer.plugin" not in imported_modules(cached)


# --- zoo info -------------------------------------------------------------------------------


def zoo_in_process(*args: str) -> str:
    """``zoo ARGS`` through click in this process (torch is imported here already)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_info_shows_capabilities_and_cost() -> None:
    data = json.loads(zoo_in_process("info", "simple_cnn", "--json"))
    assert data["supports"] == DECLARED["simple_cnn"]
    assert data["file_bytes"] is None  # a name: no file
    assert data["flops_per_sample"] == simple_cnn_flops()
    text = zoo_in_process("info", "simple_cnn.digits")
    assert "supports      export, onnx, compile, fsdp" in text
    assert "FLOPs/sample  47.1k" in text
    assert "FLOPs per sample" in text and "of weight files" in text


# --- cost -----------------------------------------------------------------------------------


def simple_cnn_flops() -> int:
    """What FlopCounterMode counts for simple_cnn at its defaults, on a real model."""
    model = zoo_core.create_model("simple_cnn", seed=0).eval()
    with FlopCounterMode(display=False) as counter:
        model(model.example_input(1))
    return counter.get_total_flops()


def test_simple_cnn_flops_equal_flop_counter_mode() -> None:
    from zoo_core.models.build import Architecture
    from zoo_core.models.cost import model_cost

    arch = Architecture.named("simple_cnn")
    cost = model_cost(arch, arch.config())
    # conv: 2 * (3*3*3) * 16 * 28 * 28; linear: 2 * (16*14*14) * 10 (a multiply-add is 2)
    assert cost["flops_per_sample"] == simple_cnn_flops() == 2 * 27 * 16 * 784 + 2 * 3136 * 10
    assert cost["parameters"] == 3 * 16 * 9 + 16 + 16 * 14 * 14 * 10 + 10


def test_a_published_variant_records_its_cost(tmp_path) -> None:
    model = zoo_core.create_model("simple_cnn", image_size=8, in_channels=1, seed=0)
    path = zoo_core.save_model(model, tmp_path / "v", weights={"tag": "mine", "cost": {"x": 1}})
    section = json.loads((path / "config.json").read_text())["weights"]
    with FlopCounterMode(display=False) as counter:
        model(model.example_input(1))
    assert section["cost"] == {
        "parameters": model.num_parameters,
        "flops_per_sample": counter.get_total_flops(),
    }
    # The shipped variants carry theirs; zoo list --pretrained shows them without torch.
    listed = run_zoo("list", "--pretrained", "--json", **NO_TORCH)
    assert_no_torch(listed)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    digits = zoo_core.load_model("simple_cnn.digits")
    with FlopCounterMode(display=False) as counter:
        digits(digits.example_input(1))
    assert rows["simple_cnn.digits"]["flops_per_sample"] == counter.get_total_flops() == 47104
    assert rows["linear_regression.diabetes"]["flops_per_sample"] == 2 * 10


def test_a_malformed_cost_in_a_config_is_refused() -> None:
    from zoo_core.errors import WeightsError
    from zoo_core.pretrained.metadata import check_weights_section

    with pytest.raises(WeightsError, match=r"cost\.flops_per_sample must be a non-negative"):
        check_weights_section({"tag": "t", "cost": {"flops_per_sample": -1}}, "config.json")
    with pytest.raises(WeightsError, match=r"weights\.cost has unknown keys: bogus"):
        check_weights_section({"tag": "t", "cost": {"bogus": 1}}, "config.json")


# --- the kit --------------------------------------------------------------------------------

CAPABILITY_CHECKS = list(CAPABILITIES)


def statuses(report) -> dict[str, str]:
    return {r.check: r.status for r in report.results if r.check in CAPABILITIES}


def test_the_kit_fails_a_model_that_declares_compile_but_graph_breaks(fixture_plugins) -> None:
    fixture_plugins("deploy_plugin")
    report = run_checks("branchy_compile", only=["compile"])
    result = report.results[0]
    assert result.status == "fail" and not report.passed
    assert "1 graph break" in result.message
    assert "`if h.sum() > 0:` (deploy_models.py:" in result.message


def test_the_kit_fails_a_model_that_declares_export_but_cannot(fixture_plugins) -> None:
    fixture_plugins("deploy_plugin")
    report = run_checks("branchy_export", only=["export", "onnx"])
    found = {r.check: r for r in report.results}
    assert found["export"].status == "fail"
    assert "cannot export branchy_export with torch.export" in found["export"].message
    assert "first failing operation: `if h.sum() > 0:`" in found["export"].message
    assert found["onnx"].status == "skip"  # it needs export


@pytest.mark.slow
def test_the_kit_passes_declared_and_reports_undeclared_capabilities(fixture_plugins) -> None:
    fixture_plugins("deploy_plugin")
    sharded = run_checks("sharded_mlp", only=CAPABILITY_CHECKS)
    assert statuses(sharded) == dict.fromkeys(CAPABILITIES, "pass")
    assert (
        "tp on a fake mesh of 2 (its plan): 3 of 4 parameters sharded"
        in sharded.results[-1].message
    )
    modest = run_checks("modest_mlp", only=CAPABILITY_CHECKS)
    assert modest.passed and modest.undeclared == ["export", "onnx", "compile", "fsdp"]
    assert statuses(modest)["tp"] == "skip"  # no tp_plan: nothing to offer
    export = next(r for r in modest.results if r.check == "export")
    assert "works but is not declared" in export.message
    assert "add 'export' to ModelSpec(supports=...)" in export.message


@pytest.mark.slow
def test_zoo_check_names_undeclared_capabilities() -> None:
    from tests.test_kit import fixture_env

    result = run_zoo("check", "modest_mlp", "--json", **fixture_env("deploy_plugin"))
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["models"][0]
    assert model["undeclared"] == ["export", "onnx", "compile", "fsdp"]
