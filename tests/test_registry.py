"""Plugin discovery through the real entry points and ZOO_PLUGINS, and name resolution."""

from __future__ import annotations

import pytest

import zoo_core
from zoo_core.errors import AmbiguousModelError, ModelNotFoundError, PluginError
from zoo_core.registry import ZooPluginWarning, get_registry

BUNDLED = ["linear_regression", "simple_cnn", "simple_rnn"]


def test_bundled_plugins_are_found_through_entry_points() -> None:
    registry = get_registry()
    plugins = {p.name: p for p in registry.plugins}
    assert {"zoo-linear", "zoo-cnn", "zoo-rnn"} <= set(plugins)
    cnn = plugins["zoo-cnn"]
    assert (cnn.status, cnn.module, cnn.entry_point, cnn.models) == (
        "ok",
        "zoo_cnn.plugin",
        "cnn",
        ("simple_cnn",),
    )
    assert cnn.version == "0.1.0"
    assert zoo_core.list_models() == BUNDLED


def test_list_models_filters_with_fnmatch() -> None:
    assert zoo_core.list_models("simple_*") == ["simple_cnn", "simple_rnn"]
    assert zoo_core.list_models("zoo-cnn:*") == ["simple_cnn"]
    assert zoo_core.list_models("nothing*") == []


def test_bare_and_qualified_names_resolve() -> None:
    registry = get_registry()
    assert registry.resolve("simple_cnn").qualified_name == "zoo-cnn:simple_cnn"
    assert registry.resolve("zoo-cnn:simple_cnn").spec.target == "zoo_cnn.model:SimpleCNN"
    # Distribution names are compared the way PyPI compares them.
    assert registry.resolve("Zoo_CNN:simple_cnn").plugin.name == "zoo-cnn"


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        get_registry().resolve("simple_cnx")
    assert "simple_cnn" in info.value.hint
    with pytest.raises(ModelNotFoundError):
        get_registry().resolve("zoo-rnn:simple_cnn")


def test_broken_plugins_are_recorded_and_the_rest_keep_working(fixture_plugins) -> None:
    fixture_plugins("broken_import", "broken_hook", "broken_garbage")
    with pytest.warns(ZooPluginWarning) as caught:
        registry = get_registry()
    status = {p.name: (p.status, p.error) for p in registry.plugins}
    assert status["broken_import"][0] == "broken"
    assert "ModuleNotFoundError" in status["broken_import"][1]
    assert status["broken_hook"] == ("broken", "RuntimeError: the hook exploded")
    assert "not a list of ModelSpec" in status["broken_garbage"][1]
    assert len(caught) == 3
    assert zoo_core.list_models() == BUNDLED
    assert zoo_core.create_model("simple_cnn") is not None


def test_conflicts_are_reported_never_settled_by_load_order(fixture_plugins) -> None:
    fixture_plugins("conflicting")
    registry = get_registry()
    assert list(registry.conflicts()) == ["simple_cnn"]
    with pytest.raises(AmbiguousModelError) as info:
        registry.resolve("simple_cnn")
    assert "conflicting:simple_cnn" in str(info.value)
    assert "zoo-cnn:simple_cnn" in str(info.value)
    assert registry.resolve("conflicting:simple_cnn").spec.target == "conflicting_model:OtherCNN"
    assert registry.resolve("zoo-cnn:simple_cnn").plugin.name == "zoo-cnn"
    # Unconflicted names stay bare; the conflicting ones are listed qualified.
    assert zoo_core.list_models() == [
        "linear_regression",
        "other_linear",
        "conflicting:simple_cnn",
        "zoo-cnn:simple_cnn",
        "simple_rnn",
    ]
    model = zoo_core.create_model("conflicting:simple_cnn", width=3)
    assert model.body.in_features == 3


def test_disable_plugins_by_distribution_or_entry_point(fixture_plugins) -> None:
    fixture_plugins("conflicting", disable="zoo-cnn,linear")
    registry = get_registry()
    status = {p.name: p.status for p in registry.plugins}
    assert status["zoo-cnn"] == "disabled"
    assert status["zoo-linear"] == "disabled"
    assert zoo_core.list_models() == ["other_linear", "simple_cnn", "simple_rnn"]
    # With zoo-cnn disabled, the bare name is no longer ambiguous.
    assert registry.resolve("simple_cnn").plugin.name == "conflicting"
    with pytest.raises(PluginError, match="zoo-cnn is disabled"):
        registry.resolve("zoo-cnn:simple_cnn")


def test_a_target_that_fails_to_import_is_a_plugin_error(fixture_plugins, tmp_path) -> None:
    (tmp_path / "badtarget.py").write_text(
        "from zoo_core import ModelSpec, hookimpl\n"
        "@hookimpl\n"
        "def zoo_register_models():\n"
        "    return [ModelSpec('ghost', 'no_such_module:Ghost')]\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        fixture_plugins("badtarget")
        with pytest.raises(PluginError, match="cannot import no_such_module:Ghost"):
            zoo_core.create_model("ghost")
    finally:
        sys.path.remove(str(tmp_path))


def test_model_spec_rejects_bad_fields() -> None:
    from zoo_core import ModelSpec

    with pytest.raises(ValueError, match="lower case"):
        ModelSpec("Bad Name", "m:C")
    with pytest.raises(ValueError, match=r"package\.module:ClassName"):
        ModelSpec("ok", "no_colon")
    with pytest.raises(ValueError, match="tags"):
        ModelSpec("ok", "m:C", tags="vision")
