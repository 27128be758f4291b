"""What a save needs to know about a model: which architecture and config it is, and its record.

:func:`zoo_core.save_model` and ``zoo convert`` both go through here, so a
model saved either way is described the same and refused the same way when
it could not be loaded again (loading rebuilds it on ``meta`` from its config).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo_core.errors import PluginCodeError, UsageError, WeightsError
from zoo_core.models.build import Architecture, origin_of
from zoo_core.models.config import config_to_dict
from zoo_core.models.model import ZooModel
from zoo_core.models.tying import tied_aliases
from zoo_core.plugins.registry import get_registry
from zoo_core.progress import ProgressCallback
from zoo_core.storage.record import make_record
from zoo_core.storage.writer import write_directory

__all__ = [
    "check_reloadable",
    "identify",
    "model_record",
    "unwrap",
    "unwrapped_class",
    "write_model",
]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``torch.compile``'s and data parallelism's wrappers (else ``model``).

    ``torch.compile(m)`` returns an ``OptimizedModule`` holding ``m`` as
    ``_orig_mod``; ``DistributedDataParallel(m)`` and ``DataParallel(m)`` hold
    it as ``module``. Their state dicts prefix every name (``_orig_mod.``,
    ``module.``), so zoo saves the model inside, under the names it loads with.
    """
    seen = 0
    while seen < 8:  # compile(DDP(m)) and the like nest
        seen += 1
        inner = model.__dict__.get("_modules", {}).get("_orig_mod")
        dynamo = sys.modules.get("torch._dynamo.eval_frame")
        if inner is not None and dynamo is not None and isinstance(model, dynamo.OptimizedModule):
            model = inner
            continue
        parallel = (nn.DataParallel, nn.parallel.DistributedDataParallel)
        if isinstance(model, parallel):
            model = model.module
            continue
        break
    return model


def unwrapped_class(model: nn.Module) -> type:
    """The model's own class (``fully_shard`` swaps in a subclass named ``FSDP<Name>``)."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    cls = type(model)
    if fsdp is not None and isinstance(model, fsdp.FSDPModule):
        return next(c for c in cls.__mro__[1:] if not issubclass(c, fsdp.FSDPModule))
    return cls


def identify(model: nn.Module) -> tuple[Architecture, Any]:
    """The architecture and config of a model about to be saved.

    Raises:
        UsageError: the model is neither a ZooModel nor built by zoo.
        PluginError: its class is not registered by an installed plugin.
    """
    model = unwrap(model)
    origin = origin_of(model)
    if origin is not None and origin.arch.entry is not None:
        return origin.arch, origin.config
    if isinstance(model, ZooModel):
        # A sharded model's class is FSDP's subclass of the plugin's: name the plugin's.
        entry = get_registry().entry_for_class(unwrapped_class(model))
        return Architecture.of(entry), model.config
    raise UsageError(
        f"save_model cannot tell which model a {type(model).__name__} is",
        hint="save a ZooModel, or a model built by create_model / load_model",
    )


def model_record(arch: Architecture, config: Any) -> dict[str, Any]:
    """The ``config.json`` record of a model of ``arch`` built with ``config``."""
    entry = arch.entry
    assert entry is not None
    return make_record(
        architecture=entry.name,
        plugin=entry.plugin.distribution or entry.plugin.name,
        plugin_version=entry.plugin.version,
        target=entry.spec.target,
        config=config_to_dict(config),
    )


def check_reloadable(arch: Architecture, config: Any, state_dict: dict[str, Any]) -> None:
    """Refuse to save what load_model could not load: it builds on meta from the config.

    Raises:
        PluginCodeError: the model cannot be rebuilt on ``meta`` from its config.
        WeightsError: its tensors no longer match what its config builds.
    """
    try:
        expected = arch.build_meta(config).state_dict()
    except PluginCodeError as err:
        raise PluginCodeError(
            f"cannot save {arch.name}: it could not be loaded again, because {err}",
            distribution=err.distribution,
            model=err.model,
            hint="load_model rebuilds the model on the meta device from its config; "
            "do not read tensor values in __init__ (zoo check build-meta)",
        ) from err
    missing = sorted(set(expected) - set(state_dict))
    extra = sorted(set(state_dict) - set(expected))
    reshaped = sorted(
        k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape
    )
    if missing or extra or reshaped:
        parts = [
            f"{label}: {', '.join(keys[:3])}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("reshaped", reshaped))
            if keys
        ]
        raise WeightsError(
            f"cannot save {arch.name}: its tensors do not match what its config builds "
            f"({'; '.join(parts)}), so it could not be loaded again",
            hint="the model was changed after it was built; change its config instead",
        )


def write_model(
    model: nn.Module,
    arch: Architecture,
    config: Any,
    record: dict[str, Any],
    directory: Path,
    *,
    max_shard_size: int | str | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a model held whole by this process (not sharded) as a zoo directory, atomically.

    Raises:
        WeightsError: tensors without data (``meta``), or tensors that no longer fit the config.
    """
    model = unwrap(model)
    state_dict: dict[str, torch.Tensor] = model.state_dict()
    on_meta = [k for k, t in state_dict.items() if t.is_meta]
    if on_meta:
        raise WeightsError(
            f"cannot save {arch.name}: {', '.join(on_meta[:3])} have no data (meta device)"
        )
    check_reloadable(arch, config, state_dict)
    return write_directory(
        state_dict,
        record,
        Path(directory),
        max_shard_size=max_shard_size,
        progress=progress,
        aliases=tied_aliases(model),
    )
