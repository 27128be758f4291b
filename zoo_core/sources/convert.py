"""Turning a legacy PyTorch state-dict checkpoint into a zoo directory.

This is the only place zoo reads pickles, and it reads them with
``torch.load(weights_only=True)``: torch's restricted unpickler, which builds
tensors and plain containers and refuses anything else. A checkpoint that
needs full unpickling (a whole pickled model, custom classes) is refused,
because unpickling it would run whatever code it names.

>>> convert_checkpoint("seed_cnn.pt", "simple_cnn", "cnn/")    # doctest: +SKIP
PosixPath('/home/me/cnn')
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import SourceNotFoundError, WeightsError, ZooWarning
from zoo_core.progress import ProgressCallback
from zoo_core.storage.aliases import same_tensor_groups

__all__ = ["convert_checkpoint", "read_checkpoint"]

# Training scripts often wrap the state dict; these are the wrappers we unwrap.
_WRAPPERS = ("state_dict", "model_state_dict", "model")
# What wrapped modules put before every name: torch.compile's OptimizedModule holds the
# model as _orig_mod, DistributedDataParallel and DataParallel as module.
_PREFIXES = {"_orig_mod.": "torch.compile", "module.": "DistributedDataParallel or DataParallel"}


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``torch.save``-d state dict, read without full unpickling.

    A dict holding the state dict under ``state_dict``, ``model_state_dict`` or
    ``model`` is unwrapped; a ``_orig_mod.`` (``torch.compile``) or ``module.``
    (DDP, DataParallel) prefix on every key is dropped, with a
    :class:`~zoo_core.errors.ZooWarning` that says so.

    Raises:
        SourceNotFoundError: ``path`` does not exist.
        WeightsError: the file is not a checkpoint, needs full unpickling, or
            holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"no such checkpoint file: {path}")
    _check_unpacked_size(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _unpickling_refused(path, str(err)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        text = _first_line(str(err)) or type(err).__name__
        raise WeightsError(
            f"{path} is not a readable PyTorch checkpoint ({text})",
            hint="convert takes a file written by torch.save(model.state_dict(), PATH)",
        ) from None
    return _state_dict_in(data, path)


def _first_line(text: str, limit: int = 160) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = "".join(c if c.isprintable() else "?" for c in line)
    if len(line) > limit:
        line = line[:limit].rsplit(" ", 1)[0] + " ..."  # never cut mid-word
    return line


# torch's restricted unpickler names what it refused: "Unsupported global: GLOBAL os.system"
# (older wording) or "Trying to load unsupported GLOBAL posix.system whose module ..." (2.13).
_GLOBAL = re.compile(r"unsupported global:?\s+(?:GLOBAL\s+)?([A-Za-z_][\w.]{0,120})", re.I)


def _unpickling_refused(path: Path, message: str) -> WeightsError:
    """Say plainly that zoo will not unpickle the file; never repeat torch's weights_only advice."""
    found = _GLOBAL.search(message)
    detail = (
        _first_line(message.split("WeightsUnpickler error:")[-1])
        if "WeightsUnpickler error:" in message
        else ""
    )
    if found is None and not any(w in detail.lower() for w in ("global", "class")):
        return WeightsError(
            f"{path} is not a readable PyTorch checkpoint ({detail or 'not a pickle'})",
            hint="convert takes a file written by torch.save(model.state_dict(), PATH)",
        )
    what = f"it names {found.group(1)}" if found else "it holds objects beyond tensors"
    return WeightsError(
        f"{path} needs full unpickling, which zoo refuses: {what}, and unpickling runs "
        "code the file chooses; zoo will not unpickle it",
        hint="if you trust the file, load it yourself with torch.load, keep only "
        "model.state_dict(), and torch.save that; then convert it",
    )


def _check_unpacked_size(path: Path) -> None:
    """Refuse an archive that unpacks to far more than its size, before torch reads it.

    ``torch.save`` writes an uncompressed zip, so an honest checkpoint unpacks
    to about its own size; a deflated one claiming gigabytes is a bomb.
    """
    from zoo_core.storage.limits import LIMITS, max_checkpoint_overhead

    try:
        if not zipfile.is_zipfile(path):
            return  # the legacy format: torch reads it record by record
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # torch.load says what is wrong with it
    size = path.stat().st_size
    allowed = size + max_checkpoint_overhead()
    if unpacked > allowed:
        raise WeightsError(
            f"{path} unpacks to {unpacked} bytes from {size}; zoo allows at most {allowed} "
            "(torch.save does not compress, so this is not a plain state dict)",
            hint=f"if the file is genuine, raise the limit: {LIMITS['checkpoint'].env}=BYTES",
        )


