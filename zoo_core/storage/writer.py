"""Writing a saved model: the weights (one file or shards + index) and ``config.json``, atomically.

A re-save replaces ``config.json`` and the weight files the old ``config.json``
records; everything else the user keeps in the directory survives (a
``*.safetensors`` file the record does not name too, unless the new save writes
that very name: then it is replaced, with a warning).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import UsageError, WeightsError, ZooWarning
from zoo_core.progress import ProgressCallback, part_of
from zoo_core.storage.aliases import same_tensor_groups
from zoo_core.storage.atomic import MountInside, atomic_directory
from zoo_core.storage.record import (
    CONFIG_NAME,
    FILES_KEY,
    INDEX_NAME,
    WEIGHTS_NAME,
    is_zoo_directory,
    is_zoo_file,
    read_member_json,
    record_to_metadata,
    recorded_weights,
)
from zoo_core.storage.safetensors_io import (
    FileRecord,
    can_write,
    hash_file,
    separate_views,
    write_file,
)
from zoo_core.storage.snapshot import OpenedDirectory, Vanished
from zoo_core.storage.weights import UnrecordedFileWarning, unrecorded_files

__all__ = ["TIED_KEY", "shard_limit", "split_aliases", "write_directory"]

#: The ``config.json`` entry that lists tied names, ``{alias: kept}`` (also in the header).
TIED_KEY = "tied_weights"


class _Old:
    """What a re-save knows of the directory it replaces: architecture, recorded files, entries."""

    def __init__(self, directory: Path | None) -> None:
        self.architecture: str | None = None
        self.recorded: set[str] | None = None
        self.names: list[str] = []
        if directory is None or not os.path.isdir(directory):
            return
        try:
            with OpenedDirectory(directory) as opened:
                data = read_member_json(opened, CONFIG_NAME)
                self.names = opened.names()
        except (OSError, WeightsError, Vanished):
            return
        if not isinstance(data, dict):
            return
        value = data.get("architecture")
        self.architecture = value if isinstance(value, str) else None
        self.recorded = recorded_weights(data)

    def keeps(self, name: str) -> bool:
        """Whether the entry ``name`` is the user's: not zoo's, or a weights file never recorded."""
        if not is_zoo_file(name):
            return True
        return self.recorded is not None and name != CONFIG_NAME and name not in self.recorded

    def replaced_unrecorded(self, written: set[str]) -> list[str]:
        """The user's weights files (unrecorded) that the new save overwrites with its own."""
        if self.recorded is None:
            return []
        return [n for n in unrecorded_files(self.names, self.recorded) if n in written]


