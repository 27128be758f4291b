"""Shared fixtures: running ``zoo`` and Python snippets as processes, and fixture plugins.

Most runs are forks of a warm interpreter (tests/forkserver.py: the command's own
process, its environment, folder, streams and exit status, without the 2-4 s of
importing torch); :func:`run_zoo_process` starts the real console script, for tests
of start-up itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.forkserver import ForkedProcess, ForkServer

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


@pytest.fixture(scope="session")
def memory_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """Fresh folders in memory (``/dev/shm``) where the machine has it, else in pytest's tmp.

    For tests that write thousands of small files (a Hub server's repositories and a
    client's cache, one per fuzz case): on a busy disk each new file costs milliseconds.
    """
    import shutil
    import tempfile

    shm = Path("/dev/shm")
    usable = shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2**30
    made: list[Path] = []

    def make(name: str) -> Path:
        if not usable:
            return tmp_path_factory.mktemp(name)
        made.append(Path(tempfile.mkdtemp(prefix=f"zoo-test-{name}-", dir=shm)))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


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


# The fork server starts with the session's environment; a run that changes what is read at
# start-up or import (PYTHON*, TORCH*, OMP_*...) needs a new interpreter.
_FORKS = ForkServer(dict(os.environ))


def run_zoo(
    *args: str, cwd: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``zoo ARGS`` as a process forked from a warm interpreter (tests/forkserver.py).

    The same command line, environment, working directory, streams and exit status as
    the ``zoo`` script, without its 2-4 s of start-up. A variable read at start-up
    (``PYTHONPROFILEIMPORTTIME``, ``OMP_NUM_THREADS``...) sends the run to a real process.
    """
    full_env = {**os.environ, **env}
    if not _FORKS.can_run(full_env):
        return run_zoo_process(*args, cwd=cwd, timeout=timeout, **env)
    return _FORKS.run(list(args), env=full_env, cwd=cwd, timeout=timeout)


def run_python_code(
    code: str,
    *args: str,
    cwd: Path | None = None,
    timeout: float = 120,
    environment: dict[str, str] | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """``python -c CODE ARGS`` in a fork of the warm interpreter (see :func:`run_zoo`).

    Its environment is ``environment`` (default: this process's) updated with ``env``.
    """
    full_env = {**(os.environ if environment is None else environment), **env}
    if not _FORKS.can_run(full_env):
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
        )  # fmt: skip
    return _FORKS.run(list(args), env=full_env, cwd=cwd, code=code, timeout=timeout)


def run_python_script(
    script: Path, *args: str, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python SCRIPT ARGS`` in a fork of the warm interpreter: the script runs as
    ``__main__`` with its folder first on ``sys.path``, as a new interpreter would run it."""
    code = (
        f"import runpy, sys; sys.path[0] = {str(script.parent)!r}; sys.argv[0] = {str(script)!r}; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    return run_python_code(code, *args, timeout=timeout, **env)


def start_python_code(code: str, *args: str, **env: str) -> ForkedProcess | subprocess.Popen[bytes]:
    """Start ``python -c CODE ARGS`` in a fork and return at once (``Popen``-like, output
    discarded): for processes that must run side by side."""
    full_env = {**os.environ, **env}
    if _FORKS.can_run(full_env):
        return _FORKS.spawn(list(args), env=full_env, code=code)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env,
    )  # fmt: skip


def start_zoo(
    *args: str, cwd: Path | None = None, tty: str | None = None, **env: str
) -> ForkedProcess | subprocess.Popen[bytes]:
    """Start ``zoo ARGS`` in a fork and return at once (``Popen``-like).

    Its output is discarded, or goes to the terminal ``tty`` (a device path), which
    it gets as stdin, stdout and stderr in a session of its own.
    """
    full_env = {**os.environ, **env}
    if _FORKS.can_run(full_env):
        return _FORKS.spawn(list(args), env=full_env, cwd=cwd, tty=tty)
    stream = os.open(tty or os.devnull, os.O_RDWR)
    try:
        return subprocess.Popen(
            [ZOO, *args], stdin=stream, stdout=stream, stderr=stream, cwd=cwd, env=full_env,
            start_new_session=tty is not None,
        )  # fmt: skip
    finally:
        os.close(stream)


def run_zoo_process(
    *args: str, cwd: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``zoo`` console script in a new interpreter: for start-up itself."""
    full_env = {**os.environ, **env}
    return subprocess.run(
        [ZOO, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout
    )


@pytest.fixture(scope="session", autouse=True)
def _fork_server() -> Iterator[None]:
    yield
    _FORKS.close()


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
