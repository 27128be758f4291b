"""Every hook call is guarded, and no hook escapes the guard (issue 19, items 7, 8 and 14).

``zoo_register_weights`` runs under the guard with the plugin cache off as with it on; a
hook that catches every exception (a bare ``except:`` retry loop) is stopped within the
timeout however it loops, and a user's Ctrl-C still ends the command; an absurd
``ZOO_PLUGIN_TIMEOUT`` is refused by name. Real ``zoo`` processes with hook modules from
``tests/fixtures`` registered through ``ZOO_PLUGINS``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import ZOO
from zoo_core.errors import UsageError
from zoo_core.plugins.registry import get_registry

# The guard's bound: the timeout, plus the start of a zoo process on a busy machine.
TIMEOUT = 1.0
STARTUP = 15.0


@pytest.fixture(autouse=True)
def _no_plugin_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_NO_CACHE", "1")


def _zoo(*args: str, timeout: float, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [ZOO, *args],
        capture_output=True,
        text=True,
        timeout=timeout,  # a hook that escapes the guard fails the test here, not in 120 s
        env={**os.environ, **env},
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("module", ["swallowing_hook", "spinning_hook"])
def test_a_hook_catching_every_exception_is_stopped_within_the_timeout(
    fixture_plugins, module: str
) -> None:
    fixture_plugins(module)
    result, seconds = _zoo(
        "list", "--json", timeout=TIMEOUT + STARTUP, ZOO_PLUGIN_TIMEOUT=str(TIMEOUT)
    )
    assert result.returncode == 0, result.stderr
    assert {m["name"] for m in json.loads(result.stdout)} >= {"simple_cnn", "linear_regression"}
    assert f"zoo plugin {module} is broken (its import or hook did not finish within" in (
        result.stderr
    )
    print(f"{module}: zoo list returned after {seconds:.1f} s with ZOO_PLUGIN_TIMEOUT=1")


def test_ctrl_c_ends_the_command_while_a_hook_swallows_it(fixture_plugins) -> None:
    fixture_plugins("swallowing_hook")
    process = subprocess.Popen(
        [ZOO, "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ZOO_PLUGIN_TIMEOUT": "600"},
        # As from a terminal: a test run started in the background (`pytest &`, nohup) has
        # Ctrl-C ignored, which a child inherits, and Python then never raises
        # KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # the hook is running: it prints "retrying"
        assert "swallowing_hook: retrying" in line, line
        pressed = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "zoo: interrupted" in err
    assert time.monotonic() - pressed < 10


WEIGHTS_HOOK = textwrap.dedent(
    """
    import contextlib, io, json, os, warnings
    from zoo_core.plugins.registry import reset_registry
    from zoo_core.pretrained.catalogue import get_variants, reset_variants

    seen = {}
    for how in ("print", "exit", "interrupt"):
        os.environ["ZOO_TEST_WEIGHTS"] = how
        reset_registry(); reset_variants()
        out = io.StringIO()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
            warnings.simplefilter("always")
            get_variants()
        seen[how] = {"stdout": out.getvalue(), "warnings": [str(w.message) for w in caught]}
    print(json.dumps(seen))
    """
)


def test_the_weights_hook_is_guarded_without_the_cache(fixture_plugins) -> None:
    fixture_plugins("weights_misbehave")
    result = subprocess.run(
        [sys.executable, "-c", WEIGHTS_HOOK],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr  # sys.exit(3) did not end the process
    seen = json.loads(result.stdout)  # and nothing the hook printed reached stdout
    assert seen["print"]["stdout"] == ""
    assert "weights_misbehave: hello from the weights hook" in result.stderr
    exits = " ".join(seen["exit"]["warnings"])
    assert "weights_misbehave: weights hook is broken" in exits and "SystemExit: 3" in exits
    interrupts = " ".join(seen["interrupt"]["warnings"])
    assert "weights hook is broken" in interrupts and "KeyboardInterrupt" in interrupts


def test_a_sleeping_weights_hook_is_stopped_and_json_stays_json(fixture_plugins) -> None:
    fixture_plugins("weights_misbehave")
    result, _ = _zoo(
        "list",
        "--pretrained",
        "--json",
        timeout=TIMEOUT + STARTUP,
        ZOO_PLUGIN_TIMEOUT=str(TIMEOUT),
        ZOO_TEST_WEIGHTS="sleep",
    )
    assert result.returncode == 0, result.stderr
    names = [row["name"] for row in json.loads(result.stdout)]
    assert "simple_cnn.digits" in names
    assert "zoo_register_weights hook did not finish within ZOO_PLUGIN_TIMEOUT=1 s" in (
        result.stderr
    )


def test_an_absurd_plugin_timeout_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.setenv("ZOO_PLUGIN_TIMEOUT", "1e10")
    with pytest.raises(UsageError, match=r"ZOO_PLUGIN_TIMEOUT=1e10 is more than zoo allows"):
        get_registry()
    monkeypatch.setenv("ZOO_PLUGIN_TIMEOUT", "3600")
    assert all(p.status == "ok" for p in get_registry(refresh=True).plugins)
