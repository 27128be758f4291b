"""Crash-safe directory replacement.

A model directory is written into a temporary sibling and swapped into place,
so a reader sees either the old model or the new one, never a mixture. On Linux
the swap is one ``renameat2(RENAME_EXCHANGE)`` call; elsewhere it is two
renames (old aside, new into place), and a crash between them is undone by
:func:`recover` on the next save or load. Saves to one parent directory are
serialised with an advisory lock, so two concurrent saves end with one complete
model; a save waiting longer than :func:`zoo_core.storage.limits.lock_timeout` for
another gives up and names the process holding the lock.

A save replaces only what zoo writes: other files and folders in the old
directory (a model card, training logs) are hard-linked into the new one
before the swap, and whatever changed in the old one meanwhile is brought over
after it, so they survive it even while something writes into the directory
(see ``keep`` in :func:`atomic_directory` and :mod:`zoo_core.storage.carry`).
A directory with a mount point inside is refused before anything is written,
and nothing zoo removes is ever looked for on another file system.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import glob
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from zoo_core.errors import WeightsError, ZooWarning
from zoo_core.storage.carry import MountInside, carry, drain, mounts_inside, remove_tree

__all__ = [
    "MountInside",
    "atomic_directory",
    "current_umask",
    "fsync_directory",
    "lock_holder",
    "recover",
]

_TMP = ".zoo-tmp-"
_OLD = ".zoo-old-"
# The old directory of a save whose user files could not all be brought over: kept, not removed.
_KEPT = ".zoo-kept-"
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
    from zoo_core.storage.limits import LIMITS, lock_timeout

    fd = os.open(directory, os.O_RDONLY)
    try:
        timeout = lock_timeout()
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                holder = lock_holder(fd)
                raise WeightsError(
                    f"another save into {directory} has held its lock for over {timeout:g} s"
                    + (f" ({holder})" if holder else ""),
                    hint=f"wait for it to finish or stop it; {LIMITS['lock'].env}=SECONDS "
                    "waits longer",
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def lock_holder(fd: int) -> str | None:
    """Who holds the flock on the file open as ``fd``: ``"pid N: command"``, where Linux says."""
    if not sys.platform.startswith("linux"):
        return None
    inode = os.fstat(fd).st_ino
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4123 fd:01:1234 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            pid = fields[4]
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    words = f.read().split(b"\0")
                command = " ".join(w.decode("utf-8", "replace") for w in words if w)[:120]
            except OSError:
                command = ""
            command = "".join(c if c.isprintable() else "?" for c in command)
            return f"pid {pid}: {command}" if command else f"pid {pid}"
    return None


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
        remove_tree(tmp)
    olds = _siblings(target, _OLD)
    if olds and not os.path.lexists(target):
        os.rename(olds.pop(), target)
    for old in olds:
        remove_tree(old)


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


def _existing_parent(parent: Path) -> None:
    """Create ``parent``, saying plainly when a component of it is a file."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        for up in [parent, *parent.parents]:
            if os.path.lexists(up) and not up.is_dir():
                raise NotADirectoryError(
                    errno.ENOTDIR, f"{up} is a file, not a directory", str(up)
                ) from None
        raise


@contextlib.contextmanager
def atomic_directory(
    target: Path,
    *,
    may_replace: Callable[[Path], bool] = lambda p: True,
    keep: Callable[[str], bool] | None = None,
) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``target`` when the block succeeds.

    ``may_replace(target)`` is asked before anything is written; it lets the
    caller refuse to replace a directory that is not its own. ``keep(name)``
    picks the entries of the old directory that are not the caller's to
    replace: they are carried into the new directory (hard links) just before
    the swap. If the block raises, the temporary directory is removed and
    ``target`` is untouched.

    Raises:
        FileExistsError: ``target`` is not a directory, or ``may_replace`` refused it.
        NotADirectoryError: a component of the parent path is a file.
        WeightsError: another save held the parent's lock past the timeout.
        OSError: the filesystem refused a write (read-only, full, busy).
    """
    target = Path(os.path.abspath(target))
    parent = target.parent
    _existing_parent(parent)
    with _locked(parent):
        recover(target)
        if os.path.lexists(target):
            if not target.is_dir() or target.is_symlink():
                raise FileExistsError(errno.EEXIST, "it exists and is not a directory", str(target))
            if any(target.iterdir()) and not may_replace(target):
                raise FileExistsError(
                    errno.EEXIST, "it exists and is not a zoo model directory", str(target)
                )
            _refuse_mounts(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP}", dir=parent))
        try:
            yield tmp
            _finish_files(tmp)
            if os.path.lexists(target):
                _swap(target, tmp, keep)
            else:
                os.rename(tmp, target)
                fsync_directory(parent)
        except BaseException:
            remove_tree(tmp)
            raise


def _refuse_mounts(target: Path) -> None:
    """A mount point inside ``target`` cannot be carried into a new directory: refuse."""
    inside = mounts_inside(target)
    if inside:
        raise MountInside(inside[0])


def _swap(target: Path, tmp: Path, keep: Callable[[str], bool] | None) -> None:
    """Put the complete new directory ``tmp`` in place of ``target``, keeping the user's files.

    The user's entries are linked in before the swap (:func:`~zoo_core.storage.carry.carry`);
    what changed in the old directory meanwhile is brought over after it, and the old
    directory emptied and removed (:func:`~zoo_core.storage.carry.drain`), never
    descending into another file system. A mount that appeared inside the old
    directory during the save undoes the swap (the old model, mount and all, goes
    back in place) and fails the save.
    """
    parent = target.parent
    carried = carry(target, tmp, os.stat(target).st_dev, keep) if keep is not None else None
    fsync_directory(tmp)
    if _exchange(tmp, target):
        old, undo = tmp, lambda: _exchange(tmp, target)  # tmp now holds the old model
    else:
        old = parent / f".{target.name}{_OLD}{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        os.rename(tmp, target)

        def undo() -> None:
            os.rename(target, tmp)
            os.rename(old, target)

    fsync_directory(parent)
    raced = mounts_inside(old)
    if raced:
        undo()
        fsync_directory(parent)
        remove_tree(tmp)
        raise MountInside(target / raced[0].relative_to(os.path.realpath(old)))
    # Readers that mapped the old files keep them: unlinking a name does not free a mapping.
    if carried is None:
        remove_tree(old)
        return
    try:
        drained = drain(old, target, carried, keep)
        problem = "files kept arriving in it"
    except OSError as err:
        drained, problem = False, err.strerror or str(err)
    if not drained:
        # Never delete what could not be brought over: keep the old directory, and say so.
        kept = parent / f".{target.name}{_KEPT}{uuid.uuid4().hex[:8]}"
        os.rename(old, kept)
        warnings.warn(
            f"{target} was saved, but what was written into the old directory during the "
            f"save could not all be moved into the new one ({problem}); it is kept as {kept}",
            ZooWarning,
            stacklevel=2,
        )
