"""The saved-model record: ``config.json``, its header-metadata twin, a directory's members.

A saved model is a directory holding ``config.json`` and either
``model.safetensors`` or shards named by ``model.safetensors.index.json`` (the
layout :func:`huggingface_hub.save_torch_state_dict` writes). ``config.json``
records the architecture, the plugin distribution and version, the zoo_core
version, the config fields and every weight file's sha256 and size; the same
facts go into the safetensors header metadata, so a lone ``.safetensors`` file
describes itself. Everything here reads JSON only, through the directory
snapshot (:mod:`zoo_core.storage.snapshot`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError
from zoo_core.storage import limits
from zoo_core.storage.safetensors_io import FileRecord
from zoo_core.storage.snapshot import OpenedDirectory, Vanished, open_regular, read_limited

__all__ = [
    "CONFIG_NAME",
    "FILES_KEY",
    "FORMAT_VERSION",
    "INDEX_NAME",
    "META_PREFIX",
    "WEIGHTS_NAME",
    "check_files_record",
    "check_member",
    "check_record",
    "is_zoo_directory",
    "is_zoo_file",
    "make_record",
    "metadata_to_record",
    "model_files",
    "parse_json",
    "plain_name",
    "read_json",
    "read_member_bytes",
    "read_member_json",
    "record_to_metadata",
    "recorded_weights",
    "stays_inside",
]

CONFIG_NAME = "config.json"


WEIGHTS_NAME = "model.safetensors"


INDEX_NAME = "model.safetensors.index.json"


FORMAT_VERSION = 1


META_PREFIX = "zoo."


FILES_KEY = "files"


def make_record(
    architecture: str,
    plugin: str | None,
    plugin_version: str | None,
    target: str,
    config: dict[str, Any],
) -> dict[str, Any]:
    """The description of a model that goes into ``config.json``."""
    from zoo_core.version import __version__

    return {
        "zoo_format": FORMAT_VERSION,
        "architecture": architecture,
        "plugin": plugin,
        "plugin_version": plugin_version,
        "zoo_core_version": __version__,
        "target": target,
        "config": config,
    }


def record_to_metadata(record: dict[str, Any]) -> dict[str, str]:
    """Safetensors header metadata (string values only) carrying the same record."""
    meta = {"format": "pt"}
    for key, value in record.items():
        if value is None:
            continue
        meta[META_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
    return meta


def metadata_to_record(meta: dict[str, str], where: Path) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in meta.items():
        if not key.startswith(META_PREFIX):
            continue
        name = key[len(META_PREFIX) :]
        if name in ("config", "zoo_format", "weights"):  # what record_to_metadata wrote as JSON
            try:
                record[name] = json.loads(value)
            except (ValueError, RecursionError) as err:
                text = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
                raise WeightsError(f"{where}: metadata field {key!r} is not JSON: {text}") from None
        else:
            record[name] = value
    return record


def check_record(record: Any, where: Path) -> dict[str, Any]:
    """Check a zoo record (``config.json`` or header metadata) and fill in defaults.

    Raises:
        WeightsError: the record is not an object, names no architecture, or has
            fields of the wrong type or a format newer than this zoo-core.
    """
    if not isinstance(record, dict):
        raise WeightsError(f"{where} must hold a JSON object, not {type(record).__name__}")
    if "architecture" not in record:
        raise WeightsError(
            f"{where} does not say which zoo architecture it holds (no 'architecture' field)",
            hint="for weights saved by other tools, name the architecture: --arch NAME",
        )
    for key in ("architecture", "plugin", "plugin_version", "target"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise WeightsError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    fmt = record.get("zoo_format", FORMAT_VERSION)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise WeightsError(f"{where}: zoo_format must be a positive integer, got {fmt!r}")
    if fmt > FORMAT_VERSION:
        raise WeightsError(
            f"{where}: zoo_format {fmt!r} is newer than this zoo-core understands",
            hint="upgrade zoo-core: pip install -U zoo-core",
        )
    if not isinstance(record.get("config", {}), dict):
        raise WeightsError(f"{where}: 'config' must be a JSON object")
    record.setdefault("config", {})
    if FILES_KEY in record:
        check_files_record(record[FILES_KEY], where)
    return record


def check_files_record(files: Any, where: Path | str) -> dict[str, FileRecord]:
    """The ``files`` entry of ``config.json``, checked: ``{name: {"sha256": hex, "size": int}}``.

    Raises:
        WeightsError: the entry has another shape.
    """
    if not isinstance(files, dict):
        raise WeightsError(f"{where}: 'files' must be a JSON object")
    out = {}
    for name, entry in files.items():
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if (
            not plain_name(name)
            or not isinstance(digest, str)
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
            or not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
        ):
            raise WeightsError(
                f"{where}: 'files' entry {str(name)[:80]!r} must be "
                '{"sha256": <64 hex digits>, "size": <bytes>}'
            )
        out[name] = FileRecord(digest, size)
    return out


def plain_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and bool(name)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and name not in (".", "..")
    )


def parse_json(data: bytes, where: Path | str) -> Any:
    """Parse the bytes of a small JSON file (config or index).

    Raises:
        WeightsError: not UTF-8 JSON.
    """
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError covers JSONDecodeError and integers too long to convert.
        text = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise WeightsError(f"{where} is not valid JSON: {text}") from None


def json_limit(name: str) -> tuple[int, str, str]:
    if name == INDEX_NAME:
        return limits.max_index_bytes(), "an index", limits.LIMITS["index"].env
    return limits.max_config_bytes(), "a config", limits.LIMITS["config"].env


def read_json(path: Path) -> Any:
    """Parse a small JSON file (config or index), refusing oversized, irregular or bad ones.

    The file is opened without blocking and only if it is a regular file; its
    size is checked against :mod:`zoo_core.storage.limits` before it is read.

    Raises:
        WeightsError: the file is unreadable, not a regular file, too large, or not JSON.
    """
    path = Path(path)
    limit, what, env = json_limit(path.name)
    try:
        fd = open_regular(path)
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        data = read_limited(fd, path, limit, what, env)
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None
    finally:
        os.close(fd)
    return parse_json(data, path)


def read_member_bytes(opened: OpenedDirectory, name: str) -> bytes | None:
    """The bytes of a JSON member (config or index), size-checked; None if there is none."""
    limit, what, env = json_limit(name)
    try:
        return opened.read(name, limit=limit, what=what, env=env)
    except OSError as err:
        raise WeightsError(f"cannot read {opened.path / name}: {err.strerror or err}") from None


def read_member_json(opened: OpenedDirectory, name: str) -> Any:
    """A JSON member of an opened directory, or None when there is no such file."""
    data = read_member_bytes(opened, name)
    return None if data is None else parse_json(data, opened.path / name)


def stays_inside(directory: Path, path: Path) -> bool:
    """Whether ``path`` (symlinks followed) lies inside ``directory``.

    huggingface_hub's cache links ``snapshots/<commit>/<name>`` to
    ``../../blobs/<hash>``; inside a snapshot, that blobs folder counts as inside.

    Raises:
        OSError, RuntimeError: a symlink loop.
    """
    homes = [directory.resolve()]
    if directory.parent.name == "snapshots":
        homes.append(homes[0].parent.parent / "blobs")
    return any(home in path.resolve().parents for home in homes)


def check_member(directory: str | os.PathLike[str], name: str) -> Path | None:
    """The path of file ``name`` in a model directory, checked; None if there is no such entry.

    A member must be a regular file inside ``directory``: a symlink leaving it
    (or a loop), a FIFO, a device or a subdirectory is refused. Anything that
    uploads or copies a model directory's files (``zoo push``) checks each one
    with this first, so a planted link cannot smuggle another file out.

    Raises:
        WeightsError: ``name`` is not a plain file name, or the member is refused.

    >>> check_member("cnn/", "README.md")                    # doctest: +SKIP
    PosixPath('cnn/README.md')
    """
    if not plain_name(name):
        raise WeightsError(f"{str(name)[:80]!r} is not a file name inside {directory}")
    with OpenedDirectory(directory) as opened:
        try:
            return opened.check(name)
        except Vanished:
            return None


def model_files(directory: str | os.PathLike[str]) -> list[str]:
    """Every top-level file name of a model directory, each checked with :func:`check_member`.

    Hidden entries (a leading dot) and subdirectories are skipped; what is
    listed is safe to read or upload.

    Raises:
        WeightsError: a file is a symlink leaving the directory, or not a regular file.
    """
    with OpenedDirectory(directory) as opened:
        names = []
        for name in opened.names():
            if name.startswith(".") or _is_subdirectory(opened, name):
                continue
            try:
                if opened.check(name) is not None:
                    names.append(name)
            except Vanished:
                continue
        return names


def _is_subdirectory(opened: OpenedDirectory, name: str) -> bool:
    import stat

    try:
        mode = os.stat(opened.path / name, follow_symlinks=False).st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode)


def is_zoo_directory(path: Path) -> bool:
    """Whether ``path`` holds a zoo model (a regular ``config.json`` with zoo's record)."""
    try:
        with OpenedDirectory(path) as opened:
            data = read_member_json(opened, CONFIG_NAME)
    except (OSError, WeightsError, Vanished):
        return False
    return isinstance(data, dict) and "zoo_format" in data


def is_zoo_file(name: str) -> bool:
    """Whether a save owns the top-level entry ``name`` (and so replaces or drops it).

    zoo owns ``config.json`` and every ``*.safetensors`` and
    ``*.safetensors.index.json`` file; everything else in a model directory
    (``README.md``, training logs, folders) belongs to the user and survives
    a re-save.
    """
    return (
        name == CONFIG_NAME
        or name.endswith(".safetensors")
        or name.endswith(".safetensors.index.json")
    )


def recorded_weights(record: dict[str, Any]) -> set[str] | None:
    """The weight files (``*.safetensors``, the index) a record's ``files`` names; None if none.

    These are the files a load reads, a push uploads and a re-save replaces: a
    weights file in the directory that the record does not name is not the
    model's (a stray ``model.safetensors`` beside recorded shards, a user's own
    file) and is left alone. A record without ``files`` (another tool's
    ``config.json``) names nothing: None.
    """
    files = record.get(FILES_KEY)
    if not isinstance(files, dict):
        return None
    return {n for n in files if isinstance(n, str) and n != CONFIG_NAME and is_zoo_file(n)}
