"""Discovery contains a plugin's mistakes: its output, its exits, its endless or slow hooks.

Installed plugins are trusted code, but a ``print`` left in a hook module must
not break ``zoo list --json``, a stray ``sys.exit`` must not end every command,
and an endless hook must not hang them. These run the real ``zoo`` command with
hook modules from ``tests/fixtures`` registered through ``ZOO_PLUGINS``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo_core
from tests.conftest import run_zoo
from zoo_core.plugins.registry import get_registry

BUNDLED = {"linear_regression", "simple_cnn", "simple_rnn", "tiny_transformer"}


@pytest.fixture(autouse=True)
def _no_plugin_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests watch hooks run: the plugin cache would answer for them instead."""
    monkeypatch.setenv("ZOO_NO_CACHE", "1")


def test_plugin_output_never_reaches_json_output(fixture_plugins) -> None:
    fixture_plugins("chatty_plugin")
    listed = run_zoo("list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {m["name"] for m in json.loads(listed.stdout)}  # stdout is JSON, nothing else
    assert names >= BUNDLED | {"chatty_model"}
    # The plugin's words are not lost: they go to stderr.
    assert "chatty_plugin: importing, hello" in listed.stderr
    assert "chatty_plugin: registering" in listed.stderr
    plugins = run_zoo("plugins", "--json")
    assert json.loads(plugins.stdout)


def test_a_plugin_cannot_end_the_process(fixture_plugins, tmp_path: Path) -> None:
    fixture_plugins("exits_at_import", "raises_base_exception", "raises_keyboard_interrupt")
    listed = run_zoo("list")
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in BUNDLED)
    assert "zoo plugin exits_at_import is broken (SystemExit: 0)" in listed.stderr
    assert "zoo plugin raises_base_exception is broken (Abort: the hook gave up)" in listed.stderr
    assert "zoo plugin raises_keyboard_interrupt is broken (KeyboardInterrupt)" in listed.stderr
    assert "Traceback" not in listed.stderr
    status = {p["name"]: p for p in json.loads(run_zoo("plugins", "--json").stdout)}
    assert status["exits_at_import"]["status"] == "broken"
    assert status["raises_base_exception"]["status"] == "broken"
    # The other plugins keep working, in Python too.
    with pytest.warns(UserWarning, match="exits_at_import is broken"):
        assert set(zoo_core.list_models()) == BUNDLED
    saved = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "cnn")
    loaded = run_zoo("load", str(saved), "--json")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["architecture"] == "simple_cnn"


@pytest.mark.slow
def test_an_endless_hook_is_stopped_and_named(fixture_plugins, tmp_path: Path) -> None:
    # Saved before the endless plugin is registered: this process must not run its hook.
    saved = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "lr")
    fixture_plugins("endless_hook")
    for args in (("list", "--json"), ("load", str(saved), "--json")):
        # Without the guard, this hangs until run_zoo's own timeout fails the test.
        result = run_zoo(*args, ZOO_PLUGIN_TIMEOUT="1")
        assert result.returncode == 0, result.stderr
        json.loads(result.stdout)  # the spinning hook's prints went to stderr
        assert (
            "zoo plugin endless_hook is broken (its import or hook did not finish within "
            "ZOO_PLUGIN_TIMEOUT=1 s)" in result.stderr
        )
    bad = run_zoo("list", ZOO_PLUGIN_TIMEOUT="never")
    assert bad.returncode == 2 and "ZOO_PLUGIN_TIMEOUT=never is not a number" in bad.stderr


def test_slow_hooks_are_named_in_a_warning(fixture_plugins) -> None:
    fixture_plugins("sleepy_hook")
    listed = run_zoo("list")
    assert listed.returncode == 0, listed.stderr
    assert "sleepy_model" in listed.stdout
    assert "zoo plugin sleepy_hook took 1." in listed.stderr
    assert "every zoo command waits for it" in listed.stderr
    assert "zoo-cnn" not in listed.stderr  # only the slow one is named


def test_building_the_registry_compares_names_linearly(fixture_plugins) -> None:
    fixture_plugins("many_models")
    import many_models

    many_models.COMPARISONS[0] = 0
    registry = get_registry()
    assert len(registry.models("many_*")) == many_models.COUNT
    # Comparing each name with every other one costs COUNT**2 (9 million) comparisons.
    assert many_models.COMPARISONS[0] < 10 * many_models.COUNT


@pytest.mark.slow
def test_discovery_in_a_worker_thread_is_guarded_too(fixture_plugins) -> None:
    """Off the main thread no alarm can be used: the hooks run in threads of their own."""
    fixture_plugins("endless_hook", "chatty_plugin", "exits_at_import")
    code = textwrap.dedent(
        """
        import json, threading, warnings
        from zoo_core.plugins.registry import get_registry

        found = {}

        def discover():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found["plugins"] = {p.name: p.status for p in get_registry().plugins}

        thread = threading.Thread(target=discover)
        thread.start()
        thread.join()
        print(json.dumps(found["plugins"]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ZOO_PLUGIN_TIMEOUT": "1"},
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)  # stdout holds the JSON alone
    assert status["endless_hook"] == "broken" and status["exits_at_import"] == "broken"
    assert status["chatty_plugin"] == "ok" and status["zoo-cnn"] == "ok"
    assert "chatty_plugin: registering" in result.stderr