def write_directory(
    state_dict: dict[str, torch.Tensor],
    record: dict[str, Any],
    directory: Path,
    *,
    max_shard_size: int | str | None = None,
    progress: ProgressCallback | None = None,
    aliases: dict[str, str] | None = None,
) -> Path:
    """Write ``config.json`` and the weights atomically into ``directory``.

    Weights are split into shards in huggingface_hub's layout when they exceed
    ``max_shard_size`` (default 5GB). ``config.json`` records the sha256 and
    size of every weight and index file under ``files``. ``progress(done, total)``
    counts tensor bytes written.

    A tied tensor is written once: ``aliases`` (``{alias: kept}``, what the
    model ties) and any names holding the very same tensor are left out of the
    files and recorded in the header metadata (and the index's) as
    ``"alias": "kept"``, and in ``config.json`` under ``tied_weights``. The
    same tensors and record always give byte-identical files.

    Replacing an existing zoo model replaces ``config.json`` and the weight
    files its ``config.json`` records: a model card, logs, folders and any
    other file the user added are kept (a ``*.safetensors`` file the record
    does not name too, unless this save writes that very name, which then
    warns with :class:`~zoo_core.storage.weights.UnrecordedFileWarning`), even
    files written into the directory while it is saved. Replacing a model of
    another architecture warns (:class:`~zoo_core.errors.ZooWarning`).

    Raises:
        WeightsError: ``directory`` exists and is not a zoo model, holds a mount
            point, or the filesystem refused the write (read-only, full, busy);
            nothing is changed in any case.
        UsageError: ``max_shard_size`` is not a size.
    """
    directory = Path(directory)
    state_dict, tied = split_aliases(state_dict, aliases)
    metadata = {**record_to_metadata(record), **tied}
    split = _split(state_dict, max_shard_size)
    old = _Old(None)
    try:
        # ``keep`` is asked after the block (under the same lock): old is read by then.
        with atomic_directory(
            directory, may_replace=is_zoo_directory, keep=lambda n: old.keeps(n)
        ) as tmp:
            old = _Old(directory)
            files = _write_weights(state_dict, split, metadata, tmp, max_shard_size, progress)
            full = {**record, **({TIED_KEY: tied} if tied else {})}
            full[FILES_KEY] = {n: files[n].as_dict() for n in sorted(files)}
            with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as f:
                json.dump(full, f, indent=2)
                f.write("\n")
    except FileExistsError as err:
        raise WeightsError(
            f"refusing to write into {directory}: {err.strerror}",
            hint="choose a new directory, or remove this one first",
        ) from None
    except MountInside as err:
        raise WeightsError(
            f"cannot save to {directory}: {err.mount} is a mount point inside it "
            "(nothing was changed)",
            hint="a save replaces the whole directory and cannot carry a mount across: "
            "unmount it, or save elsewhere and keep the mount outside the model directory",
        ) from None
    except OSError as err:
        raise _save_error(directory, err) from None
    replaced = old.replaced_unrecorded(set(files))
    if replaced:
        warnings.warn(
            f"{directory}: this save replaces {', '.join(replaced)}, which the old "
            f"{CONFIG_NAME} did not record (a file of yours of the same name as one zoo writes)",
            UnrecordedFileWarning,
            stacklevel=3,
        )
    if old.architecture is not None and old.architecture != record.get("architecture"):
        warnings.warn(
            f"{directory} held a {old.architecture} model; it now holds "
            f"{record.get('architecture')}",
            ZooWarning,
            stacklevel=3,
        )
    return Path(os.path.abspath(directory))


def split_aliases(
    state_dict: dict[str, torch.Tensor], aliases: dict[str, str] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors to write (each tied tensor once) and ``{alias: kept}``, sorted.

    ``aliases`` names ties the caller knows (a sharded model's gathered tensors
    are separate copies); names holding the very same tensor are found here.

    Raises:
        WeightsError: an alias names a tensor of another shape or dtype than its kept one.
    """
    tied = {a: k for a, k in (aliases or {}).items() if k in state_dict and a != k}
    for names in same_tensor_groups(state_dict):
        for alias in names[1:]:
            tied.setdefault(alias, names[0])

    def kept_of(name: str) -> str:
        seen = {name}
        while name in tied and tied[name] not in seen:
            name = tied[name]
            seen.add(name)
        return name

    tied = {alias: kept_of(alias) for alias in tied}
    tied = {alias: kept for alias, kept in tied.items() if alias != kept}
    for alias, kept in tied.items():
        a, k = state_dict.get(alias), state_dict[kept]
        if a is not None and (a.shape != k.shape or a.dtype != k.dtype):
            raise WeightsError(
                f"{alias} is tied to {kept} but has another shape or dtype "
                f"({list(a.shape)} {a.dtype} and {list(k.shape)} {k.dtype})"
            )
    kept_only = {k: t for k, t in state_dict.items() if k not in tied}
    return kept_only, dict(sorted(tied.items()))


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
            stacklevel=5,
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
        # Exotic dtypes or a big-endian machine: huggingface_hub's writer (unaligned data).
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
            json.dump(index, f, indent=2, sort_keys=True)
        files[INDEX_NAME] = hash_file(tmp / INDEX_NAME)
    return files
