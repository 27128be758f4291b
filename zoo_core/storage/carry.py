"""The user's files across a re-save: carried into the new directory, none lost, no mount crossed.

A save swaps a whole new directory in place of the old one (see
:mod:`zoo_core.storage.atomic`), so that a reader always sees one complete model.
What the user keeps in a model directory (a card, logs, a ``data/`` folder) is
not zoo's to replace, and must survive the swap even while something writes
into it:

1. :func:`carry` hard-links every user entry of the old directory into the new
   one just before the swap (folders are rebuilt, their files linked). Links
   cost nothing, keep each file's inode (a writer holding it open keeps writing
   into the file the new directory holds), and leave mode and owner as they were.
   A file that vanishes meanwhile is skipped, never an error.
2. After the swap, :func:`drain` looks at the old directory once more: a file
   that arrived after the carry-over is moved over, one replaced meanwhile
   replaces its carried copy, one removed meanwhile is removed from the new
   directory too, folders recursively. It then empties the old directory name
   by name and removes it with ``rmdir``, looking again for as long as files
   keep arriving: nothing a user wrote is lost.
3. :func:`remove_tree` deletes a directory without ever descending into another
   file system (what a failed save leaves, and leftovers of interrupted ones).

A mount point inside a model directory cannot be carried (a hard link cannot
cross it, and copying would duplicate the mounted files while deleting the old
directory would reach into them): :func:`mounts_inside` finds them, and a save
refuses such a directory before writing anything.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Carried", "MountInside", "carry", "drain", "mounts_inside", "remove_tree"]

_MOUNTINFO = "/proc/self/mountinfo"


class MountInside(OSError):
    """A mount point lies inside a directory a save would replace."""

    def __init__(self, mount: Path) -> None:
        super().__init__(errno.EBUSY, f"{mount} is a mount point", str(mount))
        self.mount = mount


@dataclass
class Carried:
    """What :func:`carry` linked, per name: the old entry's inode, the new one's, its children."""

    entries: dict[str, tuple[int, int, Carried | None]] = field(default_factory=dict)


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def mounts_inside(directory: Path) -> list[Path]:
    """Mount points strictly inside ``directory`` (bind mounts of the same file system too).

    Linux lists them in ``/proc/self/mountinfo``; elsewhere a folder on another
    device (``st_dev``) is one, looked for among ``directory``'s own entries.
    """
    real = os.path.realpath(directory)
    prefix = real.rstrip(os.sep) + os.sep
    found: list[Path] = []
    if sys.platform.startswith("linux") and os.path.exists(_MOUNTINFO):
        try:
            with open(_MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
                for line in f:
                    fields = line.split(" ")
                    if len(fields) > 4:
                        point = _unescape(fields[4])
                        if point.startswith(prefix):
                            found.append(Path(point))
        except OSError:
            pass
        return sorted(set(found))
    try:
        dev = os.stat(directory).st_dev
        with os.scandir(directory) as entries:
            for entry in entries:
                if (
                    entry.is_dir(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_dev != dev
                ):
                    found.append(Path(entry.path))
    except OSError:
        pass
    return sorted(found)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def carry(old: Path, new: Path, dev: int, keep: Callable[[str], bool] | None = None) -> Carried:
    """Hard-link the entries of ``old`` that ``keep`` accepts into ``new``, folders recursively.

    An entry ``new`` already holds (the save wrote it) is left to the save; one
    that vanishes while this runs is skipped. Linking is the rule; a regular
    file that cannot be linked (a file system without hard links) is copied.

    Raises:
        MountInside: a folder lies on another file system (``st_dev`` is not
            ``dev``), or a link would cross a mount point.
    """
    carried = Carried()
    for name in _listdir(old):
        if keep is not None and not keep(name):
            continue
        src, dst = old / name, new / name
        if os.path.lexists(dst):
            continue
        st = _lstat(src)
        if st is None:
            continue
        children = None
        try:
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != dev:
                    raise MountInside(src)
                os.mkdir(dst, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
                children = carry(src, dst, dev)
                with contextlib.suppress(OSError):
                    os.chmod(dst, stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            else:
                _link(src, dst, st)
        except FileNotFoundError:
            continue  # it vanished in between: the user removed or renamed it
        made = _lstat(dst)
        if made is not None:
            carried.entries[name] = (st.st_ino, made.st_ino, children)
    return carried


def _link(src: Path, dst: Path, st: os.stat_result) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as err:
        if err.errno == errno.EXDEV:
            raise MountInside(src.parent) from None  # same device, another mount: a bind mount
        if err.errno in (errno.ENOENT, errno.EEXIST) or not stat.S_ISREG(st.st_mode):
            raise
        shutil.copy2(src, dst, follow_symlinks=False)


def drain(
    old: Path, new: Path, carried: Carried | None = None, keep: Callable[[str], bool] | None = None
) -> bool:
    """After the swap, bring what changed in ``old`` since :func:`carry` into ``new``, then
    empty and remove ``old``.

    A file that arrived after the carry-over is moved over (unless ``new``
    already has that name: written after the swap, it is newer); one replaced
    in ``old`` meanwhile replaces its carried copy, unless that copy changed
    too; one removed from ``old`` meanwhile is removed from ``new`` if its
    carried copy is still there unchanged; folders likewise, recursively.
    ``keep`` picks the user's entries at the top level as in :func:`carry`;
    the others (the old model's files) are deleted.

    ``old`` is emptied name by name and removed with ``rmdir``, so a file
    created in it at any moment before that (a writer that looked the
    directory up before the swap) is found by the next round and moved over,
    never deleted. Returns False if ``old`` could not be emptied (something on
    another file system, or files kept arriving): then it is left in place.
    """
    try:
        dev = os.lstat(old).st_dev
    except FileNotFoundError:
        return True
    mounts = {os.path.realpath(m) for m in mounts_inside(old)}
    for round_ in range(_ROUNDS):
        first = round_ == 0
        names = _merge(old, new, carried if first and carried else Carried(), keep, first)
        for name in names:
            src, dst = old / name, new / name
            st = _lstat(src)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(src)
                continue
            if st.st_dev != dev or os.path.realpath(src) in mounts:
                return False
            was = (carried.entries.get(name) if first and carried else None) or (0, 0, None)
            user = keep is None or keep(name)
            if user and os.path.isdir(dst) and not os.path.islink(dst):
                if not drain(src, dst, was[2] or Carried()):
                    return False
            elif remove_tree(src):
                return False
        try:
            os.rmdir(old)
            return True
        except FileNotFoundError:
            return True
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                return False
    return False


# How often :func:`drain` looks again for files that keep arriving in the old directory.
_ROUNDS = 50


def _merge(
    old: Path, new: Path, carried: Carried, keep: Callable[[str], bool] | None, removals: bool
) -> list[str]:
    """One pass of :func:`drain` over the entries of ``old`` (folders are :func:`drain`'s)."""
    names = _listdir(old)
    for name in names:
        if keep is not None and not keep(name):
            continue
        src, dst = old / name, new / name
        st_old, st_new = _lstat(src), _lstat(dst)
        if st_old is None:
            continue
        was = carried.entries.get(name)
        try:
            if was is None:
                if st_new is None:
                    _move(src, dst)
                continue
            old_ino, new_ino, _ = was
            if st_old.st_ino != old_ino and st_new is not None and st_new.st_ino == new_ino:
                _replace(src, dst)
        except FileNotFoundError:
            continue
    if removals:
        present = set(names)
        for name, (_, new_ino, _) in carried.entries.items():
            if name in present:
                continue
            dst = new / name
            st_new = _lstat(dst)
            if st_new is not None and st_new.st_ino == new_ino:
                # Removed (or renamed away) from the old directory after it was carried.
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISDIR(st_new.st_mode):
                        remove_tree(dst)
                    else:
                        os.unlink(dst)
    return names


def _move(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` unless something arrived at ``dst`` meanwhile."""
    if os.path.isdir(src) and not os.path.islink(src):
        if not os.path.lexists(dst):
            os.rename(src, dst)
        return  # a folder there too: drain merges the two
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        return  # written after the swap: newer than what the old directory holds
    except OSError:
        if os.path.lexists(dst):
            return
        os.rename(src, dst)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(src)


def _replace(src: Path, dst: Path) -> None:
    if not (os.path.isdir(src) and not os.path.islink(src)):
        os.replace(src, dst)


def remove_tree(path: Path) -> list[Path]:
    """Delete ``path`` and everything in it, never descending into another file system.

    A folder on another device than ``path`` (``st_dev``) or a mount point
    (:func:`mounts_inside`: bind mounts of the same device too) is left where
    it is, and so are the folders that hold one. Returns what was left behind
    (empty when everything went). Entries that vanish meanwhile are fine.
    """
    root = _lstat(path)
    if root is None:
        return []
    if not stat.S_ISDIR(root.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return []
    skip = {os.path.realpath(m) for m in mounts_inside(path)}
    left: list[Path] = []
    _remove(path, root.st_dev, skip, left)
    return left


def _remove(path: Path, dev: int, skip: set[str], left: list[Path]) -> bool:
    """Remove ``path`` (a folder on ``dev``); False if something had to stay."""
    if os.path.realpath(path) in skip:
        left.append(path)
        return False
    clean = True
    for name in _listdir(path):
        child = path / name
        st = _lstat(child)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            if st.st_dev != dev:
                left.append(child)
                clean = False
            elif not _remove(child, dev, skip, left):
                clean = False
            continue
        try:
            os.unlink(child)
        except FileNotFoundError:
            pass
        except OSError:
            clean = False
            left.append(child)
    if clean:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            # EBUSY: a mount point only mountinfo could tell (a bind mount of this device).
            left.append(path)
            return False
    return clean
