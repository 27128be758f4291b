"""Contract v2 (issue 10 items 2, 4, 5, 7): several inputs, a kit that catches the seed's
classic mistakes, blame on the right party, and plugin API 1 still working."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

import zoo_core
from tests.conftest import run_zoo
from zoo_core.errors import PluginCodeError, WeightsError
from zoo_core.kit.scaffold import new_plugin
from zoo_core.models.build import Architecture
from zoo_core.testing import check_model, parametrize_with_checks, run_checks

# --- several inputs (item 2) ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pair_regressor", "tagged_regressor", "factory_mlp"])
def test_tuple_dict_and_factory_models_pass_the_whole_kit(fixture_plugins, name) -> None:
    fixture_plugins("multi_input_plugin")
    report = check_model(name)
    statuses = {r.check: r.status for r in report.results}
    assert statuses["wrong-shape-error"] == "pass"
    assert statuses["save-load-exact"] == "pass"
    # They declare no capabilities; export works, so the kit says to declare it.
    assert statuses["export"] == "warn" and "export" in report.undeclared


@pytest.mark.slow
def test_expected_failures_are_reported_not_failed(fixture_plugins) -> None:
    fixture_plugins("multi_input_plugin")
    reason = "a plain nn.Module with an input function gets no shape check"
    report = check_model("plain_pair", expected_failures={"wrong-shape-error": reason})
    result = {r.check: r for r in report.results}["wrong-shape-error"]
    assert result.status == "xfail" and reason in result.message
    with pytest.raises(ValueError, match="no check named"):
        run_checks("plain_pair", expected_failures={"wrong-shap": "typo"})


@parametrize_with_checks(
    ["plain_pair"], expected_failures={"wrong-shape-error": "no shape declared for two inputs"}
)
def test_parametrize_with_expected_failures(fixture_plugins, model, check) -> None:
    fixture_plugins("multi_input_plugin")
    if check.name not in {"wrong-shape-error", "forward-finite", "target-class"}:
        pytest.skip("a few checks are enough here")
    check(model)


def test_zoo_load_calls_tuple_and_dict_models(fixture_plugins) -> None:
    fixture_plugins("multi_input_plugin")
    pair = run_zoo("load", "pair_regressor", "--json")
    assert pair.returncode == 0, pair.stderr
    data = json.loads(pair.stdout)
    assert data["input_shape"] == {"0": [1, 6], "1": [1, 4]} and data["output_shape"] == [1, 3]
    tagged = run_zoo("load", "tagged_regressor")
    assert tagged.returncode == 0, tagged.stderr
    assert "x: (1, 5) float32, tag: (1,) int64 -> (1, 2)" in tagged.stdout


def test_tiny_transformer_mask_is_checked() -> None:
    result = run_checks("tiny_transformer", only=["padding-mask"]).results[0]
    assert result.status == "pass" and "'mask'" in result.message
    info = run_zoo("info", "tiny_transformer", "--json")
    assert json.loads(info.stdout)["input_shape"] == {"x": [1, 16], "mask": [1, 16]}


# --- the scaffold with planted mistakes (item 4) ---------------------------------------


@pytest.fixture
def scaffold(tmp_path, monkeypatch):
    """A fresh `zoo new-plugin` project, registered through ZOO_PLUGINS; returns model.py."""
    from zoo_core.plugins.registry import reset_registry

    # Each test writes its own zoo_mlp: forget the one an earlier test imported.
    for module in [m for m in sys.modules if m.split(".")[0] == "zoo_mlp"]:
        monkeypatch.delitem(sys.modules, module)
    project = new_plugin("zoo-mlp", model="tiny_mlp", directory=tmp_path / "zoo-mlp")
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("PYTHONPATH", str(project))
    monkeypatch.setenv("ZOO_PLUGINS", "zoo_mlp.plugin")
    reset_registry()
    yield project / "zoo_mlp" / "model.py"
    for module in [m for m in sys.modules if m.split(".")[0] == "zoo_mlp"]:
        del sys.modules[module]


def _plant(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _failures(report) -> dict[str, str]:
    return {r.check: r for r in report.results if r.status == "fail"}


def test_the_unmodified_scaffold_passes_with_a_placeholder_warning(scaffold) -> None:
    report = run_checks("tiny_mlp")
    assert report.passed
    warned = {r.check: r for r in report.results if r.status == "warn"}
    assert set(warned) == {"scaffold-placeholders"}
    assert (
        "two-layer perceptron classifier (placeholder)" in warned["scaffold-placeholders"].message
    )


def test_a_hard_coded_input_size_fails_with_a_hint_at_the_field(scaffold) -> None:
    _plant(scaffold, "nn.Linear(c.in_features, c.hidden)", "nn.Linear(8, c.hidden)")
    failures = _failures(run_checks("tiny_mlp"))
    assert set(failures) == {"size-variants"}
    failure = failures["size-variants"]
    assert "in_features=16 (default 8)" in failure.message  # x2 before +-1 (issue 17)
    assert "'in_features'" in failure.message
    assert "nn.Linear(c.in_features" in failure.hint


def test_item_in_forward_fails_with_its_own_hint(scaffold) -> None:
    _plant(
        scaffold,
        "return self.fc2(self.act(self.fc1(x)))",
        "return self.fc2(self.act(self.fc1(x))) * x.abs().max().item()",
    )
    report = run_checks("tiny_mlp")
    failures = _failures(report)
    assert set(failures) == {"no-python-scalars"}
    failure = failures["no-python-scalars"]
    assert ".item() at model.py:" in failure.message
    assert "scale.item()" in failure.hint
    assert failure.hint != {r.check: r for r in report.results}["size-variants"].hint


@pytest.mark.slow  # the scaffold's model declares capabilities: each is exported or compiled
def test_zoo_check_takes_set(scaffold) -> None:
    ok = run_zoo("check", "tiny_mlp", "--set", "hidden=3", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = run_zoo("check", "tiny_mlp", "--set", "hidden=wide")
    assert bad.returncode == 2 and "'hidden' expects int" in bad.stderr


# --- refuse to save what cannot be loaded; blame the right party (items 4, 5) ------------


def test_save_refuses_a_model_that_cannot_be_rebuilt_on_meta(fixture_plugins, tmp_path) -> None:
    fixture_plugins("bad_models")
    model = zoo_core.create_model("breaks_on_meta")
    with pytest.raises(PluginCodeError) as info:
        zoo_core.save_model(model, tmp_path / "m")
    assert "could not be loaded again" in str(info.value)
    assert info.value.model == "breaks_on_meta" and info.value.distribution == "bad_models"
    assert not (tmp_path / "m").exists()


def test_save_refuses_a_model_changed_after_building(tmp_path) -> None:
    model = zoo_core.create_model("linear_regression")
    model.extra = torch.nn.Linear(2, 2)
    with pytest.raises(WeightsError, match=r"unexpected: extra\.bias, extra\.weight"):
        zoo_core.save_model(model, tmp_path / "m")


def test_build_meta_blames_the_plugin_or_the_file(fixture_plugins) -> None:
    fixture_plugins("bad_models")
    broken = Architecture.named("breaks_on_meta")
    with pytest.raises(PluginCodeError, match="plugin bad_models failed in its constructor"):
        broken.build_meta(broken.config(), where="m/config.json")
    good = Architecture.named("linear_regression")
    config = good.config()
    config.input_dim = -5  # what a hand-edited file can hold past the type checks
    with pytest.raises(WeightsError, match="cannot build linear_regression") as info:
        good.build_meta(config, where="m/config.json")
    assert "damaged or edited by hand" in info.value.hint


def test_a_plugin_forward_error_is_the_plugins_not_zoos(tmp_path, fixture_plugins) -> None:
    (tmp_path / "crashy.py").write_text(
        "from zoo_core import ModelSpec, hookimpl\n"
        "@hookimpl\n"
        "def zoo_register_models():\n"
        "    return [ModelSpec('crashy', 'crashy_model:Crashy')]\n"
    )
    (tmp_path / "crashy_model.py").write_text(
        "from zoo_linear.model import LinearRegression\n"
        "class Crashy(LinearRegression):\n"
        "    def forward(self, x):\n"
        "        return x.view(-1, 3)\n"
    )
    fixture_plugins("crashy")
    path = os.pathsep.join([str(tmp_path), os.environ["PYTHONPATH"]])
    result = run_zoo("load", "crashy", PYTHONPATH=path)
    assert result.returncode == 1
    assert "internal error" not in result.stderr
    assert "plugin crashy failed in forward of crashy: RuntimeError" in result.stderr
    assert "report it to crashy's authors" in result.stderr
    assert "Traceback" not in result.stderr


# --- plugin API 1 keeps working (item 7) -------------------------------------------------

API1 = {
    "api1_zoo_linear": ("zoo-linear", "linear_regression"),
    "api1_zoo_cnn": ("zoo-cnn", "simple_cnn"),
    "api1_zoo_rnn": ("zoo-rnn", "simple_rnn"),
    "api1_zoo_transformer": ("zoo-transformer", "tiny_transformer"),
}


def test_api1_hook_modules_work_unchanged(fixture_plugins, tmp_path) -> None:
    fixture_plugins(*API1, disable=",".join(dist for dist, _ in API1.values()))
    registry = zoo_core.get_registry(refresh=True)
    for module, (_, model_name) in API1.items():
        info = registry.plugin(module)
        assert (info.status, info.api_version) == ("ok", 1), info
        entry = registry.resolve(model_name)
        assert entry.plugin.name == module
        model = zoo_core.create_model(model_name, seed=0)
        loaded = zoo_core.load_model(zoo_core.save_model(model, tmp_path / model_name))
        assert list(loaded.state_dict()) == list(model.state_dict())
    listed = run_zoo("plugins", "--json")
    status = {p["name"]: p for p in json.loads(listed.stdout)}
    assert all(status[m]["status"] == "ok" and status[m]["api_version"] == 1 for m in API1)


def test_hook_light_times_the_hook_call_too(fixture_plugins) -> None:
    fixture_plugins("slow_hook_call")
    result = run_checks("slow_call", only=["hook-light"]).results[0]
    assert result.status == "fail"
    assert "calling its hook takes" in result.message and "hook 0.6" in result.message
