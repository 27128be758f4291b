"""Shared fixtures: running the real ``zoo`` command, and registering fixture plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# huggingface_hub reads these once, at import: set them before anything imports it,
# so no test can reach (or write the cache of) the real Hub.
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

FIXTURES = Path(__file__).parent / "fixtures"
ZOO = str(Path(sys.executable).with_name("zoo"))


@pytest.fixture(scope="session")
def _session_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch, _session_cache_home: Path) -> Iterator[None]:
    """Each test discovers plugins anew, with no ZOO_* variables leaking in.

    The plugin cache lives in one directory per test session (tests and the
    ``zoo`` processes they start share it), never in the user's own.
    """
    from zoo_core.plugins.registry import reset_registry

    for var in ("ZOO_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_DEBUG", "ZOO_NO_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(_session_cache_home))
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def fixture_plugins(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Register hook modules from tests/fixtures via ZOO_PLUGINS, in-process and for children."""

    def use(*modules: str, disable: str | None = None) -> None:
        from zoo_core.plugins.registry import reset_registry

        monkeypatch.syspath_prepend(str(FIXTURES))
        path = os.environ.get("PYTHONPATH", "")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(FIXTURES), path) if p))
        monkeypatch.setenv("ZOO_PLUGINS", ",".join(modules))
        if disable is not None:
            monkeypatch.setenv("ZOO_DISABLE_PLUGINS", disable)
        reset_registry()

    return use


def run_zoo(
    *args: str, cwd: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``zoo`` console script and capture its output."""
    full_env = {**os.environ, **env}
    return subprocess.run(
        [ZOO, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout
    )


@pytest.fixture
def zoo() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_zoo


@pytest.fixture
def zoo_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``zoo_main(*args)`` runs the ``zoo`` entry point in-process: (exit status, stdout, stderr).

    Faster than a process where start-up does not matter; its warning printer and
    exit codes are the real ones.
    """
    import warnings

    from zoo_core.cli import main

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out = capsys.readouterr()
        return int(info.value.code or 0), out.out, out.err

    return run
