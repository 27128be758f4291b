"""The weight format: safetensors in the Hugging Face layout, plus zoo's record.

A saved model is a directory holding ``config.json`` and either
``model.safetensors`` or shards named by ``model.safetensors.index.json`` (the
layout :func:`huggingface_hub.save_torch_state_dict` writes). ``config.json``
records the architecture, the plugin distribution and version, the zoo_core
version and the config fields; the same facts go into the safetensors header
metadata, so a lone ``.safetensors`` file describes itself.

Reading never unpickles anything: safetensors headers are JSON and the tensor
data is raw bytes.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import UsageError, WeightsError, ZooWarning
from zoo_core.progress import ProgressCallback, part_of
from zoo_core.storage import limits
from zoo_core.storage.atomic import atomic_directory
from zoo_core.storage.safetensors_io import (
    FileRecord,
    Header,
    can_write,
    hash_file,
    read_header,
    separate_views,
    write_file,
)
from zoo_core.storage.snapshot import Handles, OpenedDirectory, Vanished, open_regular, read_limited

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "INDEX_NAME",
    "WEIGHTS_NAME",
    "SavedModel",
    "check_files_record",
    "check_member",
    "is_zoo_directory",
    "is_zoo_file",
    "model_files",
    "read_saved",
    "read_tensors",
    "reads_on_first_use",
    "structure_problems",
    "write_directory",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
FORMAT_VERSION = 1
# How often a read starts again because saves kept replacing the directory under it.
_READ_ATTEMPTS = 50
_META_PREFIX = "zoo."
FILES_KEY = "files"


@dataclass
class SavedModel:
    """What a saved source holds, read from its JSON parts only (no tensor data yet)."""

    path: Path
    kind: str  # "directory" or "file"
    record: dict[str, Any]
    key_to_file: dict[str, Path] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    headers: dict[Path, Header] = field(default_factory=dict)
    # The open files everything was read from (one snapshot of the directory); see dirview.
    handles: Handles | None = field(default=None, repr=False, compare=False)

    @property
    def architecture(self) -> str:
        return self.record["architecture"]

    @property
    def source(self) -> str:
        """How commands name where this model came from."""
        return str(self.path)

    def provenance(self) -> dict[str, Any]:
        """Extra facts about the origin for ``zoo load --json`` (the Hub adds its commit)."""
        return {}

    @property
    def files(self) -> list[Path]:
        return sorted(set(self.key_to_file.values()))

    def fd(self, file: Path) -> int | None:
        """The open descriptor ``file`` was read from, if this snapshot holds one."""
        return None if self.handles is None else self.handles.get(file)

    def readable_path(self, file: Path) -> str | Path:
        """A path that opens the very file this snapshot read (not whatever is there now)."""
        return file if self.handles is None else self.handles.readable_path(file)

    def close(self) -> None:
        """Close the files held open (tensors already read or mapped stay valid)."""
        if self.handles is not None:
            self.handles.close()


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
        meta[_META_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
    return meta


def metadata_to_record(meta: dict[str, str], where: Path) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in meta.items():
        if not key.startswith(_META_PREFIX):
            continue
        name = key[len(_META_PREFIX) :]
        if name in ("config", "zoo_format"):
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
            not _plain_name(name)
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


def _plain_name(name: Any) -> bool:
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


def _json_limit(name: str) -> tuple[int, str, str]:
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
    limit, what, env = _json_limit(path.name)
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


def _read_member_json(opened: OpenedDirectory, name: str) -> Any:
    """A JSON member of an opened directory, or None when there is no such file."""
    limit, what, env = _json_limit(name)
    try:
        data = opened.read(name, limit=limit, what=what, env=env)
    except OSError as err:
        raise WeightsError(f"cannot read {opened.path / name}: {err.strerror or err}") from None
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
    if not _plain_name(name):
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


def _member(opened: OpenedDirectory, name: Any, where: Path) -> Path:
    """A file named by an index, checked to be a plain file inside the directory, held open."""
    if not _plain_name(name):
        raise WeightsError(f"{where} names an invalid shard file {str(name)[:80]!r}")
    path = opened.check(name)
    if path is None:
        raise WeightsError(f"{where} names the shard {name!r}, which is missing")
    return path


def _safe_open(
    path: Path, device: str = "cpu", *, backend: str = "mmap", source: str | Path | None = None
) -> Any:
    """safetensors' reader on ``source`` (the snapshot's open file); ``path`` names it in errors."""
    from safetensors import SafetensorError, safe_open

    source = path if source is None else source
    try:
        if backend == "mmap":
            return safe_open(source, framework="pt", device=device)
        return safe_open(source, framework="pt", device=device, backend=backend)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(
            f"{path} is not a readable safetensors file ({text})",
            hint="the file may be truncated or corrupt; save or download it again",
        ) from None


def is_zoo_directory(path: Path) -> bool:
    """Whether ``path`` holds a zoo model (a regular ``config.json`` with zoo's record)."""
    try:
        with OpenedDirectory(path) as opened:
            data = _read_member_json(opened, CONFIG_NAME)
    except (OSError, WeightsError, Vanished):
        return False
    return isinstance(data, dict) and "zoo_format" in data


def read_saved(path: Path, *, foreign: bool = False) -> SavedModel:
    """Read the record and the tensor map of a saved directory or lone file.

    Every safetensors header is parsed and checked here; no tensor data is
    read (content hashes are :mod:`zoo_core.sources.verify`'s job). A directory is read
    as one snapshot: its files are opened through one handle of the directory
    and stay open in the result (``saved.close()`` releases them), so a save
    replacing the directory meanwhile cannot mix two models; if one does
    replace it mid-read, the read starts again.

    With ``foreign=True`` the source may come from another tool (a
    ``PyTorchModelHubMixin`` or ``save_torch_model`` directory, a bare
    ``.safetensors`` file): ``config.json`` is optional, and the record's
    ``config`` holds whatever config fields it offers, for the caller to match
    against an architecture it names.

    Raises:
        WeightsError: the source is not a zoo model, or its JSON parts are broken.
    """
    path = Path(path)
    if path.is_dir():
        for attempt in range(_READ_ATTEMPTS):
            opened = OpenedDirectory(path)
            try:
                return read_opened(opened, foreign=foreign)
            except Vanished:
                opened.close()
                time.sleep(0.001 * attempt)
            except BaseException:
                opened.close()
                raise
        raise WeightsError(
            f"{path} was replaced {_READ_ATTEMPTS} times while zoo read it",
            hint="wait until the saves into it finish, then try again",
        )
    if path.is_file():
        return _read_lone_file(path, foreign)
    raise WeightsError(f"{path} is neither a file nor a directory")


def read_opened(opened: OpenedDirectory, *, foreign: bool = False) -> SavedModel:
    """:func:`read_saved` for a directory already opened (verify reads the same snapshot).

    Raises:
        Vanished: a save replaced the directory while it was read.
        WeightsError: as :func:`read_saved`.
    """
    path = opened.path
    config_path = path / CONFIG_NAME
    data = _read_member_json(opened, CONFIG_NAME)
    if foreign:
        record = _foreign_record(data if data is not None else {})
    elif data is None:
        raise WeightsError(
            f"{path} has no {CONFIG_NAME}, so it is not a saved zoo model",
            hint="save one with 'zoo save NAME DIR', or name the architecture with --arch",
        )
    else:
        record = check_record(data, config_path)
    saved = SavedModel(path=path, kind="directory", record=record, handles=opened.handles)
    if opened.lexists(WEIGHTS_NAME):
        _map_single(saved, _member(opened, WEIGHTS_NAME, path))
    elif opened.lexists(INDEX_NAME):
        _map_index(saved, opened)
    else:
        if opened.replaced():
            raise Vanished(str(path))
        raise WeightsError(f"{path} has neither {WEIGHTS_NAME} nor {INDEX_NAME}")
    _check_tensor_count(saved)
    return saved


def _read_lone_file(path: Path, foreign: bool) -> SavedModel:
    handles = Handles()
    try:
        fd = handles.add(path, open_regular(path))
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None
    header = read_header(path, fd=fd)
    record = metadata_to_record(header.metadata, path)
    if foreign:
        record = _foreign_record(record)
    elif "architecture" not in record:
        raise WeightsError(
            f"{path} carries no zoo metadata, so zoo cannot tell which architecture it is",
            hint="name it: zoo load FILE --arch NAME (or load_model(FILE, arch=NAME))",
        )
    saved = SavedModel(path=path, kind="file", record=check_record(record, path), handles=handles)
    _map_single(saved, path, header)
    return saved


def _check_tensor_count(saved: SavedModel) -> None:
    limit = limits.max_tensors()
    if len(saved.key_to_file) > limit:
        raise WeightsError(
            f"{saved.path} holds {len(saved.key_to_file)} tensors; zoo reads at most {limit}",
            hint="if the model is genuine, raise the limit: ZOO_MAX_TENSORS=N (see SECURITY.md)",
        )


def _foreign_record(data: Any) -> dict[str, Any]:
    """A record for weights saved by another tool: config fields, where they can be found."""
    if not isinstance(data, dict):
        data = {}
    if isinstance(data.get("config"), dict) and ("architecture" in data or "zoo_format" in data):
        fields = data["config"]  # a zoo record: its config, whatever architecture it names
    else:
        fields = {k: v for k, v in data.items() if isinstance(k, str)}
    return {"architecture": None, "config": fields}


def _header(saved: SavedModel, file: Path) -> Header:
    if file not in saved.headers:
        saved.headers[file] = read_header(file, fd=saved.fd(file))
    return saved.headers[file]


def _map_single(saved: SavedModel, file: Path, header: Header | None = None) -> None:
    if header is not None:
        saved.headers[file] = header
    header = _header(saved, file)
    saved.key_to_file = dict.fromkeys(header.tensors, file)
    # huggingface_hub drops shared tensors on save and notes "dropped -> kept" in the metadata.
    saved.aliases = _aliases(header.metadata, saved.key_to_file)


def _map_index(saved: SavedModel, opened: OpenedDirectory) -> None:
    index_path = _member(opened, INDEX_NAME, saved.path)
    index = _read_member_json(opened, INDEX_NAME)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise WeightsError(f"{index_path} has no 'weight_map' object")
    limit = limits.max_tensors()
    if len(weight_map) > limit:
        raise WeightsError(
            f"{index_path} lists {len(weight_map)} tensors; zoo reads at most {limit}",
            hint="if the model is genuine, raise the limit: ZOO_MAX_TENSORS=N (see SECURITY.md)",
        )
    files: dict[str, Path] = {}
    for key, name in weight_map.items():
        if not isinstance(name, str):
            raise WeightsError(
                f"{index_path} maps {str(key)[:80]!r} to a {type(name).__name__}, "
                "not a shard file name"
            )
        if name not in files:
            files[name] = _member(opened, name, index_path)
        saved.key_to_file[key] = files[name]
    for name, file in files.items():
        held = set(_header(saved, file).tensors)
        named = {k for k, f in saved.key_to_file.items() if f == file}
        if named - held:
            raise WeightsError(
                f"{index_path} places {_few(sorted(named - held))} in {name}, which lacks them"
            )
        if held - named:
            raise WeightsError(
                f"{name} holds {_few(sorted(held - named))}, which {index_path.name} does not list"
            )
    meta = index.get("metadata")
    saved.aliases = _aliases(meta if isinstance(meta, dict) else {}, saved.key_to_file)


def _aliases(meta: dict[str, Any], keys: dict[str, Path]) -> dict[str, str]:
    return {
        k: v
        for k, v in meta.items()
        if isinstance(v, str)
        and v in keys
        and k not in keys
        and k != "format"
        and not k.startswith(_META_PREFIX)
    }


# Floating dtypes a model computes in; float8 is a storage format that forward cannot use.
_COMPUTE_FLOATS = {"F64", "F32", "F16", "BF16"}


def structure_problems(
    saved: SavedModel, expected: dict[str, torch.Tensor], *, cast: bool = False
) -> list[str]:
    """Every way the saved tensors differ from what the model expects (keys, shapes, dtypes).

    Floating tensors may be saved in any one of float64, float32, float16 or
    bfloat16 (a model saved in bfloat16 loads in bfloat16), but not in float8
    and not in a mix of them, which would load into a model whose forward
    fails; ``cast=True`` (a load that casts every float to one dtype) allows
    the mix. Integer and bool tensors must match exactly.
    """
    available = set(saved.key_to_file) | set(saved.aliases)
    missing = sorted(set(expected) - available)
    unexpected = sorted(available - set(expected))
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    shapes, dtypes = [], []
    # Per dtype the model expects, the saved floating dtypes seen (and one key of each).
    floats: dict[str, dict[str, str]] = {}
    for key, file in saved.key_to_file.items():
        if key not in expected:
            continue
        info = _header(saved, file).tensors[key]
        want = expected[key]
        if info.shape != tuple(want.shape):
            shapes.append(f"{key} {list(info.shape)} (model expects {list(want.shape)})")
        want_code = _dtype_code(want.dtype)
        if want.is_floating_point() and info.dtype in _COMPUTE_FLOATS:
            floats.setdefault(want_code, {}).setdefault(info.dtype, key)
        elif want.is_floating_point() and info.is_floating:  # float8: storage only
            dtypes.append(f"{key} {info.dtype} (model expects F64, F32, F16 or BF16)")
        elif want.is_floating_point() or info.dtype != want_code:
            dtypes.append(f"{key} {info.dtype} (model expects {want_code})")
    if shapes:
        problems.append("wrong shape: " + _few(shapes))
    if dtypes:
        problems.append("wrong dtype: " + _few(dtypes))
    for seen in floats.values():
        if len(seen) > 1 and not cast:
            mix = ", ".join(f"{code} ({key})" for code, key in sorted(seen.items()))
            problems.append(f"mixed floating dtypes: {mix}; load with a dtype to cast them to one")
    return problems


def _dtype_code(dtype: torch.dtype) -> str:
    from zoo_core.storage.safetensors_io import torch_codes

    return torch_codes().get(dtype, str(dtype).removeprefix("torch."))


def check_structure(
    saved: SavedModel, expected: dict[str, torch.Tensor], *, cast: bool = False
) -> None:
    """Compare the saved keys, shapes and dtypes with the model's, naming every mismatch.

    Only headers are consulted (already read by :func:`read_saved`): this is cheap.
    ``cast`` is as in :func:`structure_problems`.

    Raises:
        WeightsError: keys missing, unexpected, or of another shape or kind of dtype.
    """
    problems = structure_problems(saved, expected, cast=cast)
    if problems:
        arch = saved.record.get("architecture")
        raise WeightsError(
            f"weights in {saved.path} do not fit {arch}: " + "; ".join(problems),
            hint="the weights were saved from another architecture or config",
        )


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def read_tensors(
    saved: SavedModel,
    keys: list[str] | None = None,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, torch.Tensor]:
    """Read tensors shard by shard, placing and casting each one as it is read.

    Floating tensors are cast to ``dtype`` one at a time, so at most one extra
    copy of a single tensor exists during a cast. Integer and bool tensors keep
    their dtype. ``progress(done, total)`` counts the stored bytes of the tensors
    read (mapped, for a memory-mapped read: their pages are read on first use).
    """
    wanted = set(saved.key_to_file) | set(saved.aliases) if keys is None else set(keys)
    target = str(device) if device is not None else "cpu"
    by_file: dict[Path, list[str]] = {}
    for key, file in saved.key_to_file.items():
        if key in wanted:
            by_file.setdefault(file, []).append(key)
    out: dict[str, torch.Tensor] = {}
    if device is not None and device.type == "cuda":
        from zoo_core.storage.gpu_reader import pipeline_enabled, read_files

        if pipeline_enabled(device):  # threaded reads into pinned buffers, async copies
            # Keyed by the snapshot's open files (see storage.snapshot), not by their paths.
            plan = {
                Path(saved.readable_path(file)): (_header(saved, file), file_keys)
                for file, file_keys in by_file.items()
            }
            out, by_file = read_files(plan, device, dtype=dtype), {}
    sizes = {
        key: _header(saved, file).tensors[key].end - _header(saved, file).tensors[key].begin
        for file, file_keys in (by_file.items() if progress is not None else ())
        for key in file_keys
    }
    done, total = 0, sum(sizes.values())
    for file, file_keys in by_file.items():
        # A cast makes a copy: reading with pread lets each source tensor go once cast,
        # where a mapping would keep the whole file's pages resident until the end.
        casting = dtype is not None and target == "cpu"
        backend = "pread" if casting else "mmap"
        with _safe_open(file, target, backend=backend, source=saved.readable_path(file)) as f:
            for key in file_keys:
                try:
                    tensor = f.get_tensor(key)
                except Exception as err:  # safetensors raises its own error types here
                    raise WeightsError(f"cannot read tensor {key!r} from {file}: {err}") from None
                if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                    tensor = tensor.to(dtype)
                out[key] = tensor
                if progress is not None:
                    done += sizes[key]
                    progress(done, total)
    for alias, kept in saved.aliases.items():
        if alias in wanted and kept in out:
            out[alias] = out[kept]
    return out


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


def _old_architecture(directory: Path) -> str | None:
    try:
        with OpenedDirectory(directory) as opened:
            data = _read_member_json(opened, CONFIG_NAME)
    except (OSError, WeightsError, Vanished):
        return None
    value = data.get("architecture") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def reads_on_first_use(device: torch.device | None, dtype: torch.dtype | None) -> bool:
    """Whether :func:`read_tensors` memory-maps the files (their pages are read when first used).

    It does for a plain CPU load; a cast or another device reads everything at once.
    """
    target = str(device) if device is not None else "cpu"
    return target == "cpu" and dtype is None


def write_directory(
    state_dict: dict[str, torch.Tensor],
    record: dict[str, Any],
    directory: Path,
    *,
    max_shard_size: int | str | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write ``config.json`` and the weights atomically into ``directory``.

    Weights are split into shards in huggingface_hub's layout when they exceed
    ``max_shard_size`` (default 5GB). ``config.json`` records the sha256 and
    size of every weight and index file under ``files``. ``progress(done, total)``
    counts tensor bytes written.

    Replacing an existing zoo model replaces only zoo's files (see
    :func:`is_zoo_file`): a model card, logs or folders the user added are
    kept. Replacing a model of another architecture warns
    (:class:`~zoo_core.errors.ZooWarning`).

    Raises:
        WeightsError: ``directory`` exists and is not a zoo model, or the
            filesystem refused the write (read-only, full, busy); nothing is
            changed in either case.
        UsageError: ``max_shard_size`` is not a size.
    """
    directory = Path(directory)
    metadata = record_to_metadata(record)
    split = _split(state_dict, max_shard_size)
    try:
        with atomic_directory(directory, may_replace=is_zoo_directory, keep=_not_zoo_file) as tmp:
            old = _old_architecture(directory) if os.path.isdir(directory) else None
            files = _write_weights(state_dict, split, metadata, tmp, max_shard_size, progress)
            full = {**record, FILES_KEY: {n: files[n].as_dict() for n in sorted(files)}}
            with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as f:
                json.dump(full, f, indent=2)
                f.write("\n")
    except FileExistsError as err:
        raise WeightsError(
            f"refusing to write into {directory}: {err.strerror}",
            hint="choose a new directory, or remove this one first",
        ) from None
    except OSError as err:
        raise _save_error(directory, err) from None
    if old is not None and old != record.get("architecture"):
        warnings.warn(
            f"{directory} held a {old} model; it now holds {record.get('architecture')}",
            ZooWarning,
            stacklevel=2,
        )
    return Path(os.path.abspath(directory))


def _not_zoo_file(name: str) -> bool:
    return not is_zoo_file(name)


def _save_error(directory: Path, err: OSError) -> WeightsError:
    """A save refused by the filesystem, said plainly (nothing was changed)."""
    import errno

    hints = {
        errno.EROFS: "the filesystem is read-only; save somewhere writable",
        errno.ENOSPC: "the disk is full; free some space or save elsewhere",
        errno.EDQUOT: "the disk quota is exhausted; free some space or save elsewhere",
        errno.EBUSY: "it is a mount point or in use; save into a new directory inside it",
        errno.EACCES: "you lack permission there; save somewhere you can write",
        errno.EPERM: "you lack permission there; save somewhere you can write",
        errno.ENOTDIR: "a part of the path is a file; choose another directory",
        errno.ENAMETOOLONG: "choose a shorter name",
    }
    reason = err.strerror or str(err)
    if err.errno == errno.ENOTDIR and err.strerror and " is a file" in err.strerror:
        reason = err.strerror
    return WeightsError(
        f"cannot save to {directory}: {reason} (nothing was changed)",
        hint=hints.get(err.errno or 0, "check the path and the filesystem, then save again"),
    )


_DEFAULT_SHARD = 5_000_000_000  # huggingface_hub's default: 5GB
_UNITS = {
    "TB": 10**12, "GB": 10**9, "MB": 10**6, "KB": 10**3,
    "TIB": 2**40, "GIB": 2**30, "MIB": 2**20, "KIB": 2**10,
    "T": 10**12, "G": 10**9, "M": 10**6, "K": 10**3, "B": 1,
}  # fmt: skip


def shard_limit(max_shard_size: int | str | None, *, name: str = "max_shard_size") -> int:
    """Bytes from a shard size: an int, digits, or a number with a unit.

    Units: TB/GB/MB/KB (decimal, as the Hub reads them) and TiB/GiB/MiB/KiB
    (binary, as zoo prints sizes), in any case. ``name`` is how the caller
    spells the option in the error (the CLI says ``--max-shard-size``).

    >>> shard_limit("1GiB"), shard_limit("500MB")
    (1073741824, 500000000)

    Raises:
        UsageError: not a positive size.
    """
    if max_shard_size is None:
        return _DEFAULT_SHARD
    value: float | None = None
    if isinstance(max_shard_size, int) and not isinstance(max_shard_size, bool):
        value = max_shard_size
    elif isinstance(max_shard_size, str):
        text = max_shard_size.strip().replace(" ", "")
        number = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        unit = text[len(number) :].upper()
        try:
            value = float(number) * (_UNITS[unit] if unit else 1)
        except (KeyError, ValueError):
            value = None
    if value is None or not value >= 1 or value == float("inf"):
        raise UsageError(
            f"invalid {name} {str(max_shard_size)[:40]!r}",
            hint="give bytes (1000000) or a size like 500MB, 2GB or 1GiB",
        )
    return int(value)


def _split(state_dict: dict[str, torch.Tensor], max_shard_size: int | str | None) -> Any:
    """The Hub's shard plan, or None when everything fits one ``model.safetensors``."""
    limit = shard_limit(max_shard_size)
    sizes = {k: t.numel() * t.element_size() for k, t in state_dict.items()}
    if sum(sizes.values()) <= limit:
        return None  # the common case: no need to import huggingface_hub (and torch.distributed)
    over = [k for k, n in sizes.items() if n > limit]
    if over:
        from zoo_core.units import human_bytes

        biggest = max(over, key=sizes.__getitem__)
        warnings.warn(
            f"{len(over)} tensor(s) exceed the shard size {human_bytes(limit)} and get a shard "
            f"of their own, larger than that (the biggest: {biggest}, "
            f"{human_bytes(sizes[biggest])})",
            ZooWarning,
            stacklevel=4,
        )
    from huggingface_hub import split_torch_state_dict_into_shards

    return split_torch_state_dict_into_shards(
        state_dict, filename_pattern="model{suffix}.safetensors", max_shard_size=limit
    )


def _write_weights(
    state_dict: dict[str, torch.Tensor],
    split: Any,
    metadata: dict[str, str],
    tmp: Path,
    max_shard_size: int | str | None,
    progress: ProgressCallback | None = None,
) -> dict[str, FileRecord]:
    """Write shards (hashing as they are written) and the index; return each file's record."""
    if not can_write(state_dict):
        # Tied aliases or exotic tensors: huggingface_hub's writer knows how to drop aliases.
        from huggingface_hub import save_torch_state_dict

        limit = shard_limit(max_shard_size)
        save_torch_state_dict(
            separate_views(state_dict), tmp, metadata=dict(metadata), max_shard_size=limit
        )
        return {p.name: hash_file(p) for p in sorted(tmp.iterdir())}
    if split is None:
        return {WEIGHTS_NAME: write_file(tmp / WEIGHTS_NAME, state_dict, metadata, progress)}
    files = {}
    total = sum(t.numel() * t.element_size() for t in state_dict.values())
    start = 0
    for name, keys in split.filename_to_tensors.items():
        shard = {k: state_dict[k] for k in keys}
        files[name] = write_file(tmp / name, shard, metadata, part_of(progress, start, total))
        start += sum(t.numel() * t.element_size() for t in shard.values())
    if split.is_sharded:
        # The same index huggingface_hub writes, so its loaders and transformers read it.
        index = {"metadata": {**split.metadata, **metadata}, "weight_map": split.tensor_to_filename}
        with open(tmp / INDEX_NAME, "w", encoding="utf-8") as f:
            json.dump(index, f, indent=2)
        files[INDEX_NAME] = hash_file(tmp / INDEX_NAME)
    return files
