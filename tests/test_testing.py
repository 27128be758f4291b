"""The conformance checks: every bundled model passes, and each check fails on a model built to
break its rule (the `bad_models` fixture plugin, registered for real through ZOO_PLUGINS)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import zoo_core
from zoo_core.errors import ModelNotFoundError
from zoo_core.testing import CHECKS, ConformanceError, check_model, run_checks

BUNDLED = ["linear_regression", "simple_cnn", "simple_rnn", "tiny_transformer"]


def outcome(report) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {
        "fail": set(),
        "warn": set(),
        "skip": set(),
        "pass": set(),
        "xfail": set(),
    }
    for r in report.results:
        found[r.status].add(r.check)
    return found


def test_every_check_has_a_name_a_reason_and_a_hint() -> None:
    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names))
    for check in CHECKS:
        assert check.reason and check.hint and " " not in check.name
        assert set(check.needs) <= set(names[: names.index(check.name)])


@pytest.mark.parametrize(
    "name",
    # tiny_transformer declares every capability: exporting, compiling and sharding it
    # take half a minute on a busy machine.
    [n if n != "tiny_transformer" else pytest.param(n, marks=pytest.mark.slow) for n in BUNDLED],
)
def test_bundled_models_pass_every_check(name: str) -> None:
    report = check_model(name)
    found = outcome(report)
    # No warning: each declares every capability that works (see test_capabilities.py).
    assert found["fail"] == set() and found["warn"] == set()
    # Without a GPU the device move is the one check that cannot run.
    expected_skips = set() if torch.cuda.is_available() else {"device-move"}
    if name != "tiny_transformer":  # the one bundled model with a padding mask, and a TP plan
        expected_skips |= {"padding-mask", "tp"}
    if name == "simple_rnn":  # TorchDynamo cannot trace nn.RNN: compile is not declared
        expected_skips.add("compile")
    assert found["skip"] == expected_skips
    assert found["pass"] == {c.name for c in CHECKS} - expected_skips


# model in bad_models.py -> the checks it must fail (and nothing else may fail)
BAD = {
    "unused_layer": {"gradients"},
    "no_defaults": {"config-defaults"},
    "breaks_on_meta": {"build-meta"},
    "random_init": {"seed-deterministic"},
    "random_keys": {"state-dict-stable", "seed-deterministic", "save-load-exact"},
    "nan_init": {"build-cpu"},
    "inf_output": {"forward-finite"},
    "no_shape_check": {"wrong-shape-error"},
    "hardcoded_float": {"dtype-casts"},
    "plain_tensor": {"save-load-exact", "dtype-casts"},
    "swallows_unknown": {"config-rejects-unknown"},
    "complex_config": {"config-json"},
    "not_a_model": {"target-class"},
}


@pytest.mark.parametrize(("name", "failing"), sorted(BAD.items()))
def test_each_check_fails_on_a_model_built_to_break_it(fixture_plugins, name, failing) -> None:
    fixture_plugins("bad_models")
    report = run_checks(name)
    found = outcome(report)
    assert found["fail"] == failing, report.results
    assert not report.passed
    for r in report.results:
        if r.status == "fail":
            assert r.message and r.reason and r.hint
    with pytest.raises(ConformanceError) as info:
        check_model(name)
    text = str(info.value)
    for check in failing:
        assert f"  {check}: " in text
    assert "why: " in text and "fix: " in text


def test_checks_that_cannot_run_are_skipped_with_the_reason(fixture_plugins) -> None:
    fixture_plugins("bad_models")
    results = {r.check: r for r in run_checks("no_defaults").results}
    assert results["forward-finite"].status == "skip"
    assert "needs build-cpu" in results["forward-finite"].message
    assert results["target-class"].status == "pass"


def test_specific_failure_messages_name_the_culprit(fixture_plugins) -> None:
    fixture_plugins("bad_models")

    def message(model: str, check: str) -> str:
        return run_checks(model, only=[check]).results[0].message

    assert "unused.weight, unused.bias" in message("unused_layer", "gradients")
    assert "without a default: width" in message("no_defaults", "config-defaults")
    assert "meta" in message("breaks_on_meta", "build-meta")
    assert "proj.bias" in message("random_init", "seed-deterministic")
    assert "RuntimeError" in message("no_shape_check", "wrong-shape-error")
    assert "not a zoo error" in message("no_shape_check", "wrong-shape-error")
    assert "float64" in message("hardcoded_float", "dtype-casts")
    assert "was accepted silently" in message("swallows_unknown", "config-rejects-unknown")


def test_a_hook_module_that_imports_torch_fails(fixture_plugins) -> None:
    fixture_plugins("imports_torch")
    results = {r.check: r for r in run_checks("heavy").results}
    assert results["hook-light"].status == "fail"
    assert "importing imports_torch and calling its hook imports" in results["hook-light"].message
    assert "torch" in results["hook-light"].message
    # The model itself is fine: only the listing rule is broken.
    assert {r.check for r in results.values() if r.status == "fail"} == {"hook-light"}


def test_a_hook_module_that_loads_slowly_fails(fixture_plugins) -> None:
    fixture_plugins("slow_hook")
    result = run_checks("slow_listing", only=["hook-light"]).results[0]
    assert result.status == "fail"
    assert "takes" in result.message and "budget" in result.message


@pytest.mark.slow
def test_warning_level_checks_do_not_fail_the_model(fixture_plugins) -> None:
    fixture_plugins("bad_models", "conflicting")
    exported = run_checks("not_exportable")
    # It declares no capability: export does not work (skipped, with the reason), and
    # FSDP works but is not declared (a warning saying to declare it).
    assert outcome(exported)["warn"] == {"fsdp"}
    assert exported.passed and exported.undeclared == ["fsdp"]
    export = {r.check: r for r in exported.results}["export"]
    assert export.status == "skip"
    assert "not declared, and it does not work: cannot export not_exportable" in export.message
    # A plugin that declares no plugin API still works, with a warning.
    undeclared = {r.check: r for r in run_checks("other_linear").results}
    assert undeclared["plugin-api"].status == "warn"
    assert "ZOO_PLUGIN_API" in undeclared["plugin-api"].message
    assert check_model("other_linear").passed


@pytest.mark.slow
def test_a_config_can_be_given_as_overrides_or_an_instance(fixture_plugins) -> None:
    report = check_model("simple_rnn", {"cell": "gru", "num_layers": 2})
    assert report.passed
    cls = zoo_core.get_registry().resolve("simple_rnn").load_class()
    assert check_model("simple_rnn", cls.Config(cell="lstm")).passed
    fixture_plugins("bad_models")
    # The config given is the one checked: with width 1 the bad shape is even accepted.
    result = run_checks("no_shape_check", {"width": 1}, only=["wrong-shape-error"]).results[0]
    assert "(2, 1, 1) was accepted" in result.message


def test_a_bare_class_skips_the_plugin_checks(fixture_plugins) -> None:
    fixture_plugins("conflicting")
    import conflicting_model

    found = outcome(run_checks(conflicting_model.Unregistered))
    assert {"hook-light", "plugin-api", "save-load-exact"} <= found["skip"]
    assert found["fail"] == set()


def test_unknown_names_are_zoo_errors_not_check_failures() -> None:
    with pytest.raises(ModelNotFoundError):
        run_checks("simple_cnx")
    with pytest.raises(ValueError, match="no check named"):
        run_checks("simple_cnn", only=["no-such-check"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_move_fails_for_a_model_pinned_to_the_cpu(fixture_plugins) -> None:
    fixture_plugins("bad_models")
    assert outcome(run_checks("only_on_cpu"))["fail"] == {"device-move"}


@pytest.mark.slow
def test_parametrize_with_checks_gives_one_pytest_test_per_check(fixture_plugins, tmp_path):
    fixture_plugins("bad_models")
    (tmp_path / "test_plugin.py").write_text(
        textwrap.dedent(
            """
            from zoo_core.testing import parametrize_with_checks

            @parametrize_with_checks(["good", "unused_layer", "not_exportable"])
            def test_zoo(model, check):
                check(model)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 1, out
    n = len(CHECKS)
    # good: all pass but device-move, padding-mask (no mask) and tp (no plan), and warn
    # for the capabilities it does not declare; unused_layer: gradients fails;
    # not_exportable also skips export, onnx and compile (it branches on values).
    skipped = 6 + 3 + (0 if torch.cuda.is_available() else 3)
    assert f"1 failed, {3 * n - 1 - skipped} passed, {skipped} skipped" in out
    assert "FAILED test_plugin.py::test_zoo[unused_layer-gradients]" in out
    assert "fix: use every layer in forward" in out
    assert "PASSED test_plugin.py::test_zoo[good-save-load-exact]" in out
    assert "ZooCheckWarning: zoo check export: works but is not declared" in out
