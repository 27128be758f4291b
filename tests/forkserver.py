"""Run ``zoo`` commands (and Python snippets) as processes forked from a warm interpreter.

Starting the real ``zoo`` console script costs 2-4 s, nearly all of it importing
torch; the suite runs the command line hundreds of times. A server process
started once per test session imports torch (with ``torch.distributed.tensor``),
numpy, safetensors, click and zoo_core (never a plugin; never huggingface_hub or
tqdm, which read ``HF_*`` and ``TQDM_*`` settings when they are imported), then
forks one child per command. The child is a real process, set up as the console
script would be:

- its environment is exactly the one asked for, ``PYTHONPATH`` entries go on
  ``sys.path`` after the script's folder, and the current directory is the one asked for;
- file descriptors 0, 1 and 2 are ``/dev/null`` and two fresh files (or a terminal,
  in a session of its own), and ``sys.stdin``/``stdout``/``stderr`` are made anew on
  them, so ``isatty()`` and buffering are what a new process would have;
- it runs ``zoo_core.cli.main`` (what the ``zoo`` script calls) or executes the snippet
  as ``__main__``, then waits for non-daemon threads, runs ``atexit`` handlers and
  exits with the code that ``SystemExit`` (or an uncaught exception) gives;
- plugin discovery, the plugin cache and every hook module start from nothing,
  since the server never touched them.

What a fork cannot show is the interpreter's own start-up: which modules a command
imports (``PYTHONPROFILEIMPORTTIME``), how long it takes, the console script
itself, and settings read at import (``PYTHON*``, ``TORCH*``, ``OMP_*``...). A run
that changes one of those goes to a new interpreter automatically; tests of
start-up use :func:`tests.conftest.run_zoo_process`. tests/test_forkserver.py holds
the forks to the console script's own output. A fork also starts at once, where a
new interpreter took seconds: a test must not lean on that delay.

``python tests/forkserver.py`` is the server. It reads one JSON request per line on
stdin and answers ``{"id": I, "started": PID}`` once the child has set up its streams,
then, whenever a child ends, ``{"pid": PID, "status": S, "cpu": SECONDS}`` (``S`` as
the ``returncode`` of :mod:`subprocess`: negative for a signal). Children run side by
side.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import locale
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SERVER = Path(__file__).resolve()
ZOO = str(Path(sys.executable).with_name("zoo"))
# Variables read when the interpreter starts (PYTHON*, but PYTHONPATH is applied in the
# child) or when the preloaded modules are imported (torch, numpy and their thread pools):
# a fork cannot honour a change of these.
STARTUP = "PYTHON"
IMPORT_TIME = (STARTUP, "TORCH", "PYTORCH", "OMP_", "MKL_", "OPENBLAS_", "NPY_", "NUMPY_")


# -- the server (runs in its own interpreter) ----------------------------------------------------


def _preload() -> None:
    # What every zoo command would import anyway, and the heavy parts of huggingface_hub's
    # HTTP stack, which read no environment. huggingface_hub itself stays out (see above).
    import importlib

    # torch.distributed.tensor: sharded saves import it (through huggingface_hub), 2-4 s.
    for name in ("click", "numpy", "safetensors.torch", "torch", "torch.distributed.tensor"):
        importlib.import_module(name)
    for name in ("zoo_core", "zoo_core.api", "zoo_core.cli"):
        importlib.import_module(name)
    # Not tqdm: it reads TQDM_* settings when it is imported.
    for optional in ("httpx2", "httpcore2", "h11", "yaml", "filelock", "jinja2"):
        with contextlib.suppress(ImportError):
            importlib.import_module(optional)
    assert "huggingface_hub" not in sys.modules, "the preload must not import huggingface_hub"


def _exit_code(code: object) -> int:
    """What the interpreter makes of ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _stdio() -> None:
    """New sys.stdin, stdout and stderr on file descriptors 0-2, made as the interpreter makes them.

    Buffering follows the new descriptors (stdout is line-buffered on a terminal only).
    """
    import io

    def stream(fd: int, errors: str, line_buffering: bool) -> io.TextIOWrapper:
        raw = open(fd, "rb" if fd == 0 else "wb", closefd=False)  # noqa: SIM115
        return io.TextIOWrapper(raw, encoding, errors, line_buffering=line_buffering)

    encoding = locale.getpreferredencoding(False)
    sys.stdin = sys.__stdin__ = stream(0, "strict", False)
    sys.stdout = sys.__stdout__ = stream(1, "strict", os.isatty(1))
    sys.stderr = sys.__stderr__ = stream(2, "backslashreplace", True)


