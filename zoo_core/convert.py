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
import zipfile
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import SourceNotFoundError, WeightsError
from zoo_core.progress import ProgressCallback

__all__ = ["convert_checkpoint", "read_checkpoint"]

# Training scripts often wrap the state dict; these are the wrappers we unwrap.
_WRAPPERS = ("state_dict", "model_state_dict", "model")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``torch.save``-d state dict, read without full unpickling.

    A dict holding the state dict under ``state_dict``, ``model_state_dict`` or
    ``model`` is unwrapped; a ``module.`` prefix on every key (DataParallel) is
    dropped.

    Raises:
        SourceNotFoundError: ``path`` does not exist.
        WeightsError: the file is not a checkpoint, needs full unpickling, or
            holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"no such checkpoint file: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        tail = str(err).split("WeightsUnpickler error:")[-1]
        detail = next((line.strip() for line in tail.splitlines() if line.strip()), "")[:200]
        if "global" not in detail.lower() and "class" not in detail.lower():
            raise WeightsError(
                f"{path} is not a readable PyTorch checkpoint ({detail or 'not a pickle'})",
                hint="convert takes a file written by torch.save(model.state_dict(), PATH)",
            ) from None
        raise WeightsError(
            f"{path} needs full unpickling, which zoo refuses: unpickling runs any code "
            f"the file names ({detail})",
            hint="if you trust the file, load it yourself with torch.load, keep only "
            "model.state_dict(), and torch.save that; then convert it",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        text = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise WeightsError(
            f"{path} is not a readable PyTorch checkpoint ({text})",
            hint="convert takes a file written by torch.save(model.state_dict(), PATH)",
        ) from None
    return _state_dict_in(data, path)


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
    if all(k.startswith("module.") for k in data):
        data = {k.removeprefix("module."): v for k, v in data.items()}
    return data


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

    The tensors must fit the architecture built with ``overrides`` exactly
    (every key, every shape); mismatches are named. ``progress(done, total)``
    counts the bytes written.

    Raises:
        WeightsError: the checkpoint is refused or does not fit.
        ConfigError, ModelNotFoundError: the architecture or overrides are wrong.
    """
    from zoo_core.api import save_model
    from zoo_core.build import Architecture

    architecture = Architecture.named(arch)
    config = architecture.config(overrides, from_strings=from_strings)
    tensors = read_checkpoint(checkpoint)
    model = architecture.build_meta(config)
    expected = model.state_dict()
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
    if problems:
        raise WeightsError(
            f"{checkpoint} does not fit {architecture.name}: " + "; ".join(problems),
            hint="pick the architecture and --set values the checkpoint was trained with",
        )
    architecture.fill(model, tensors, config)
    return save_model(model, directory, max_shard_size=max_shard_size, progress=progress)


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
