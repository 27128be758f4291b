"""The public verbs: :func:`create_model`, :func:`save_model`, :func:`load_model`.

>>> import zoo_core
>>> model = zoo_core.create_model("simple_cnn", num_classes=5, seed=0)   # doctest: +SKIP
>>> zoo_core.save_model(model, "cnn/")                                  # doctest: +SKIP
>>> same = zoo_core.load_model("cnn/", dtype="bfloat16")                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.config import build_config, config_to_dict
from zoo_core.errors import (
    ConfigError,
    SourceNotFoundError,
    UsageError,
    WeightsError,
)
from zoo_core.fsutil import try_recover
from zoo_core.model import ZooModel
from zoo_core.placement import parse_device, parse_dtype
from zoo_core.registry import ModelEntry, get_registry
from zoo_core.weights import (
    SavedModel,
    check_structure,
    make_record,
    read_saved,
    read_tensors,
    write_directory,
)

__all__ = [
    "LoadedModel",
    "create_model",
    "describe_source",
    "load_model",
    "open_model",
    "save_model",
]


@dataclass
class LoadedModel:
    """A model together with where it came from (what the CLI reports)."""

    model: ZooModel
    entry: ModelEntry
    source: str
    source_kind: str  # "name", "directory", "file" or "hub"
    load_seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def _build(
    entry: ModelEntry, config: Any, *, seed: int | None, device: torch.device | None
) -> ZooModel:
    cls = entry.load_class()
    with torch.device(device or "cpu"):
        if seed is None:
            return cls(config)
        # fork_rng restores the global generators afterwards: a seed given here
        # must not change what the caller's own torch.randn calls return.
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return cls(config)


def _config_for(entry: ModelEntry, overrides: dict[str, Any], from_strings: bool) -> Any:
    cls = entry.load_class()
    return build_config(cls.Config, overrides, from_strings=from_strings)


def _create(
    name: str,
    overrides: dict[str, Any],
    *,
    from_strings: bool,
    seed: int | None,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> tuple[ModelEntry, ZooModel]:
    """Resolve a model name, check the overrides, build it, cast it."""
    entry = get_registry().resolve(name)
    config = _config_for(entry, overrides, from_strings=from_strings)
    model = _build(entry, config, seed=seed, device=device)
    return entry, model if dtype is None else model.to(dtype)


def create_model(
    name: str,
    /,
    *,
    seed: int | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    mesh: Any = None,
    parallel: str = "fsdp",
    **overrides: Any,
) -> ZooModel:
    """Build a freshly initialised model by name, with config overrides.

    Args:
        name: a model name from :func:`list_models`, bare or ``DIST:NAME``.
        seed: when given, initialise from this seed without touching the
            global random state.
        device, dtype: where to build and which floating dtype to use.
        **overrides: config fields, checked against the model's ``Config``.

    Raises:
        ModelNotFoundError, AmbiguousModelError: the name does not resolve.
        ConfigError: an override is unknown or has the wrong type.

    >>> model = create_model("simple_rnn", cell="gru", seed=0)   # doctest: +SKIP
    """
    if mesh is not None:
        return open_model(
            name,
            device=device,
            dtype=dtype,
            overrides=overrides,
            seed=seed,
            mesh=mesh,
            parallel=parallel,
        ).model
    _, model = _create(
        name,
        overrides,
        from_strings=False,
        seed=seed,
        device=parse_device(device),
        dtype=parse_dtype(dtype),
    )
    return model


def save_model(
    model: ZooModel, directory: str | os.PathLike[str], *, max_shard_size: int | str | None = None
) -> Path:
    """Save ``model`` as ``config.json`` + safetensors weights in ``directory``, atomically.

    The directory is written next to its final place and swapped in, so an
    interrupted save leaves the previous model intact. ``max_shard_size`` (bytes
    or a string like ``"500MB"``) splits large weights into shards.

    Raises:
        PluginError: the model's class is not registered by an installed plugin.
        WeightsError: ``directory`` exists and is not a zoo model.

    >>> save_model(create_model("linear_regression"), "lr/")   # doctest: +SKIP
    PosixPath('/home/me/lr')
    """
    if not isinstance(model, ZooModel):
        raise UsageError(f"save_model expects a ZooModel, got {type(model).__name__}")
    from zoo_core import distributed

    entry = get_registry().entry_for_class(distributed.unwrapped_class(model))
    if distributed.is_sharded(model):
        record = make_record(
            architecture=entry.name,
            plugin=entry.plugin.distribution or entry.plugin.name,
            plugin_version=entry.plugin.version,
            target=entry.spec.target,
            config=config_to_dict(model.config),
        )
        return distributed.save_sharded(
            model, Path(directory), record, max_shard_size=max_shard_size
        )
    state_dict = model.state_dict()
    on_meta = [k for k, t in state_dict.items() if t.is_meta]
    if on_meta:
        raise WeightsError(
            f"cannot save {entry.name}: {', '.join(on_meta[:3])} have no data (meta device)"
        )
    record = make_record(
        architecture=entry.name,
        plugin=entry.plugin.distribution or entry.plugin.name,
        plugin_version=entry.plugin.version,
        target=entry.spec.target,
        config=config_to_dict(model.config),
    )
    return write_directory(state_dict, record, Path(directory), max_shard_size=max_shard_size)


def load_model(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    arch: str | None = None,
    mesh: Any = None,
    parallel: str = "fsdp",
) -> ZooModel:
    """Load a model from a saved directory, a lone ``.safetensors`` file, or a model name.

    A source that exists on disk is a path; anything else is a model name
    (freshly initialised, as :func:`create_model`). Saved weights are read
    straight into a model built on the ``meta`` device, so no random
    initialisation is paid for and no second copy is made. Loaded models are
    returned in ``eval()`` mode.

    ``arch`` names the architecture of weights saved by other tools (a
    ``PyTorchModelHubMixin.save_pretrained`` or ``save_torch_model`` directory,
    a bare ``.safetensors`` file); config fields are taken from their
    ``config.json`` where the names match.

    Raises:
        SourceNotFoundError: a path-like source does not exist.
        WeightsError: the file is not safetensors, not zoo's, or does not fit.
        PluginNotInstalledError: the architecture's plugin is not installed.

    >>> model = load_model("cnn/", device="cpu", dtype="bfloat16")   # doctest: +SKIP
    >>> model = load_model("hf_dir/", arch="linear_regression")      # doctest: +SKIP
    """
    return open_model(
        source, device=device, dtype=dtype, arch=arch, mesh=mesh, parallel=parallel
    ).model


def _looks_like_path(source: str) -> bool:
    return (
        "/" in source
        or os.sep in source
        or source.startswith((".", "~"))
        or source.endswith((".safetensors", ".json"))
    )


def _find_saved(
    source: str | os.PathLike[str], overrides: dict[str, Any] | None, *, weights: bool = True
) -> SavedModel | None:
    """The saved model at ``source`` if it is a path or ``hf://``; None if it is a model name.

    ``weights=False`` lets an ``hf://`` source fetch only its config.
    """
    text = os.fspath(source)

    def refuse_overrides(where: str) -> None:
        # Checked before anything is read or downloaded.
        if overrides:
            raise ConfigError(
                f"{text} is a saved model: its config comes from {where}, not from overrides",
                hint="drop --set, or build a new model by name",
            )

    if text.startswith("hf://"):
        refuse_overrides("the Hub")
        from zoo_core.hub import open_hub_saved

        return open_hub_saved(text, weights=weights)
    path = Path(os.path.expanduser(text))
    # An interrupted save may have left the model aside; put it back before looking.
    try_recover(Path(os.path.abspath(path)))
    if path.exists():
        refuse_overrides("the file")
        return read_saved(path)
    if _looks_like_path(text):
        raise SourceNotFoundError(
            f"no such file or directory: {text}",
            hint="give a saved model directory, a .safetensors file, or a model name",
        )
    return None


def _foreign_saved(
    source: str | os.PathLike[str], arch: str, overrides: dict[str, Any], from_strings: bool
) -> tuple[SavedModel, ModelEntry, Any]:
    """Weights from another tool, read as architecture ``arch``."""
    path = Path(os.path.expanduser(os.fspath(source)))
    if not path.exists():
        raise SourceNotFoundError(
            f"no such file or directory: {os.fspath(source)}",
            hint="--arch names the architecture of a local directory or .safetensors file",
        )
    saved = read_saved(path, foreign=True)
    entry = get_registry().resolve(arch)
    cls = entry.load_class()
    names = {f.name for f in dataclasses.fields(cls.Config)}
    found = {k: v for k, v in saved.record["config"].items() if k in names}
    try:
        base = build_config(cls.Config, found)
    except ConfigError as err:
        raise WeightsError(f"{path}: {err}", hint=err.hint) from None
    config = build_config(cls.Config, overrides, base=base, from_strings=from_strings)
    saved.record.update(architecture=entry.name, config=config_to_dict(config))
    return saved, entry, config


def _saved_entry_and_config(saved: SavedModel) -> tuple[ModelEntry, Any]:
    entry = get_registry().resolve_saved(
        saved.architecture, saved.record.get("plugin"), saved.record.get("plugin_version")
    )
    try:
        config = build_config(entry.load_class().Config, saved.record["config"])
    except ConfigError as err:
        # A bad config inside a file is a problem with the file, not the command line.
        raise WeightsError(f"{saved.path}: {err}", hint=err.hint) from None
    return entry, config


def describe_source(
    source: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    *,
    from_strings: bool = True,
) -> tuple[ModelEntry, Any, str]:
    """The entry and config a source stands for, without building or reading weights."""
    saved = _find_saved(source, overrides, weights=False)
    if saved is not None:
        entry, config = _saved_entry_and_config(saved)
        return entry, config, saved.source
    entry = get_registry().resolve(os.fspath(source))
    return entry, _config_for(entry, overrides or {}, from_strings), os.fspath(source)


def open_model(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    overrides: dict[str, Any] | None = None,
    from_strings: bool = False,
    seed: int | None = None,
    arch: str | None = None,
    mesh: Any = None,
    parallel: str = "fsdp",
) -> LoadedModel:
    """:func:`load_model` with provenance, and config overrides for model names.

    With ``arch``, ``source`` is a path to weights saved by another tool, and
    ``overrides`` complete or replace the config fields found next to them.
    """
    started = time.perf_counter()
    if mesh is not None:
        return _open_sharded(
            source,
            mesh,
            parallel,
            device,
            dtype,
            overrides or {},
            from_strings,
            seed,
            arch,
            started,
        )
    target_device = parse_device(device)
    target_dtype = parse_dtype(dtype)
    if arch is not None:
        saved, entry, config = _foreign_saved(source, arch, overrides or {}, from_strings)
    else:
        saved = _find_saved(source, overrides)
        if saved is not None:
            entry, config = _saved_entry_and_config(saved)
    if saved is not None:
        model = _load_saved(entry, config, saved, target_device, target_dtype)
        details = {"files": [str(f) for f in saved.files], **saved.provenance()}
        seconds = time.perf_counter() - started
        return LoadedModel(model, entry, saved.source, saved.kind, seconds, details)
    text = os.fspath(source)
    entry, model = _create(
        text,
        overrides or {},
        from_strings=from_strings,
        seed=seed,
        device=target_device,
        dtype=target_dtype,
    )
    return LoadedModel(model, entry, text, "name", time.perf_counter() - started)


def _load_saved(
    entry: ModelEntry,
    config: Any,
    saved: SavedModel,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> ZooModel:
    cls = entry.load_class()
    try:
        with torch.device("meta"):
            model = cls(config)
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as err:
        # The config came from a file: absurd sizes in it are the file's fault.
        raise WeightsError(
            f"{saved.path}: cannot build {entry.name} with the config it records: {err}",
            hint="the config.json or metadata was damaged or edited by hand",
        ) from None
    expected = model.state_dict()
    check_structure(saved, expected)
    tensors = read_tensors(saved, list(expected), device=device, dtype=dtype)
    model.load_state_dict(tensors, strict=True, assign=True)
    _materialise_leftovers(model, entry, config, device, dtype)
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            # Assigned tensors are separate allocations; cuDNN wants one flat buffer and
            # would otherwise re-pack them on every call (what .to() does for it, too).
            module.flatten_parameters()
    return model.eval()


def _materialise_leftovers(
    model: ZooModel,
    entry: ModelEntry,
    config: Any,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> None:
    """Give non-persistent buffers (not in any state dict) real values.

    They were built on ``meta`` with the rest and no file holds them, so the
    only way to compute them is to build the model for real. Most models have
    none and never pay for this.
    """
    leftovers = [name for name, b in model.named_buffers() if b.is_meta]
    if not leftovers:
        return
    reference = _build(entry, config, seed=0, device=device)
    real = dict(reference.named_buffers())
    for name in leftovers:
        module_name, _, buffer_name = name.rpartition(".")
        owner = model.get_submodule(module_name)
        value = real[name]
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        owner._buffers[buffer_name] = value


class _Arch:
    """TEMPORARY stand-in for build.Architecture until the refactor lands."""

    def __init__(self, entry):
        self.entry = entry
        self.cls = entry.load_class()

    def build_meta(self, config, *, where=None):
        with torch.device("meta"):
            return self.cls(config)

    def build(self, config, *, seed=None, device=None, dtype=None):
        model = _build(self.entry, config, seed=seed, device=device)
        return model if dtype is None else model.to(dtype)

    def materialise_leftovers(self, model, config, *, device=None, dtype=None):
        _materialise_leftovers(model, self.entry, config, device, dtype)


def _open_sharded(
    source, mesh, parallel, device, dtype, overrides, from_strings, seed, arch, started
):
    from zoo_core import distributed

    stats = distributed.LoadStats()
    with distributed.agreement(mesh):
        target_device = parse_device(device)
        target_dtype = parse_dtype(dtype)
        if arch is not None:
            saved, entry, config = _foreign_saved(source, arch, overrides, from_strings)
        else:
            saved = _find_saved(source, overrides)
            if saved is not None:
                entry, config = _saved_entry_and_config(saved)
            else:
                entry = get_registry().resolve(os.fspath(source))
                config = _config_for(entry, overrides, from_strings)
    if saved is None:
        model = distributed.create_sharded(
            _Arch(entry),
            config,
            mesh=mesh,
            parallel=parallel,
            seed=seed,
            device=target_device,
            dtype=target_dtype,
        )
        return LoadedModel(model, entry, os.fspath(source), "name", time.perf_counter() - started)
    model = distributed.load_sharded(
        _Arch(entry),
        config,
        saved,
        mesh=mesh,
        parallel=parallel,
        device=target_device,
        dtype=target_dtype,
        stats=stats,
    )
    details = {
        "files": [str(f) for f in saved.files],
        **saved.provenance(),
        "bytes_read": stats.bytes_read,
        "parallel": parallel,
    }
    return LoadedModel(
        model, entry, saved.source, saved.kind, time.perf_counter() - started, details
    )