def _child(request: dict[str, Any], base_path: list[str], started: int) -> None:
    """Become the requested process; never returns. Closes ``started`` once its streams are set."""
    code = 1
    try:
        if "tty" in request:
            os.setsid()  # opening the terminal makes it this session's controlling terminal
            streams = [os.open(request["tty"], os.O_RDWR)] * 3
        else:
            os.setpgid(0, 0)  # a timeout kills the command and whatever it started
            streams = [
                os.open(os.devnull, os.O_RDONLY),
                *(os.open(request[n], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                  for n in ("stdout", "stderr")),
            ]  # fmt: skip
        for fd, stream in enumerate(streams):
            os.dup2(stream, fd)
        for stream in set(streams):
            os.close(stream)
        os.close(started)  # the caller may let go of the terminal now: this process holds it
        _stdio()
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        # python -c puts the current directory first; the zoo script, its own folder.
        first = "" if "code" in request else str(Path(sys.executable).parent)
        sys.path[:] = [first, *extra, *base_path]
        import importlib

        importlib.invalidate_caches()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            if "code" in request:
                sys.argv = ["-c", *request["args"]]
                exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__"})
            else:
                sys.argv = [ZOO, *request["args"]]
                from zoo_core.cli import main

                main(request["args"])
            code = 0
        except SystemExit as exit_:
            code = _exit_code(exit_.code)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        # What the interpreter does on its way out: wait for threads, run atexit, flush.
        with contextlib.suppress(Exception):
            threading._shutdown()  # type: ignore[attr-defined]
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    finally:
        os._exit(code)


def serve() -> None:
    base_path = sys.path[1:]  # without this file's folder, as the console script would be
    _preload()
    # A child's end wakes the loop below: SIGCHLD writes to this pipe.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # Ctrl-C at the terminal reaches pytest, which closes this server (each child resets it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def answer(message: dict[str, Any]) -> None:
        os.write(1, json.dumps(message).encode() + b"\n")

    answer({"ready": True})
    pending = b""
    while True:
        ready, _, _ = select.select([0, wake_read], [], [])
        if wake_read in ready:
            os.read(wake_read, 4096)
        while True:  # every child that ended: its status and CPU seconds
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            answer({"pid": pid, "status": code, "cpu": usage.ru_utime + usage.ru_stime})
        if 0 not in ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return  # the client went away
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            wait_for_start, started = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(wait_for_start)
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in (wake_read, wake_write):
                    os.close(fd)
                _child(request, base_path, started)
            os.close(started)
            os.read(wait_for_start, 1)  # end of file: the child set up its streams (or died)
            os.close(wait_for_start)
            answer({"id": request["id"], "started": pid})


# -- the client (in the pytest process) ----------------------------------------------------------


def _site_stamp() -> tuple[int, ...]:
    """Changes when something is installed into or removed from this environment."""
    return tuple(os.stat(p).st_mtime_ns for p in site.getsitepackages() if os.path.isdir(p))


def _text(data: bytes) -> str:
    # What subprocess.run(text=True) returns: locale decoding and universal newlines.
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


class ForkServer:
    """The client side: one server per test session, started on first use.

    Children may run side by side (:meth:`spawn`); :meth:`run` waits for its own.
    """

    def __init__(self, base_env: dict[str, str]) -> None:
        self.base_env = {k: v for k, v in base_env.items() if k != "PYTHONPATH"}
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.RLock()  # one reader and one writer of the server's pipes
        self.buffer = b""
        self.stamp: tuple[int, ...] = ()
        self.scratch = Path(tempfile.mkdtemp(prefix="zoo-forkserver-"))
        self.requests = itertools.count()
        self.ended: dict[int, int] = {}  # pid -> status, of children nobody waited for yet
        self.running = 0
        self.child_cpu = 0.0  # CPU seconds of every fork so far, for measuring the suite

    def can_run(self, env: dict[str, str]) -> bool:
        """Whether a fork sees ``env`` as a new process would.

        What ``env`` changes from this process's environment must not be read at import
        (``TORCH*``, ``OMP_*``...), and its start-up variables (``PYTHON*``) must be the
        server's. Variables that libraries set in this process (torch sets
        ``TORCHINDUCTOR_CACHE_DIR`` when it first needs it) a fork may simply inherit.
        """

        def startup(variables: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in variables.items() if k.startswith(STARTUP)}

        changed = {k for k in {*env, *os.environ} if env.get(k) != os.environ.get(k)}
        if any(k.startswith(IMPORT_TIME) and k != "PYTHONPATH" for k in changed):
            return False
        return {**startup(env), "PYTHONPATH": ""} == {**startup(self.base_env), "PYTHONPATH": ""}

    def _start(self) -> None:
        self.stop()
        self.stamp = _site_stamp()
        with open(self.scratch / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self.base_env,
                cwd=self.scratch,
            )
        self.buffer = b""
        assert "ready" in self._read(180), "the fork server did not start"

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
        self.process = None
        self.running = 0

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _read(self, timeout: float | None) -> dict[str, Any]:
        """The server's next message (the lock held); TimeoutError if none came in time."""
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError("the fork server exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message = json.loads(line)
        if "status" in message:
            self.ended[message["pid"]] = message["status"]
            self.child_cpu += message["cpu"]
            self.running -= 1
        return message

    def _start_child(self, request: dict[str, Any]) -> int:
        """Send one request; returns the child's pid once its streams are set up."""
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            elif self.running == 0 and _site_stamp() != self.stamp:
                self._start()  # a package came or went: the server's sys.path may be stale
            assert self.process is not None and self.process.stdin is not None
            request["id"] = next(self.requests)
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            while True:
                message = self._read(60)
                if message.get("id") == request["id"]:
                    self.running += 1
                    return message["started"]

    def status(self, pid: int, timeout: float | None) -> int | None:
        """The exit status of ``pid`` once it ends (None if it has not within ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while pid not in self.ended:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    self._read(left)
                except TimeoutError:
                    return None
            return self.ended.pop(pid)

    @staticmethod
    def _request(
        args: list[str],
        env: dict[str, str],
        cwd: Path | str | None,
        code: str | None,
        streams: dict[str, str],
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "args": [str(a) for a in args],
            "env": env,
            "cwd": str(cwd if cwd is not None else os.getcwd()),
            **streams,
        }
        if code is not None:
            request["code"] = code
        return request

    def run(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path | str | None = None,
        code: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """``zoo ARGS`` (or ``python -c CODE ARGS``) in a fresh fork, like ``subprocess.run``."""
        command = [ZOO, *args] if code is None else [sys.executable, "-c", code, *args]
        name = f"run-{next(self.requests)}"
        stdout, stderr = self.scratch / f"{name}.out", self.scratch / f"{name}.err"
        streams = {"stdout": str(stdout), "stderr": str(stderr)}
        pid = self._start_child(self._request(args, env, cwd, code, streams))
        try:
            status = self.status(pid, timeout)
            if status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                self.status(pid, 60)
                raise subprocess.TimeoutExpired(command, timeout)
            return subprocess.CompletedProcess(
                command, status, _text(stdout.read_bytes()), _text(stderr.read_bytes())
            )
        finally:
            stdout.unlink(missing_ok=True)
            stderr.unlink(missing_ok=True)

    def spawn(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path | str | None = None,
        code: str | None = None,
        tty: str | None = None,
    ) -> ForkedProcess:
        """Start ``zoo ARGS`` (or ``python -c CODE ARGS``) and return at once, like ``Popen``.

        Its output is discarded, or with ``tty`` (a terminal's device path) the child
        starts a new session with that terminal as stdin, stdout and stderr.
        """
        streams = {"tty": tty} if tty else {"stdout": os.devnull, "stderr": os.devnull}
        return ForkedProcess(self, self._start_child(self._request(args, env, cwd, code, streams)))


class ForkedProcess:
    """A running fork: ``pid``, ``poll()``, ``send_signal()``, ``wait()`` as on ``Popen``."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server, self.pid = server, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.status(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.server.status(self.pid, timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired([ZOO], timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            # It may end just now: Popen.send_signal ignores that too.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


if __name__ == "__main__":
    serve()
