"""A cache of what each plugin's hooks returned, so that listing imports no hook module.

``zoo list`` in an unchanged environment should cost the same with four
plugins as with a hundred. Two things would make it grow: scanning every
installed distribution's metadata for entry points, and importing every hook
module to call it. This module remembers both, in one JSON file under
``$XDG_CACHE_HOME/zoo`` (``~/.cache/zoo`` by default), and says when the
memory is still good:

- **Where the plugins are** (the ``zoo`` entry points: distribution, version,
  entry-point name and value, and the files of each hook module) is kept per
  *environment*: the interpreter's ``sys.path`` with the identity of each of
  its directories. Installing or uninstalling anything adds or removes a
  ``*.dist-info`` directory (or a ``.pth`` file, for an editable install) in a
  ``sys.path`` directory, which changes that directory's modification time; the
  import system's own directory cache relies on the same signal.
- **What a plugin's hooks returned** is kept per plugin (distribution name and
  version or ``ZOO_PLUGINS`` module name, entry point, environment prefix)
  with the identity (path, size, mtime_ns, ctime_ns, inode) of the files its
  import ran: the hook module and each package ``__init__.py`` above it. Those
  files are stat-ed on every run, so an edit or a touch of an editable
  install's hook module is a miss. After an install elsewhere in the
  environment they are looked up again by path (:func:`module_files`), without
  importing anything; after a miss they are read from ``sys.modules``
  (:func:`imported_files`). Edits to *other* modules a hook imports are not
  seen: touch the hook module, or set ``ZOO_NO_CACHE=1``.

Only results of plugins that worked are stored: a broken plugin may be broken
by something outside its own files (a missing dependency), so it is imported
again on every run and reported exactly as without the cache. A plugin whose
hook module cannot be found as a ``.py`` file (an extension module, a zip) is
never cached.

Writes are atomic (a temporary file in the same directory, then
``os.replace``) and merge with what concurrent writers stored in between; a
lost race costs a miss, never a broken file. A cache file that cannot be read
or parsed is ignored and rewritten. ``ZOO_NO_CACHE=1`` turns all of it off.

The cache says which code zoo imports and which weights a name resolves to, so
it is trusted only as ssh trusts its files: the file and its directory must
be owned by the current user and writable by nobody else. It is opened
without following a symlink or blocking (a FIFO cannot hang zoo), only if it
is a regular file, and only up to :data:`MAX_CACHE_BYTES`. A cache that fails
any of this is ignored, never written, and the reason is given once
(:attr:`PluginCache.problem`).

The registry stores one record per plugin, ``{"api_version": ..., "hooks":
{hook name: JSON-able result}}``: another hook's result can join ``hooks``.

>>> cache = PluginCache.open("zoo-core 0.1.0")                   # doctest: +SKIP
>>> cache.lookup(("zoo-cnn", "0.1.0", "cnn"), "zoo_cnn.plugin")  # doctest: +SKIP
{'api_version': 1, 'hooks': {'zoo_register_models': [...]}, 'files': [...], ...}
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import time
from importlib.machinery import BYTECODE_SUFFIXES, EXTENSION_SUFFIXES, SOURCE_SUFFIXES
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_FILE",
    "MAX_CACHE_BYTES",
    "PluginCache",
    "Untrusted",
    "cache_enabled",
    "cache_path",
    "entry_points",
    "imported_files",
    "load_entry_point",
    "module_files",
    "read_trusted",
]

CACHE_FILE = "plugins-v1.json"
_FORMAT = 1
# Entries from other environments and uninstalled plugins linger until the file holds this many.
_MAX_PLUGINS = 2000
_MAX_ENVIRONMENTS = 16
_SOURCE = SOURCE_SUFFIXES[0]

FileId = list[Any]  # [path, size, mtime_ns, ctime_ns, inode]
#: The largest cache file zoo reads: 2,000 plugins' records fit in a few MB.
MAX_CACHE_BYTES = 32 * 1024 * 1024
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)


class Untrusted(Exception):
    """The cache (or its directory) must not be trusted; the message says why."""


def _check_owner(st: os.stat_result, what: str) -> None:
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    if uid is not None and st.st_uid != uid:
        raise Untrusted(f"{what} is owned by uid {st.st_uid}, not by you (uid {uid})")
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise Untrusted(
            f"{what} is writable by {'others' if st.st_mode & 0o002 else 'its group'} "
            f"(mode {stat.S_IMODE(st.st_mode):o})"
        )


def read_trusted(path: Path) -> bytes | None:
    """The bytes of the cache file at ``path``; None if there is none.

    Raises:
        Untrusted: the file or its directory is not the user's alone, the file
            is not a regular file (a symlink, a FIFO, a device) or is too large.
    """
    if not hasattr(os, "O_DIRECTORY") or os.open not in os.supports_dir_fd:
        try:  # no directory handles here (Windows): a plain, bounded read
            with open(path, "rb") as f:
                return f.read(MAX_CACHE_BYTES)
        except FileNotFoundError:
            return None
    try:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise Untrusted(f"its directory cannot be opened safely ({err.strerror or err})") from None
    try:
        _check_owner(os.fstat(dfd), "its directory")
        try:
            fd = os.open(path.name, _OPEN_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise Untrusted(
                "it is a symbolic link" if err.errno == errno.ELOOP else (err.strerror or str(err))
            ) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Untrusted("it is not a regular file")
            _check_owner(st, "it")
            if st.st_size > MAX_CACHE_BYTES:
                raise Untrusted(f"it is {st.st_size} bytes (at most {MAX_CACHE_BYTES})")
            data = os.read(fd, MAX_CACHE_BYTES + 1)
            if len(data) > MAX_CACHE_BYTES:
                raise Untrusted(f"it is over {MAX_CACHE_BYTES} bytes")
            return data
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def cache_enabled() -> bool:
    """False when ``ZOO_NO_CACHE`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get("ZOO_NO_CACHE", "") in ("", "0")


def cache_path() -> Path | None:
    """``$XDG_CACHE_HOME/zoo/plugins-v1.json``, or under ``~/.cache`` when it is unset.

    None when neither gives an absolute directory (no home directory): then
    there is no cache, rather than one in whatever the working directory is.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, or relative, which the XDG spec says to ignore
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zoo" / CACHE_FILE if os.path.isabs(base) else None


def _file_id(path: str) -> FileId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _listing(directory: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(directory))
    except OSError:
        return frozenset()


def _source(directory: str, name: str, names: frozenset[str]) -> str | None:
    """The path of ``name + ".py"`` in ``directory`` (listed as ``names``) if that is what
    the import system loads for ``name``; ``""`` if nothing is there; None if something
    else would load (an extension module, bytecode without source)."""
    if any(name + s in names for s in EXTENSION_SUFFIXES):
        return None
    if name + _SOURCE in names:
        return os.path.join(directory, name + _SOURCE)
    if any(name + s in names for s in BYTECODE_SUFFIXES):
        return None
    return ""


def _find_part(locations: list[str], part: str, last: bool) -> tuple[list[str], list[str]] | None:
    """Where the import system would find ``part`` in ``locations``: (files, search locations).

    Follows ``FileFinder``'s order (a package directory before a module file,
    extension modules before sources, namespace portions last). Returns None
    for anything that is not plain source (an extension, bytecode only).
    One directory listing per location: cheaper than a stat per candidate name.
    """
    namespace = []
    for location in locations:
        names = _listing(location)
        package = os.path.join(location, part)
        if part in names and os.path.isdir(package):
            found = _source(package, "__init__", _listing(package))
            if found is None:
                return None
            if found:
                return [found], [package]
            namespace.append(package)
        found = _source(location, part, names)
        if found is None:
            return None
        if found:
            return ([found], []) if last else None
    if namespace and not last:
        return [], namespace
    return None


def module_files(module: str) -> list[str] | None:
    """The source files that importing ``module`` would run, found without importing them.

    That is every package ``__init__.py`` on the way down and the module's own
    file. Only the top-level name goes through ``importlib.util.find_spec``
    (which imports nothing for a top-level name, and honours editable-install
    finders); the rest is looked up by path, because ``find_spec`` on a dotted
    name imports the parent packages. None when a part is not plain Python
    source, or cannot be found.

    >>> module_files("zoo_cnn.plugin")                   # doctest: +SKIP
    ['/src/zoo_cnn/__init__.py', '/src/zoo_cnn/plugin.py']
    """
    from importlib.util import find_spec

    top, _, rest = module.partition(".")
    try:
        spec = find_spec(top)
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without __spec__
        return None
    if spec is None:
        return None
    files: list[str] = []
    origin = spec.origin if spec.has_location else None
    if origin is not None:
        if not origin.endswith(_SOURCE) or not os.path.isfile(origin):
            return None
        files.append(origin)
    if not rest:
        return files or None
    locations = list(spec.submodule_search_locations or [])
    parts = rest.split(".")
    for i, part in enumerate(parts):
        found = _find_part(locations, part, last=i == len(parts) - 1)
        if found is None:
            return None
        files.extend(found[0])
        locations = found[1]
    return files


def imported_files(module: str) -> list[str] | None:
    """The source files that the import of ``module`` in this process ran.

    The same list :func:`module_files` finds before an import, read from the
    specs in ``sys.modules`` after it; None if ``module`` is not imported or a
    part of it is not plain Python source.
    """
    parts = module.split(".")
    files = []
    for i in range(1, len(parts) + 1):
        spec = getattr(sys.modules.get(".".join(parts[:i])), "__spec__", None)
        if spec is None:
            return None
        if spec.has_location:
            if not (isinstance(spec.origin, str) and spec.origin.endswith(_SOURCE)):
                return None
            files.append(spec.origin)
        elif spec.submodule_search_locations is None:  # not a namespace package either
            return None
    return files or None


def _settled(ident: FileId, since_ns: int) -> bool:
    """Whether the file last changed well before ``since_ns`` (its inode change time,
    which nothing can set back). Whole-second times mean a coarse file system: wait 2 s."""
    ctime = ident[3]
    margin = 2_000_000_000 if ctime % 1_000_000_000 == 0 else 50_000_000
    return ctime < since_ns - margin


def _identities(paths: list[str]) -> list[FileId] | None:
    ids = []
    for path in paths:
        ident = _file_id(path)
        if ident is None:
            return None
        ids.append(ident)
    return ids


def _environment() -> str:
    """The interpreter's import path and the identity of each of its directories."""
    entries = []
    for entry in sys.path:
        try:
            path = entry or os.getcwd()  # "" means the working directory
        except OSError:  # the working directory was removed
            path = entry
        try:
            st = os.stat(path)
            entries.append([path, st.st_mtime_ns, st.st_ino])
        except OSError:
            entries.append([path, None, None])
    return json.dumps([sys.executable, sys.implementation.cache_tag, entries])


EntryPointRow = tuple[str | None, str | None, str, str]


def entry_points(group: str, cache: PluginCache | None = None) -> list[EntryPointRow]:
    """``(distribution, version, name, value)`` of each entry point in ``group``.

    From ``cache`` when this environment is unchanged; else from a scan of the
    installed distributions' metadata (and then stored in ``cache``).
    Importing ``importlib.metadata`` alone costs more than a warm listing, so
    it is imported only for a scan.

    >>> entry_points("zoo")                                # doctest: +SKIP
    [('zoo-cnn', '0.1.0', 'cnn', 'zoo_cnn.plugin'), ...]
    """
    found = cache.stored_entry_points(group) if cache is not None else None
    if found is None:
        from importlib import metadata

        found = []
        for ep in metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            meta = dist.metadata if dist is not None else None  # parsed once, not per field
            name, version = (meta["Name"], meta["Version"]) if meta is not None else (None, None)
            found.append((name, version, ep.name, ep.value))
        if cache is not None:
            cache.store_entry_points(group, found)
    return found


def load_entry_point(name: str, value: str, group: str) -> Any:
    """What the entry point ``name = value`` refers to (importing its module), as pip's would."""
    from importlib import metadata

    return metadata.EntryPoint(name=name, value=value, group=group).load()


class PluginCache:
    """The plugin cache of this process: read once, written at most once (:meth:`save`).

    Build it with :meth:`open`, which returns None when caching is disabled.
    ``salt`` names everything outside the plugins that shapes the stored
    results (zoo-core's version, its plugin API); a file written under another
    salt is ignored.
    """

    def __init__(self, path: Path, salt: str) -> None:
        self.path = path
        self.salt = salt
        #: Why the cache file is not trusted (then it is neither used nor written), or None.
        self.problem: str | None = None
        self._environment = _environment()
        self._data = self._read()
        self._new_plugins: dict[str, Any] = {}
        self._new_environment: dict[str, Any] | None = None
        self._found: dict[str, list[str] | None] = {}
        self._started: dict[str, int] = {}
        self._dirty = self._data is None  # a corrupt file is rewritten even on a full hit
        if self._data is None:
            self._data = {"format": _FORMAT, "salt": salt, "environments": {}, "plugins": {}}
        env = self._data["environments"].get(self._environment)
        self._env = env if isinstance(env, dict) else None

    @classmethod
    def open(cls, salt: str, *, code: tuple[str, ...] = ()) -> PluginCache | None:
        """The cache, or None when ``ZOO_NO_CACHE`` disables it (or there is no cache directory).

        The identities of the files in ``code`` (the modules that call the hooks
        and check their results) join the salt, so editing them is a miss.
        """
        path = cache_path() if cache_enabled() else None
        if path is None:
            return None
        return cls(path, json.dumps([salt, [_file_id(f) for f in code]]))

    def _read(self) -> dict[str, Any] | None:
        empty = {"format": _FORMAT, "salt": self.salt, "environments": {}, "plugins": {}}
        try:
            raw = read_trusted(self.path)
        except Untrusted as err:
            self.problem = str(err)
            return empty
        except OSError:
            return None
        if raw is None:
            return empty
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or not isinstance(data.get("environments"), dict)
            or not isinstance(data.get("plugins"), dict)
        ):
            return None
        if data.get("salt") != self.salt:
            # Another zoo-core wrote it: its results may not hold here. Start afresh.
            return {"format": _FORMAT, "salt": self.salt, "environments": {}, "plugins": {}}
        return data

    # -- where the plugins are ------------------------------------------------------------

    def stored_entry_points(self, group: str) -> list[EntryPointRow] | None:
        """The entry points of ``group`` stored for this environment, or None if unknown."""
        stored = self._env.get("entry_points") if self._env else None
        rows = stored.get(group) if isinstance(stored, dict) else None
        if not isinstance(rows, list):
            return None
        try:
            return [(d, v, str(n), str(m)) for d, v, n, m in rows]
        except (TypeError, ValueError):
            return None

    def store_entry_points(self, group: str, found: list[EntryPointRow]) -> None:
        """Remember the entry points of ``group`` that a scan of this environment found."""
        self._new_environment = {"entry_points": {group: [list(e) for e in found]}, "modules": {}}
        self._dirty = True

    def _paths(self, module: str) -> list[str] | None:
        """Where ``module``'s files are: as stored for this environment, else looked up."""
        if module not in self._found:
            stored = (self._env or {}).get("modules")
            files = stored.get(module) if isinstance(stored, dict) else None
            if not (isinstance(files, list) and files and all(isinstance(f, str) for f in files)):
                files = module_files(module)
            self._found[module] = files
        return self._found[module]

    # -- what the hooks returned ----------------------------------------------------------

    @staticmethod
    def _key(identity: tuple[Any, ...], module: str) -> str:
        # One record per plugin and environment prefix: an edit replaces it, never adds one.
        return json.dumps([sys.prefix, list(identity), module])

    def lookup(self, identity: tuple[Any, ...], module: str) -> dict[str, Any] | None:
        """What was stored for this plugin, if its identity and hook files are unchanged.

        ``identity`` names the plugin (e.g. distribution, version, entry point);
        ``module`` is its hook module (an entry-point value). Returns the record
        given to :meth:`store` (with ``"files"`` added), or None. Nothing is
        looked up on disk for a plugin that has no record.
        """
        key = self._key(identity, module)
        self._started[key] = time.time_ns()  # an import after a miss starts after this
        record = self._data["plugins"].get(key)
        if not (
            isinstance(record, dict)
            and isinstance(record.get("hooks"), dict)
            and isinstance(record.get("files"), list)
        ):
            return None
        files = self._paths(module.partition(":")[0])
        if not files or _identities(files) != record["files"]:
            return None
        return record

    def store(self, identity: tuple[Any, ...], module: str, record: dict[str, Any]) -> None:
        """Remember ``record`` (JSON-able, with a ``"hooks"`` dict) for this plugin.

        Call it after :meth:`lookup` missed and the hook module was imported:
        the files stored are those the import ran (from ``sys.modules``). A file
        changed since just before the lookup is not trusted (the import may have
        read either version), so nothing is stored and the next run reads the
        plugin again, as git does with racily clean files.
        """
        key = self._key(identity, module)
        name = module.partition(":")[0]
        files = imported_files(name)
        ids = _identities(files) if files else None
        if ids is None:
            return  # not plain source on disk: never cached
        since = self._started.get(key, time.time_ns())
        if any(not _settled(ident, since) for ident in ids):
            return
        try:
            json.dumps(record)
        except (TypeError, ValueError):
            return  # not JSON: kept out, so that save() cannot fail on it
        self._found[name] = files
        self._new_plugins[key] = {**record, "files": ids, "stored": time.time()}
        self._dirty = True

    # -- writing --------------------------------------------------------------------------

    def save(self) -> None:
        """Write what this run learnt, merged with the file as it is now; never raises.

        Nothing is written where the cache is not trusted (see :attr:`problem`).
        """
        if not self._dirty or self.problem is not None:
            return
        env = self._new_environment or self._env
        if env is not None:
            modules = {m: f for m, f in self._found.items() if f}
            env = {**env, "modules": {**env.get("modules", {}), **modules}, "stored": time.time()}
        current = self._read() or {}  # a concurrent writer may have added entries meanwhile
        if self.problem is not None:
            return
        plugins = {**current.get("plugins", {}), **self._new_plugins}
        environments = dict(current.get("environments", {}))
        if env is not None:
            environments[self._environment] = env
        data = {
            "format": _FORMAT,
            "salt": self.salt,
            "environments": _newest(environments, _MAX_ENVIRONMENTS),
            "plugins": _newest(plugins, _MAX_PLUGINS),
        }
        # Not tempfile.mkstemp: importing tempfile costs more than this whole write.
        tmp = str(self.path.parent / f".{CACHE_FILE}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            # The user's alone, as the cache must be to be trusted.
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return  # a read-only or missing home: run without a cache
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(data, separators=(",", ":")))  # json.dump is pure Python: slow
            os.replace(tmp, self.path)
        except OSError:
            pass
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._dirty = False


def _newest(entries: dict[str, Any], limit: int) -> dict[str, Any]:
    if len(entries) <= limit:
        return entries

    def stored(item: tuple[str, Any]) -> float:
        value = item[1].get("stored") if isinstance(item[1], dict) else None
        return value if isinstance(value, (int, float)) else 0.0

    return dict(sorted(entries.items(), key=stored, reverse=True)[:limit])
