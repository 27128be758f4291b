"""Programs on a pseudo-terminal, as a person at a shell runs them: progress bars, completion."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.conftest import ZOO, start_zoo


def open_terminal(columns: int) -> tuple[int, int]:
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return main, child


def read_some(fd: int, wait: float) -> bytes | None:
    """Bytes ready on ``fd`` within ``wait`` seconds; b"" if none came; None at end of output."""
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536) or None
    except OSError:  # EIO: every writer has closed the terminal
        return None


def run_zoo_on_terminal(
    *args: str, cwd: Path | None = None, timeout: float = 120, **env: str
) -> tuple[int, str]:
    """Run ``zoo`` with stdin, stdout and stderr on a new terminal; its exit code and all output.

    The command runs in a new session on that terminal, in a process forked from the
    warm interpreter of tests/forkserver.py (what a terminal shows does not depend on
    the interpreter's start-up).
    """
    main, child = open_terminal(columns=120)
    try:
        proc = start_zoo(*args, cwd=cwd, tty=os.ttyname(child), **{"TERM": "xterm", **env})
    finally:
        os.close(child)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = read_some(main, 0.5)
            if data is None:
                break
            out += data
        else:
            proc.kill()
            raise AssertionError(f"zoo {' '.join(args)} ran past {timeout} s:\n{out.decode()}")
        return proc.wait(timeout=30), out.decode(errors="replace")
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Shell:
    """An interactive bash on a terminal, for typing commands and pressing Tab."""

    def __init__(self, home: Path) -> None:
        self.main, child = open_terminal(columns=200)
        env = {
            "PATH": f"{Path(ZOO).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "TERM": "dumb",
            "PS1": "$ ",
            "INPUTRC": str(home / "inputrc"),
        }
        for var in ("PYTHONPATH", "ZOO_PLUGINS", "ZOO_DISABLE_PLUGINS", "HF_HOME"):
            if var in os.environ:
                env[var] = os.environ[var]
        # No bell, and every candidate listed at the first Tab instead of the second.
        (home / "inputrc").write_text("set bell-style none\nset show-all-if-ambiguous on\n")
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile", "-i"],
            stdin=child,
            stdout=child,
            stderr=child,
            cwd=home,
            env=env,
            start_new_session=True,
        )
        os.close(child)
        self.output = bytearray()

    def send(self, text: str) -> None:
        os.write(self.main, text.encode())

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """Read until ``text`` has appeared since the last call; everything read, as text."""
        start = len(self.output)
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} did not appear; the terminal shows:\n{self.output[start:].decode()}"
                )
            data = read_some(self.main, 0.5)
            if data is None:
                raise AssertionError(f"bash exited; it showed:\n{self.output.decode()}")
            self.output += data
        return self.output[start:].decode(errors="replace")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        os.close(self.main)
