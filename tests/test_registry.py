"""Plugin discovery through the real entry points and ZOO_PLUGINS, and name resolution."""

from __future__ import annotations

import pytest

import zoo_core
from zoo_core.errors import (
    AmbiguousModelError,
    ModelNotFoundError,
    PluginError,
    PluginNotInstalledError,
)
from zoo_core.plugins.registry import ZooPluginWarning, get_registry

BUNDLED = ["linear_regression", "simple_cnn", "simple_rnn", "tiny_transformer"]


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
    assert zoo_core.list_models("*transformer") == ["tiny_transformer"]
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
        "tiny_transformer",
    ]
    model = zoo_core.create_model("conflicting:simple_cnn", width=3)
    assert model.body.in_features == 3


def test_disable_plugins_by_distribution_or_entry_point(fixture_plugins) -> None:
    fixture_plugins("conflicting", disable="zoo-cnn,linear")
    registry = get_registry()
    status = {p.name: p.status for p in registry.plugins}
    assert status["zoo-cnn"] == "disabled"
    assert status["zoo-linear"] == "disabled"
    assert zoo_core.list_models() == [
        "other_linear",
        "simple_cnn",
        "simple_rnn",
        "tiny_transformer",
    ]
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


def test_plugins_declare_the_plugin_api_they_target() -> None:
    plugins = {p.name: p for p in get_registry().plugins}
    assert zoo_core.PLUGIN_API_VERSION == 2
    for name in ("zoo-linear", "zoo-cnn", "zoo-rnn"):
        assert plugins[name].api_version == 1  # API 1 plugins keep working unchanged
    assert plugins["zoo-transformer"].api_version == 2


def test_an_incompatible_plugin_says_what_it_needs_and_what_is_installed(fixture_plugins) -> None:
    fixture_plugins("future_api")
    with pytest.warns(ZooPluginWarning, match="future_api is incompatible"):
        registry = get_registry()
    info = registry.plugin("future_api")
    assert (info.status, info.api_version, info.models) == ("incompatible", 3, ())
    assert info.error == (
        "needs plugin API 3, but zoo-core 0.1.0 provides plugin API 1 to 2; "
        "upgrade zoo-core (pip install -U zoo-core)"
    )
    assert registry.unusable == [info]
    assert zoo_core.list_models() == BUNDLED
    with pytest.raises(PluginError, match="future_api is incompatible: needs plugin API 3"):
        registry.resolve("future_api:from_the_future")
    with pytest.raises(ModelNotFoundError) as not_found:
        registry.resolve("from_the_future")
    assert "not loaded: future_api" in not_found.value.hint
    # Weights saved with that plugin say why they cannot load, not "pip install" it again.
    with pytest.raises(PluginNotInstalledError) as saved:
        registry.resolve_saved("from_the_future", "future_api", "1.0")
    assert "which is incompatible" in str(saved.value)
    assert "needs plugin API 3" in saved.value.hint


@pytest.mark.parametrize(
    ("declared", "status", "error"),
    [
        ("0", "incompatible", "needs plugin API 0, but zoo-core 0.1.0 provides plugin API 1 to 2; "
         "upgrade the plugin"),
        ("'1'", "broken", "PluginError: ZOO_PLUGIN_API must be an int like 2, got '1'"),
        ("1", "ok", None),
        ("2", "ok", None),
    ],
)  # fmt: skip
def test_plugin_api_declarations(fixture_plugins, tmp_path, declared, status, error) -> None:
    import sys
    import warnings

    module = f"declares_{status}"  # one name each: an imported module would be reused
    (tmp_path / f"{module}.py").write_text(
        "from zoo_core import ModelSpec, hookimpl\n"
        f"ZOO_PLUGIN_API = {declared}\n"
        "@hookimpl\n"
        "def zoo_register_models():\n"
        "    return [ModelSpec('declared', 'conflicting_model:OtherLinear')]\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        fixture_plugins(module)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZooPluginWarning)
            info = get_registry().plugin(module)
        assert info.status == status
        assert info.error == error or (error and info.error.startswith(error))
    finally:
        sys.path.remove(str(tmp_path))
