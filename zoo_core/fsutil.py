"""Crash-safe directory replacement.

A model directory is written into a temporary sibling and swapped into place,
so a reader sees either the old model or the new one, never a mixture. On Linux
the swap is one ``renameat2(RENAME_EXCHANGE)`` call; elsewhere it is two
renames (old aside, new into place), and a crash between them is undone by
:func:`recover` on the next save or load. Saves to one parent directory are
serialised with an advisory lock, so two concurrent saves end with one complete
model.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_directory", "current_umask", "fsync_directory", "recover"]

_TMP = ".zoo-tmp-"
_OLD = ".zoo-old-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def fsync_directory(path: Path) -> None:
    """Make renames and new entries in ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; nothing more to do there
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock, saves are not serialised
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _siblings(target: Path, marker: str) -> list[Path]:
    pattern = glob.escape(str(target.parent / f".{target.name}{marker}")) + "*"
    return sorted(Path(p) for p in glob.glob(pattern))


def recover(target: Path) -> None:
    """Undo what an interrupted save left next to ``target``.

    Temporary directories are incomplete by definition and are removed. An
    aside copy of the old model is put back if ``target`` is missing (the
    crash fell between the two renames), and removed otherwise. Callers hold
    the parent's lock, or know that no save is running.
    """
    for tmp in _siblings(target, _TMP):
        shutil.rmtree(tmp, ignore_errors=True)
    olds = _siblings(target, _OLD)
    if olds and not os.path.lexists(target):
        os.rename(olds.pop(), target)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def try_recover(target: Path) -> None:
    """:func:`recover`, but only when no save into the same parent is running."""
    parent = target.parent
    if not (_siblings(target, _TMP) or _siblings(target, _OLD)):
        return
    try:
        import fcntl
    except ImportError:
        return
    try:
        fd = os.open(parent, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return  # a save is in progress; its leftovers are not leftovers yet
    try:
        with contextlib.suppress(OSError):
            recover(target)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux renameat2; False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _finish_files(directory: Path) -> None:
    mode_file = 0o666 & ~current_umask()
    mode_dir = 0o777 & ~current_umask()
    for entry in directory.iterdir():
        # safetensors and huggingface_hub leave 0600 files; users expect the umask's mode.
        os.chmod(entry, mode_file)
        fd = os.open(entry, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.chmod(directory, mode_dir)
    fsync_directory(directory)


@contextlib.contextmanager
def atomic_directory(
    target: Path, *, may_replace: Callable[[Path], bool] = lambda p: True
) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` when the block succeeds.

    ``may_replace(target)`` is asked before anything is written; it lets the
    caller refuse to replace a directory that is not its own. If the block
    raises, the temporary directory is removed and ``target`` is untouched.
    """
    target = Path(os.path.abspath(target))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent):
        recover(target)
        if os.path.lexists(target):
            if not target.is_dir() or target.is_symlink():
                raise FileExistsError(errno.EEXIST, "it exists and is not a directory", str(target))
            if any(target.iterdir()) and not may_replace(target):
                raise FileExistsError(
                    errno.EEXIST, "it exists and is not a zoo model directory", str(target)
                )
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP}", dir=parent))
        try:
            yield tmp
            _finish_files(tmp)
            if os.path.lexists(target):
                if _exchange(tmp, target):
                    # tmp now holds the old model; readers that mapped its files keep them.
                    fsync_directory(parent)
                    shutil.rmtree(tmp, ignore_errors=True)
                    return
                aside = parent / f".{target.name}{_OLD}{uuid.uuid4().hex[:8]}"
                os.rename(target, aside)
                os.rename(tmp, target)
                fsync_directory(parent)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(tmp, target)
                fsync_directory(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