def _state_dict_in(data: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(data, dict) and not _is_state_dict(data):
        for key in _WRAPPERS:
            if isinstance(data.get(key), dict) and _is_state_dict(data[key]):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not _is_state_dict(data):
        kind = type(data).__name__
        raise WeightsError(
            f"{path} holds a {kind}, not a state dict (a dict of names to tensors)",
            hint="save the model's weights with torch.save(model.state_dict(), PATH)",
        )
    return _strip_wrappers(data, path)


def _strip_wrappers(data: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    stripped = []
    found = True
    while found:  # torch.compile(DDP(model)) nests: _orig_mod.module.
        found = False
        for prefix, wrapper in _PREFIXES.items():
            if all(k.startswith(prefix) for k in data):
                data = {k.removeprefix(prefix): v for k, v in data.items()}
                stripped.append(f"{prefix!r} ({wrapper})")
                found = True
    if stripped:
        warnings.warn(
            f"{path}: every key began with {' then '.join(stripped)}; "
            "zoo removed the prefix to match the model's own names",
            ZooWarning,
            stacklevel=3,
        )
    return data


def _prefix_note(missing: list[str], unexpected: list[str]) -> str | None:
    """What prefix, if any, stands between the checkpoint's keys and the model's."""
    heads = {k.split(".", 1)[0] for k in unexpected if "." in k}
    if len(heads) != 1 or len(unexpected) < len(missing) or not missing:
        return None
    prefix = heads.pop() + "."
    if not {k.removeprefix(prefix) for k in unexpected} >= set(missing):
        return None
    return (
        f"every unexpected key begins with {prefix!r}, and without it they are the model's "
        "own names: the checkpoint was saved from a wrapper around the model; save "
        "wrapper.<attribute>.state_dict() instead, or strip the prefix"
    )


def _is_state_dict(data: dict[Any, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())


def convert_checkpoint(
    checkpoint: str | os.PathLike[str],
    arch: str,
    directory: str | os.PathLike[str],
    *,
    overrides: dict[str, Any] | None = None,
    from_strings: bool = False,
    max_shard_size: int | str | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Read ``checkpoint`` as architecture ``arch`` and save it as a zoo directory.

    ``checkpoint`` is a ``torch.save``-d state dict (``.pt``/``.pth``), or
    another tool's safetensors weights (a ``PyTorchModelHubMixin`` or
    ``save_torch_model`` directory, a bare ``.safetensors`` file), resolved as
    ``load_model(checkpoint, arch=arch)`` resolves it. The tensors must fit the
    architecture built with ``overrides`` exactly (every key, every shape);
    mismatches are named. ``progress(done, total)`` counts the bytes written.

    Raises:
        WeightsError: the checkpoint is refused or does not fit.
        ConfigError, ModelNotFoundError: the architecture or overrides are wrong.
    """
    from zoo_core.models.build import Architecture
    from zoo_core.models.saving import model_record, write_model

    if os.path.isdir(checkpoint) or os.fspath(checkpoint).endswith(".safetensors"):
        from zoo_core.models.loading import load_weights
        from zoo_core.sources.resolve import resolve

        with resolve(
            checkpoint, arch=arch, overrides=overrides, from_strings=from_strings
        ) as found:
            assert found.saved is not None
            model = load_weights(found.arch, found.config, found.saved)
            record = model_record(found.arch, found.config)
            return write_model(
                model,
                found.arch,
                found.config,
                record,
                Path(directory),
                max_shard_size=max_shard_size,
                progress=progress,
            )
    architecture = Architecture.named(arch)
    config = architecture.config(overrides, from_strings=from_strings)
    tensors = read_checkpoint(checkpoint)
    model = architecture.build_meta(config)
    expected = model.state_dict()
    for names in same_tensor_groups(expected):
        # Tied names: a checkpoint may hold the tensor under any one of them.
        held = [n for n in names if n in tensors]
        for name in names:
            if held and name not in tensors:
                tensors[name] = tensors[held[0]]
    problems = []
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        problems.append("missing " + _few(missing))
    if unexpected:
        problems.append("unexpected " + _few(unexpected))
    shapes = [
        f"{k} {list(tensors[k].shape)} (model expects {list(v.shape)})"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if shapes:
        problems.append("wrong shape: " + _few(shapes))
    problems += _tensor_problems(tensors, expected)
    if problems:
        raise WeightsError(
            f"{checkpoint} does not fit {architecture.name}: " + "; ".join(problems),
            hint=_prefix_note(missing, unexpected)
            or "pick the architecture and --set values the checkpoint was trained with",
        )
    tensors = {k: t if t.is_contiguous() else t.contiguous() for k, t in tensors.items()}
    architecture.fill(model, tensors, config)
    record = model_record(architecture, config)
    return write_model(
        model,
        architecture,
        config,
        record,
        Path(directory),
        max_shard_size=max_shard_size,
        progress=progress,
    )


# Floating dtypes a zoo model computes in; float8 is a storage format, not one of them.
_COMPUTE_FLOATS = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def _tensor_problems(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list:
    """Sparse tensors and dtypes the architecture cannot use, named (checked before saving)."""
    sparse = [k for k in expected if k in tensors and tensors[k].layout != torch.strided]
    dtypes = []
    floats = set()
    for k, want in expected.items():
        t = tensors.get(k)
        if t is None or t.layout != torch.strided:
            continue
        if want.is_floating_point():
            if t.dtype in _COMPUTE_FLOATS:
                floats.add(t.dtype)
            else:
                dtypes.append(f"{k} {str(t.dtype).removeprefix('torch.')} (model expects float)")
        elif t.dtype != want.dtype:
            have, need = (str(d).removeprefix("torch.") for d in (t.dtype, want.dtype))
            dtypes.append(f"{k} {have} (model expects {need})")
    problems = []
    if sparse:
        problems.append("sparse tensors (save them with .to_dense()): " + _few(sparse))
    if dtypes:
        problems.append("wrong dtype: " + _few(dtypes))
    if len(floats) > 1:
        kinds = ", ".join(sorted(str(d).removeprefix("torch.") for d in floats))
        problems.append(f"mixed floating dtypes ({kinds}); cast them to one dtype first")
    return problems


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
