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

from zoo_core.errors import WeightsError
from zoo_core.fsutil import atomic_directory

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "INDEX_NAME",
    "WEIGHTS_NAME",
    "SavedModel",
    "is_zoo_directory",
    "read_saved",
    "read_tensors",
    "write_directory",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
FORMAT_VERSION = 1
# Reading a config.json or index beyond this is an attack or a mistake, not a model.
_MAX_JSON_BYTES = 16 * 1024 * 1024
_META_PREFIX = "zoo."


@dataclass
class SavedModel:
    """What a saved source holds, read from its JSON parts only (no tensor data yet)."""

    path: Path
    kind: str  # "directory" or "file"
    record: dict[str, Any]
    key_to_file: dict[str, Path] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return self.record["architecture"]

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
    from zoo_core import __version__

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
            except json.JSONDecodeError as err:
                raise WeightsError(f"{where}: metadata field {key!r} is not JSON: {err}") from None
        else:
            record[name] = value
    return record


def _check_record(record: Any, where: Path) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise WeightsError(f"{where} must hold a JSON object, not {type(record).__name__}")
    if "architecture" not in record:
        raise WeightsError(
            f"{where} does not say which zoo architecture it holds (no 'architecture' field)",
            hint="a plain safetensors or Hugging Face checkpoint needs its architecture named",
        )
    for key in ("architecture", "plugin", "plugin_version", "target"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise WeightsError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    fmt = record.get("zoo_format", FORMAT_VERSION)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt > FORMAT_VERSION:
        raise WeightsError(
            f"{where}: zoo_format {fmt!r} is newer than this zoo-core understands",
            hint="upgrade zoo-core: pip install -U zoo-core",
        )
    if not isinstance(record.get("config", {}), dict):
        raise WeightsError(f"{where}: 'config' must be a JSON object")
    record.setdefault("config", {})
    return record


def _read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > _MAX_JSON_BYTES:
            raise WeightsError(f"{path} is {size} bytes; that is too large to be zoo metadata")
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{path} is not valid JSON: {err}") from None
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None


def _member(directory: Path, name: Any, where: Path) -> Path:
    """A file named by an index, checked to be a plain file inside ``directory``."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise WeightsError(f"{where} names an invalid shard file {name!r}")
    path = directory / name
    if not path.is_file():
        raise WeightsError(f"{where} names the shard {name!r}, which is missing")
    homes = [directory.resolve()]
    if directory.parent.name == "snapshots":
        # huggingface_hub's cache links snapshots/<commit>/<name> to ../../blobs/<hash>.
        homes.append(homes[0].parent.parent / "blobs")
    if not any(home in path.resolve().parents for home in homes):
        raise WeightsError(f"shard {name!r} in {directory} points outside the directory")
    return path


def _safe_open(path: Path, device: str = "cpu") -> Any:
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(path, framework="pt", device=device)
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
        data = _read_json(config)
    except WeightsError:
        return False
    return isinstance(data, dict) and "zoo_format" in data


def read_saved(path: Path) -> SavedModel:
    """Read the record and the tensor map of a saved directory or lone file.

    Raises:
        WeightsError: the source is not a zoo model, or its JSON parts are broken.
    """
    path = Path(path)
    if path.is_dir():
        config_path = path / CONFIG_NAME
        if not config_path.is_file():
            raise WeightsError(
                f"{path} has no {CONFIG_NAME}, so it is not a saved zoo model",
                hint="save one with 'zoo save NAME DIR' or zoo_core.save_model",
            )
        record = _check_record(_read_json(config_path), config_path)
        saved = SavedModel(path=path, kind="directory", record=record)
        index_path = path / INDEX_NAME
        if (path / WEIGHTS_NAME).is_file():
            _map_single(saved, _member(path, WEIGHTS_NAME, path))
        elif index_path.is_file():
            _map_index(saved, index_path)
        else:
            raise WeightsError(f"{path} has neither {WEIGHTS_NAME} nor {INDEX_NAME}")
        return saved
    if path.is_file():
        with _safe_open(path) as f:
            meta = f.metadata() or {}
        record = metadata_to_record(meta, path)
        if "architecture" not in record:
            raise WeightsError(
                f"{path} carries no zoo metadata, so zoo cannot tell which architecture it is",
                hint="save it with zoo_core.save_model, or load it into a model you build yourself",
            )
        saved = SavedModel(path=path, kind="file", record=_check_record(record, path))
        _map_single(saved, path)
        return saved
    raise WeightsError(f"{path} is neither a file nor a directory")


def _map_single(saved: SavedModel, file: Path) -> None:
    with _safe_open(file) as f:
        keys = list(f.keys())
        meta = f.metadata() or {}
    saved.key_to_file = dict.fromkeys(keys, file)
    # huggingface_hub drops shared tensors on save and notes "dropped -> kept" in the metadata.
    saved.aliases = _aliases(meta, saved.key_to_file)


def _map_index(saved: SavedModel, index_path: Path) -> None:
    index = _read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise WeightsError(f"{index_path} has no 'weight_map' object")
    files: dict[str, Path] = {}
    for key, name in weight_map.items():
        if name not in files:
            files[name] = _member(saved.path, name, index_path)
        saved.key_to_file[key] = files[name]
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


def check_structure(saved: SavedModel, expected: dict[str, torch.Tensor]) -> None:
    """Compare the saved keys and shapes with the model's, naming every mismatch.

    Raises:
        WeightsError: keys missing, unexpected, or of another shape.
    """
    available = set(saved.key_to_file) | set(saved.aliases)
    missing = sorted(set(expected) - available)
    unexpected = sorted(available - set(expected))
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    shapes = []
    by_file: dict[Path, list[str]] = {}
    for key, file in saved.key_to_file.items():
        if key in expected:
            by_file.setdefault(file, []).append(key)
    for file, keys in by_file.items():
        with _safe_open(file) as f:
            present = set(f.keys())
            for key in keys:
                if key not in present:
                    problems.append(f"{key} is not in {file.name} although the index says so")
                    continue
                got = tuple(f.get_slice(key).get_shape())
                want = tuple(expected[key].shape)
                if got != want:
                    shapes.append(f"{key} {list(got)} (model expects {list(want)})")
    if shapes:
        problems.append("wrong shape: " + _few(shapes))
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
) -> dict[str, torch.Tensor]:
    """Read tensors shard by shard, placing and casting each one as it is read.

    Floating tensors are cast to ``dtype`` one at a time, so at most one extra
    copy of a single tensor exists during a cast. Integer and bool tensors keep
    their dtype.
    """
    wanted = set(saved.key_to_file if keys is None else keys)
    target = str(device) if device is not None else "cpu"
    by_file: dict[Path, list[str]] = {}
    for key, file in saved.key_to_file.items():
        if key in wanted:
            by_file.setdefault(file, []).append(key)
    out: dict[str, torch.Tensor] = {}
    for file, file_keys in by_file.items():
        with _safe_open(file, target) as f:
            for key in file_keys:
                try:
                    tensor = f.get_tensor(key)
                except Exception as err:  # safetensors raises its own error types here
                    raise WeightsError(f"cannot read tensor {key!r} from {file}: {err}") from None
                if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                    tensor = tensor.to(dtype)
                out[key] = tensor
    for alias, kept in saved.aliases.items():
        if alias in wanted and kept in out:
            out[alias] = out[kept]
    return out


def write_directory(
    state_dict: dict[str, torch.Tensor],
    record: dict[str, Any],
    directory: Path,
    *,
    max_shard_size: int | str | None = None,
) -> Path:
    """Write ``config.json`` and the weights atomically into ``directory``.

    Raises:
        WeightsError: ``directory`` exists and is not a zoo model (nothing is written).
    """
    from huggingface_hub import save_torch_state_dict

    directory = Path(directory)

    def may_replace(path: Path) -> bool:
        return is_zoo_directory(path)

    shard_kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    try:
        with atomic_directory(directory, may_replace=may_replace) as tmp:
            save_torch_state_dict(
                state_dict, tmp, metadata=record_to_metadata(record), **shard_kwargs
            )
            with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=2)
                f.write("\n")
    except FileExistsError as err:
        raise WeightsError(
            f"refusing to write into {directory}: {err.strerror}",
            hint="choose a new directory, or remove this one first",
        ) from None
    return Path(os.path.abspath(directory))
