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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import UsageError, WeightsError
from zoo_core.fsutil import atomic_directory
from zoo_core.progress import ProgressCallback, part_of
from zoo_core.safetensors_io import (
    FileRecord,
    Header,
    can_write,
    hash_file,
    read_header,
    separate_views,
    write_file,
)

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "INDEX_NAME",
    "WEIGHTS_NAME",
    "SavedModel",
    "check_files_record",
    "is_zoo_directory",
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
# Reading a config.json or index beyond this is an attack or a mistake, not a model.
_MAX_JSON_BYTES = 16 * 1024 * 1024
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


def read_json(path: Path) -> Any:
    """Parse a small JSON file (config or index), refusing oversized or malformed ones.

    Raises:
        WeightsError: the file is unreadable, too large to be metadata, or not JSON.
    """
    try:
        size = path.stat().st_size
        if size > _MAX_JSON_BYTES:
            raise WeightsError(f"{path} is {size} bytes; that is too large to be zoo metadata")
        with open(path, "rb") as f:
            return json.loads(f.read(_MAX_JSON_BYTES + 1).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError covers JSONDecodeError and integers too long to convert.
        text = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise WeightsError(f"{path} is not valid JSON: {text}") from None
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None


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


def _member(directory: Path, name: Any, where: Path) -> Path:
    """A file named by an index, checked to be a plain file inside ``directory``."""
    if not _plain_name(name):
        raise WeightsError(f"{where} names an invalid shard file {str(name)[:80]!r}")
    path = directory / name
    try:
        inside = stays_inside(directory, path)
    except (OSError, RuntimeError):  # a symlink loop
        raise WeightsError(f"shard {name!r} in {directory} is a symlink loop") from None
    if os.path.islink(path) and not inside:
        raise WeightsError(f"shard {name!r} in {directory} points outside the directory")
    if not path.is_file():
        raise WeightsError(f"{where} names the shard {name!r}, which is missing")
    if not inside:
        raise WeightsError(f"shard {name!r} in {directory} points outside the directory")
    return path


def _safe_open(path: Path, device: str = "cpu", *, backend: str = "mmap") -> Any:
    from safetensors import SafetensorError, safe_open

    try:
        if backend == "mmap":
            return safe_open(path, framework="pt", device=device)
        return safe_open(path, framework="pt", device=device, backend=backend)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(
            f"{path} is not a readable safetensors file ({text})",
            hint="the file may be truncated or corrupt; save or download it again",
        ) from None


def is_zoo_directory(path: Path) -> bool:
    """Whether ``path`` holds a zoo model (a ``config.json`` with zoo's record)."""
    config = Path(path) / CONFIG_NAME
    try:
        data = read_json(config)
    except WeightsError:
        return False
    return isinstance(data, dict) and "zoo_format" in data


def read_saved(path: Path, *, foreign: bool = False) -> SavedModel:
    """Read the record and the tensor map of a saved directory or lone file.

    Every safetensors header is parsed and checked here; no tensor data is
    read (content hashes are :mod:`zoo_core.verify`'s job).

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
        config_path = path / CONFIG_NAME
        if foreign:
            record = _foreign_record(read_json(config_path) if config_path.is_file() else {})
        elif not config_path.is_file():
            raise WeightsError(
                f"{path} has no {CONFIG_NAME}, so it is not a saved zoo model",
                hint="save one with 'zoo save NAME DIR', or name the architecture with --arch",
            )
        else:
            record = check_record(read_json(config_path), config_path)
        saved = SavedModel(path=path, kind="directory", record=record)
        index_path = path / INDEX_NAME
        if os.path.lexists(path / WEIGHTS_NAME):
            _map_single(saved, _member(path, WEIGHTS_NAME, path))
        elif os.path.lexists(index_path):
            _map_index(saved, _member(path, INDEX_NAME, path))
        else:
            raise WeightsError(f"{path} has neither {WEIGHTS_NAME} nor {INDEX_NAME}")
        return saved
    if path.is_file():
        header = read_header(path)
        record = metadata_to_record(header.metadata, path)
        if foreign:
            record = _foreign_record(record)
        elif "architecture" not in record:
            raise WeightsError(
                f"{path} carries no zoo metadata, so zoo cannot tell which architecture it is",
                hint="name it: zoo load FILE --arch NAME (or load_model(FILE, arch=NAME))",
            )
        saved = SavedModel(path=path, kind="file", record=check_record(record, path))
        _map_single(saved, path, header)
        return saved
    raise WeightsError(f"{path} is neither a file nor a directory")


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
        saved.headers[file] = read_header(file)
    return saved.headers[file]


def _map_single(saved: SavedModel, file: Path, header: Header | None = None) -> None:
    if header is not None:
        saved.headers[file] = header
    header = _header(saved, file)
    saved.key_to_file = dict.fromkeys(header.tensors, file)
    # huggingface_hub drops shared tensors on save and notes "dropped -> kept" in the metadata.
    saved.aliases = _aliases(header.metadata, saved.key_to_file)


def _map_index(saved: SavedModel, index_path: Path) -> None:
    index = read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise WeightsError(f"{index_path} has no 'weight_map' object")
    files: dict[str, Path] = {}
    for key, name in weight_map.items():
        if name not in files:
            files[name] = _member(saved.path, name, index_path)
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


def structure_problems(saved: SavedModel, expected: dict[str, torch.Tensor]) -> list[str]:
    """Every way the saved tensors differ from what the model expects (keys, shapes, dtypes)."""
    available = set(saved.key_to_file) | set(saved.aliases)
    missing = sorted(set(expected) - available)
    unexpected = sorted(available - set(expected))
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    shapes, dtypes = [], []
    for key, file in saved.key_to_file.items():
        if key not in expected:
            continue
        info = _header(saved, file).tensors[key]
        want = expected[key]
        if info.shape != tuple(want.shape):
            shapes.append(f"{key} {list(info.shape)} (model expects {list(want.shape)})")
        # Any floating dtype is fine (a model saved in bfloat16 loads in bfloat16); others
        # (integer step counters, bool masks) must match exactly.
        want_code = _dtype_code(want.dtype)
        if info.is_floating != want.is_floating_point() or (
            not info.is_floating and info.dtype != want_code
        ):
            dtypes.append(f"{key} {info.dtype} (model expects {want_code})")
    if shapes:
        problems.append("wrong shape: " + _few(shapes))
    if dtypes:
        problems.append("wrong dtype: " + _few(dtypes))
    return problems


def _dtype_code(dtype: torch.dtype) -> str:
    from zoo_core.safetensors_io import torch_codes

    return torch_codes().get(dtype, str(dtype).removeprefix("torch."))


def check_structure(saved: SavedModel, expected: dict[str, torch.Tensor]) -> None:
    """Compare the saved keys, shapes and dtypes with the model's, naming every mismatch.

    Only headers are consulted (already read by :func:`read_saved`): this is cheap.

    Raises:
        WeightsError: keys missing, unexpected, or of another shape or kind of dtype.
    """
    problems = structure_problems(saved, expected)
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
        from zoo_core.gpu_load import pipeline_enabled, read_files

        if pipeline_enabled(device):  # threaded reads into pinned buffers, async copies
            plan = {file: (_header(saved, file), file_keys) for file, file_keys in by_file.items()}
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
        with _safe_open(file, target, backend="pread" if casting else "mmap") as f:
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

    Raises:
        WeightsError: ``directory`` exists and is not a zoo model (nothing is written).
        UsageError: ``max_shard_size`` is not a size.
    """
    directory = Path(directory)
    metadata = record_to_metadata(record)
    split = _split(state_dict, max_shard_size)
    try:
        with atomic_directory(directory, may_replace=is_zoo_directory) as tmp:
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
    return Path(os.path.abspath(directory))


_DEFAULT_SHARD = 5_000_000_000  # huggingface_hub's default: 5GB
_UNITS = {"TB": 10**12, "GB": 10**9, "MB": 10**6, "KB": 10**3}


def shard_limit(max_shard_size: int | str | None) -> int:
    """Bytes from a shard size: an int, digits, or a number with TB/GB/MB/KB (as the Hub reads it).

    Raises:
        UsageError: not a positive size.
    """
    if max_shard_size is None:
        return _DEFAULT_SHARD
    value: float | None = None
    if isinstance(max_shard_size, int) and not isinstance(max_shard_size, bool):
        value = max_shard_size
    elif isinstance(max_shard_size, str):
        text = max_shard_size.strip()
        unit = text[-2:].upper()
        try:
            value = float(text) if text.isdigit() else float(text[:-2]) * _UNITS[unit]
        except (KeyError, ValueError):
            value = None
    if value is None or not value >= 1 or value == float("inf"):
        raise UsageError(
            f"invalid max_shard_size {max_shard_size!r}",
            hint="give bytes (1000000) or a size like 500MB or 2GB",
        )
    return int(value)


def _split(state_dict: dict[str, torch.Tensor], max_shard_size: int | str | None) -> Any:
    """The Hub's shard plan, or None when everything fits one ``model.safetensors``."""
    limit = shard_limit(max_shard_size)
    if sum(t.numel() * t.element_size() for t in state_dict.values()) <= limit:
        return None  # the common case: no need to import huggingface_hub (and torch.distributed)
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
