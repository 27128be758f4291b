"""Reading a model directory as one consistent snapshot, and only what belongs to it.

A save swaps a complete new directory in place of the old one (see
:mod:`zoo_core.storage.atomic`) and then deletes the old one. A reader that opened
``config.json``, the index and the shards by path at different moments could
get parts of two saves. :class:`OpenedDirectory` opens the directory once and
every member relative to that handle, so everything it reads comes from the
same directory: one complete save. Open descriptors (and memory maps) keep the
old files readable after the save that replaced them deletes them. If a member
vanished because a save replaced the directory meanwhile, :class:`Vanished`
tells the caller to read again from the start.

Members are opened without blocking (a FIFO cannot hang a reader), only if
they are regular files, and only if they lie inside the directory: a symlink
leaving it is refused (huggingface_hub's cache links snapshot files to
``../../blobs``; those count as inside).

>>> with OpenedDirectory("cnn/") as d:                      # doctest: +SKIP
...     config = d.read("config.json", limit=1 << 20, what="config.json")
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import weakref
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError

__all__ = ["Handles", "OpenedDirectory", "Vanished", "open_regular", "read_limited"]

_PROC_FD = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")
_DIR_FD = os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Vanished(Exception):
    """The directory was replaced by a save while it was being read: read it again."""


def _close_all(fds: dict[Any, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class Handles:
    """Open file descriptors by path, closed together by :meth:`close` or when unreferenced."""

    def __init__(self) -> None:
        self.fds: dict[Path, int] = {}
        self._finalizer = weakref.finalize(self, _close_all, self.fds)

    def add(self, path: Path, fd: int) -> int:
        old = self.fds.get(path)
        if old is not None and old != fd:
            os.close(old)
        self.fds[path] = fd
        return fd

    def get(self, path: Path) -> int | None:
        return self.fds.get(path)

    def readable_path(self, path: Path) -> str | Path:
        """A name other libraries can open for the very file this holds (Linux: /proc/self/fd/N)."""
        fd = self.fds.get(path)
        if fd is None or not _PROC_FD:
            return path
        return f"/proc/self/fd/{fd}"

    def close(self) -> None:
        self._finalizer()


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _check_regular(fd: int, shown: Path) -> None:
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise WeightsError(
            f"{shown} is {_kind(mode)}, not a regular file; zoo reads only regular files",
            hint="replace it with the real file",
        )


def open_regular(path: str | os.PathLike[str]) -> int:
    """Open ``path`` for reading without blocking, and only if it is a regular file.

    Symlinks in ``path`` are followed: the caller named this file.

    Raises:
        FileNotFoundError: nothing is there.
        WeightsError: it is a FIFO, device, socket or directory, or unreadable.
    """
    shown = Path(path)
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise WeightsError(f"cannot read {shown}: {err.strerror or err}") from None
    _check_regular(fd, shown)
    return fd


def read_limited(fd: int, shown: Path, limit: int, what: str, env: str) -> bytes:
    """All of a regular file's bytes, refusing (before reading) one larger than ``limit``."""
    size = os.fstat(fd).st_size
    if size > limit:
        raise WeightsError(
            f"{shown} is {size} bytes; zoo reads at most {limit} bytes of {what}",
            hint=f"if the file is genuine, raise the limit: {env}=BYTES (see SECURITY.md)",
        )
    chunks, offset = [], 0
    while offset <= limit:
        chunk = os.pread(fd, limit + 1 - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    if offset > limit:  # it grew after the check
        raise WeightsError(f"{shown} is more than {limit} bytes; zoo reads at most that of {what}")
    return b"".join(chunks)


class OpenedDirectory:
    """A directory opened once; its members opened through it (see the module docstring).

    Raises (from the constructor):
        FileNotFoundError, NotADirectoryError: ``path`` is not a directory.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.handles = Handles()
        self.fd: int | None = None
        if _DIR_FD:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
            self.handles.add(self.path, self.fd)
        elif not self.path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(self.path))
        self._homes: list[str] | None = None

    def __enter__(self) -> OpenedDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.handles.close()

    # What is there ---------------------------------------------------------------------------

    def replaced(self) -> bool:
        """Whether the path no longer names the directory this object opened."""
        if self.fd is None:
            return False
        mine = os.fstat(self.fd)
        if mine.st_nlink == 0:
            return True
        try:
            now = os.stat(self.path)
        except OSError:
            return True
        return (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino)

    def lexists(self, name: str) -> bool:
        """Whether an entry ``name`` exists (a dangling symlink counts)."""
        try:
            if self.fd is None:
                os.lstat(self.path / name)
            else:
                os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return False
        return True

    def names(self) -> list[str]:
        """The entries of the directory, sorted."""
        return sorted(os.listdir(self.fd if self.fd is not None else self.path))

    def homes(self) -> list[str]:
        """Real paths a member may live under: the directory, and a Hub snapshot's blobs."""
        if self._homes is None:
            real = self._real(self.fd) if self.fd is not None else None
            real = real or os.path.realpath(self.path)
            homes = [real]
            if Path(real).parent.name == "snapshots":
                homes.append(str(Path(real).parent.parent / "blobs"))
            self._homes = homes
        return self._homes

    @staticmethod
    def _real(fd: int) -> str | None:
        if not _PROC_FD:
            return None
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None

    def _inside(self, real: str) -> bool:
        return any(real.startswith(home.rstrip(os.sep) + os.sep) for home in self.homes())

    # Opening ----------------------------------------------------------------------------------

    def open(self, name: str) -> int | None:
        """A descriptor for member ``name`` (cached), or None if there is no such entry.

        Raises:
            Vanished: the entry is missing because a save replaced the directory.
            WeightsError: the member is a symlink leaving the directory, a symlink
                loop, not a regular file, or unreadable.
        """
        shown = self.path / name
        have = self.handles.get(shown)
        if have is not None:
            return have
        try:
            fd = self._open(name, _READ_FLAGS | _NOFOLLOW)
        except FileNotFoundError:
            return self._missing()
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.EMLINK):
                raise WeightsError(f"cannot read {shown}: {err.strerror or err}") from None
            fd = self._open_link(name, shown)  # the last component is a symlink
            if fd is None:
                return self._missing()
        _check_regular(fd, shown)
        return self.handles.add(shown, fd)

    def _open(self, name: str, flags: int) -> int:
        if self.fd is None:
            return os.open(self.path / name, flags)
        return os.open(name, flags, dir_fd=self.fd)

    def _missing(self) -> None:
        if self.replaced():
            raise Vanished(str(self.path))
        return None

    def _open_link(self, name: str, shown: Path) -> int | None:
        outside = WeightsError(
            f"{shown} points outside the directory",
            hint="zoo refuses symlinks leaving a model directory; copy the file in instead",
        )
        # Checked before opening (opening a device can have effects), and again on what was
        # opened (the link may change in between).
        try:
            target = os.path.realpath(self.path / name, strict=True)
        except FileNotFoundError:
            return None
        except OSError:
            raise WeightsError(f"{shown} is a symlink loop") from None
        if not self._inside(target):
            raise outside
        try:
            fd = self._open(name, _READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise WeightsError(f"cannot read {shown}: {err.strerror or err}") from None
        real = self._real(fd)
        if real is not None and not self._inside(real):
            os.close(fd)
            raise outside
        return fd

    def check(self, name: str) -> Path | None:
        """The path of member ``name`` once checked as :meth:`open` does; None if missing."""
        fd = self.open(name)
        return None if fd is None else self.path / name

    def read(self, name: str, *, limit: int, what: str, env: str) -> bytes | None:
        """The bytes of member ``name`` (at most ``limit``), or None if there is no such entry."""
        fd = self.open(name)
        if fd is None:
            return None
        return read_limited(fd, self.path / name, limit, what, env)

    def readable_path(self, name: str) -> str | Path:
        return self.handles.readable_path(self.path / name)
