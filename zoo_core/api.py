"""The public verbs: :func:`create_model`, :func:`save_model`, :func:`load_model`.

>>> import zoo_core
>>> model = zoo_core.create_model("simple_cnn", num_classes=5, seed=0)   # doctest: +SKIP
>>> zoo_core.save_model(model, "cnn/")                                  # doctest: +SKIP
>>> same = zoo_core.load_model("cnn/", dtype="bfloat16")                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo_core.distributed import sharding as distributed
from zoo_core.errors import (
    ConfigError,
    ModelNotFoundError,
    PluginCodeError,
    SourceNotFoundError,
    UsageError,
    WeightsError,
)
from zoo_core.models.build import Architecture, origin_of
from zoo_core.models.config import config_to_dict
from zoo_core.models.model import ZooModel
from zoo_core.models.placement import parse_device, parse_dtype
from zoo_core.plugins.registry import ModelEntry, get_registry
from zoo_core.pretrained.catalogue import is_variant_name
from zoo_core.pretrained.metadata import check_weights_section
from zoo_core.progress import ProgressCallback
from zoo_core.storage import limits
from zoo_core.storage.atomic import try_recover
from zoo_core.storage.weights import (
    SavedModel,
    check_structure,
    make_record,
    read_saved,
    read_tensors,
    reads_on_first_use,
    structure_problems,
    write_directory,
)

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

__all__ = [
    "LoadedModel",
    "PretrainedHeadWarning",
    "create_model",
    "describe_source",
    "load_model",
    "open_model",
    "open_variant",
    "save_model",
    "saved_architecture",
]


class PretrainedHeadWarning(UserWarning):
    """Issued when a weights variant is loaded with a new head (re-initialised tensors named)."""


@dataclass
class LoadedModel:
    """A model together with where it came from (what the CLI reports)."""

    model: nn.Module
    entry: ModelEntry
    source: str
    source_kind: str  # "name", "directory", "file" or "hub"
    load_seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def _create(
    name: str,
    overrides: dict[str, Any],
    *,
    from_strings: bool,
    seed: int | None,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> tuple[ModelEntry, nn.Module]:
    """Resolve a model name, check the overrides, build it, cast it."""
    arch = Architecture.named(name)
    config = arch.config(overrides, from_strings=from_strings)
    assert arch.entry is not None
    return arch.entry, arch.build(config, seed=seed, device=device, dtype=dtype)


def create_model(
    name: str,
    /,
    *,
    pretrained: bool | str = False,
    seed: int | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    mesh: DeviceMesh | None = None,
    parallel: str = "fsdp",
    **overrides: Any,
) -> nn.Module:
    """Build a model by name, freshly initialised or from pretrained weights.

    Args:
        name: a model name from :func:`list_models`, bare or ``DIST:NAME``; or a
            weights variant ``NAME.TAG`` (``"simple_cnn.digits"``).
        pretrained: ``True`` loads the model's default weights variant, a
            string the variant with that tag (``pretrained="digits"``).
        seed: when given, initialise from this seed without touching the
            global random state.
        device, dtype: where to build and which floating dtype to use.
        mesh, parallel: shard over a ``DeviceMesh`` (see :func:`load_model`).
        **overrides: config fields, checked against the model's ``Config``.

    With weights (a variant name or ``pretrained``), overrides that change no
    tensor's shape are applied as given; a new class count (``num_classes=5``)
    keeps every pretrained tensor that still fits, initialises the variant's
    head afresh (from ``seed``) and warns which tensors it re-initialised; any
    other shape change is a :class:`WeightsError` naming the tensors. The model
    carries the variant's metadata in ``model.weights_info``.

    Raises:
        ModelNotFoundError, AmbiguousModelError: the name does not resolve.
        ConfigError: an override is unknown or has the wrong type.

    >>> model = create_model("simple_rnn", cell="gru", seed=0)   # doctest: +SKIP
    >>> model = create_model("simple_cnn", pretrained=True)      # doctest: +SKIP
    >>> model = create_model("simple_cnn.digits", num_classes=5) # doctest: +SKIP
    """
    if mesh is not None:
        if pretrained is not False:
            raise UsageError(
                "create_model(pretrained=...) does not take mesh=",
                hint="load the weights sharded: load_model('NAME.TAG', mesh=mesh)",
            )
        kwargs = {"seed": seed, "device": device, "dtype": dtype, "overrides": overrides}
        return open_model(name, mesh=mesh, parallel=parallel, **kwargs).model
    if pretrained is not False or is_variant_name(name):
        return open_variant(
            name,
            pretrained=pretrained,
            overrides=overrides,
            seed=seed,
            device=parse_device(device),
            dtype=parse_dtype(dtype),
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
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = None,
    progress: ProgressCallback | None = None,
    weights: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` as ``config.json`` + safetensors weights in ``directory``, atomically.

    ``model`` is a :class:`ZooModel`, or any model that :func:`create_model` or
    :func:`load_model` built (they remember which spec and config it came from).
    The directory is written next to its final place and swapped in, so an
    interrupted save leaves the previous model intact. ``max_shard_size`` (bytes
    or a string like ``"500MB"``) splits large weights into shards. ``weights``
    makes the directory a weights variant: its ``weights`` section (tag,
    metrics, labels, preprocessing, license, training; see
    :mod:`zoo_core.pretrained.metadata`) is checked and written into ``config.json``.
    Before writing, the model is rebuilt on ``meta`` (as loading will): what
    could not be loaded again is refused. A model sharded over a mesh is saved
    by calling this on every rank: rank 0 writes the same directory a single
    process would.
    ``progress(done, total)`` is called with the bytes written so far
    (:class:`zoo_core.progress.ProgressBar` draws it).

    Raises:
        PluginError: the model's class is not registered by an installed plugin.
        PluginCodeError: the model cannot be rebuilt from its config (loading would fail).
        WeightsError: ``directory`` exists and is not a zoo model, or the model's
            tensors no longer match what its config builds.

    >>> save_model(create_model("linear_regression"), "lr/")   # doctest: +SKIP
    PosixPath('/home/me/lr')
    """
    arch, config = _saving(model)
    assert arch.entry is not None
    entry = arch.entry
    record = make_record(
        architecture=entry.name,
        plugin=entry.plugin.distribution or entry.plugin.name,
        plugin_version=entry.plugin.version,
        target=entry.spec.target,
        config=config_to_dict(config),
    )
    if weights is not None:
        record["weights"] = check_weights_section(weights, "save_model(weights=...)")
    if distributed.is_sharded(model):
        return distributed.save_sharded(
            model, Path(directory), record, max_shard_size=max_shard_size
        )
    state_dict = model.state_dict()
    on_meta = [k for k, t in state_dict.items() if t.is_meta]
    if on_meta:
        raise WeightsError(
            f"cannot save {entry.name}: {', '.join(on_meta[:3])} have no data (meta device)"
        )
    _check_reloadable(arch, config, state_dict)
    return write_directory(
        state_dict, record, Path(directory), max_shard_size=max_shard_size, progress=progress
    )


def _saving(model: nn.Module) -> tuple[Architecture, Any]:
    """The architecture and config of a model about to be saved."""
    origin = origin_of(model)
    if origin is not None and origin.arch.entry is not None:
        return origin.arch, origin.config
    if isinstance(model, ZooModel):
        # A sharded model's class is FSDP's subclass of the plugin's: name the plugin's.
        entry = get_registry().entry_for_class(distributed.unwrapped_class(model))
        return Architecture.of(entry), model.config
    raise UsageError(
        f"save_model cannot tell which model a {type(model).__name__} is",
        hint="save a ZooModel, or a model built by create_model / load_model",
    )


def _check_reloadable(arch: Architecture, config: Any, state_dict: dict[str, Any]) -> None:
    """Refuse to save what load_model could not load: it builds on meta from the config."""
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


def load_model(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    arch: str | None = None,
    progress: ProgressCallback | None = None,
    mesh: DeviceMesh | None = None,
    parallel: str = "fsdp",
) -> nn.Module:
    """Load a model from a saved directory, a lone ``.safetensors`` file, or a model name.

    A source that exists on disk is a path; anything else is a model name
    (freshly initialised, as :func:`create_model`). Saved weights are read
    straight into a model built on the ``meta`` device, so no random
    initialisation is paid for and no second copy is made. Loaded models are
    returned in ``eval()`` mode.

    ``arch`` names the architecture of weights saved by other tools (a
    ``PyTorchModelHubMixin.save_pretrained`` or ``save_torch_model`` directory,
    a bare ``.safetensors`` file); config fields are taken from their
    ``config.json`` where the names match. ``progress(done, total)`` counts the
    bytes of saved weights read.

    With ``mesh`` (a ``torch.distributed`` ``DeviceMesh``; call on every rank,
    under ``torchrun``) the model is sharded: ``parallel="fsdp"`` applies
    FSDP2's ``fully_shard``, ``parallel="tp"`` the tensor-parallel plan its
    class declares, and each rank reads only the bytes of its own shards (see
    :mod:`zoo_core.distributed.sharding`).

    Raises:
        SourceNotFoundError: a path-like source does not exist.
        WeightsError: the file is not safetensors, not zoo's, or does not fit.
        PluginNotInstalledError: the architecture's plugin is not installed.

    >>> model = load_model("cnn/", device="cpu", dtype="bfloat16")   # doctest: +SKIP
    >>> model = load_model("hf_dir/", arch="linear_regression")      # doctest: +SKIP
    >>> model = load_model("big/", mesh=mesh, parallel="tp")         # doctest: +SKIP
    """
    return open_model(
        source,
        device=device,
        dtype=dtype,
        arch=arch,
        mesh=mesh,
        parallel=parallel,
        progress=progress,
    ).model


def _looks_like_path(source: str) -> bool:
    return (
        "/" in source
        or os.sep in source
        or source.startswith((".", "~"))
        or source.endswith((".safetensors", ".json"))
    )


def _find_saved(
    source: str | os.PathLike[str],
    overrides: dict[str, Any] | None,
    *,
    weights: bool = True,
    seed: int | None = None,
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
        if seed is not None:
            raise ConfigError(
                f"{text} is a saved model: its weights come from {where}, so a seed has no use",
                hint="drop --seed, or build a new model by name",
            )

    if text.startswith("hf://"):
        refuse_overrides("the Hub")
        from zoo_core.hub.download import open_hub_saved

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
    source: str | os.PathLike[str], name: str, overrides: dict[str, Any], from_strings: bool
) -> tuple[SavedModel, Architecture, Any]:
    """Weights from another tool, read as the architecture ``name``."""
    path = Path(os.path.expanduser(os.fspath(source)))
    if not path.exists():
        raise SourceNotFoundError(
            f"no such file or directory: {os.fspath(source)}",
            hint="--arch names the architecture of a local directory or .safetensors file",
        )
    saved = read_saved(path, foreign=True)
    arch = Architecture.named(name)
    names = {f.name for f in dataclasses.fields(arch.Config)}
    found = {k: v for k, v in saved.record["config"].items() if k in names}
    base = arch.config_from_file(found, path)
    config = arch.config(overrides, base=base, from_strings=from_strings)
    saved.record.update(architecture=arch.name, config=config_to_dict(config))
    return saved, arch, config


def saved_architecture(saved: SavedModel) -> tuple[Architecture, Any]:
    """The installed architecture and the config that a saved model records.

    Raises:
        PluginNotInstalledError: the plugin the weights name is missing.
        WeightsError: the recorded config does not fit the architecture.
    """
    arch = Architecture.for_saved(
        saved.architecture, saved.record.get("plugin"), saved.record.get("plugin_version")
    )
    return arch, arch.config_from_file(saved.record["config"], saved.path)


def describe_source(
    source: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    *,
    from_strings: bool = True,
) -> tuple[Architecture, Any, str]:
    """The architecture and config a source stands for, without building or reading weights."""
    saved = _find_saved(source, overrides, weights=False)
    if saved is not None:
        arch, config = saved_architecture(saved)
        return arch, config, saved.source
    if is_variant_name(os.fspath(source)):
        from zoo_core.pretrained.catalogue import get_variants, locate

        located = locate(get_variants().resolve(os.fspath(source)), weights=False)
        arch = Architecture.of(located.entry)
        base = arch.config_from_file(located.record.get("config", {}), located.path)
        config = arch.config(overrides, base=base, from_strings=from_strings)
        return arch, config, located.variant.spec.source
    arch = Architecture.named(os.fspath(source))
    return arch, arch.config(overrides, from_strings=from_strings), os.fspath(source)


def open_model(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    overrides: dict[str, Any] | None = None,
    from_strings: bool = False,
    seed: int | None = None,
    arch: str | None = None,
    progress: ProgressCallback | None = None,
    mesh: DeviceMesh | None = None,
    parallel: str = "fsdp",
) -> LoadedModel:
    """:func:`load_model` with provenance, and config overrides for model names.

    With ``arch``, ``source`` is a path to weights saved by another tool, and
    ``overrides`` complete or replace the config fields found next to them.
    ``progress(done, total)`` counts the bytes of saved weights read (or mapped).
    ``details["memory_mapped"]`` says whether the weights' pages are read only
    when first used (a plain CPU load), after ``load_seconds`` has been taken.
    """
    started = time.perf_counter()
    # On a mesh, a rank that cannot resolve the source fails every rank (no hang).
    with distributed.agreement(mesh) if mesh is not None else contextlib.nullcontext():
        target_device = parse_device(device)
        target_dtype = parse_dtype(dtype)
        if arch is not None:
            saved, architecture, config = _foreign_saved(
                source, arch, overrides or {}, from_strings
            )
        else:
            saved = _find_saved(source, overrides, seed=seed)
            if saved is not None:
                architecture, config = saved_architecture(saved)
            elif mesh is not None and is_variant_name(os.fspath(source)):
                saved, architecture, config = _variant_saved(os.fspath(source), overrides)
            elif mesh is not None:
                architecture = Architecture.named(os.fspath(source))
                config = architecture.config(overrides, from_strings=from_strings)
    if mesh is not None:
        model, details = distributed.open_sharded(
            architecture, config, saved, mesh, parallel, seed, target_device, target_dtype
        )
        kind, text = (saved.kind, saved.source) if saved else ("name", os.fspath(source))
        assert architecture.entry is not None
        seconds = time.perf_counter() - started
        return LoadedModel(model, architecture.entry, text, kind, seconds, details)
    if saved is not None:
        try:
            model = _load_saved(architecture, config, saved, target_device, target_dtype, progress)
            model.weights_info = _weights_info(saved)
        finally:
            saved.close()  # the tensors are read or mapped; the files need not stay open
        entry = architecture.entry
        assert entry is not None
        details = {
            "files": [str(f) for f in saved.files],
            "memory_mapped": reads_on_first_use(target_device, target_dtype),
            **saved.provenance(),
        }
        seconds = time.perf_counter() - started
        return LoadedModel(model, entry, saved.source, saved.kind, seconds, details)
    text = os.fspath(source)
    if is_variant_name(text):
        return open_variant(
            text,
            overrides=overrides or {},
            from_strings=from_strings,
            seed=seed,
            device=target_device,
            dtype=target_dtype,
        )
    try:
        entry, model = _create(
            text,
            overrides or {},
            from_strings=from_strings,
            seed=seed,
            device=target_device,
            dtype=target_dtype,
        )
    except ModelNotFoundError as err:
        # "cnnn" may be a mistyped directory as much as a mistyped model name.
        raise ModelNotFoundError(
            f"{err.message}, and no file or directory {text!r} exists", hint=err.hint
        ) from None
    return LoadedModel(model, entry, text, "name", time.perf_counter() - started)


def _variant_saved(
    name: str, overrides: dict[str, Any] | None
) -> tuple[SavedModel, Architecture, Any]:
    """A weights variant as a saved source, for loads that only read it (sharded ones)."""
    from zoo_core.pretrained.catalogue import get_variants, locate

    if overrides:
        raise UsageError(
            f"{name}: config overrides of a weights variant are not supported with mesh=",
            hint="load the variant sharded without overrides, or without mesh= to fine-tune",
        )
    located = locate(get_variants().resolve(name))
    arch = Architecture.of(located.entry)
    config = arch.config_from_file(located.record.get("config", {}), located.path)
    return read_saved(located.path), arch, config


def _weights_info(saved: SavedModel) -> dict[str, Any] | None:
    """The checked ``weights`` section of a saved model, if it has one."""
    section = saved.record.get("weights")
    return None if section is None else check_weights_section(section, str(saved.path))


def open_variant(
    name: str,
    *,
    pretrained: bool | str = True,
    overrides: dict[str, Any] | None = None,
    from_strings: bool = False,
    seed: int | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load a weights variant: ``NAME.TAG``, or model ``NAME`` with ``pretrained`` True or a tag.

    The variant is located and checked first (its plugin, its config.json pin,
    every file's hash); see :func:`create_model` for what overrides may do.
    """
    from zoo_core.pretrained.catalogue import get_variants, locate

    started = time.perf_counter()
    variants = get_variants()
    if is_variant_name(name):
        if pretrained not in (True, False):
            raise UsageError(
                f"{name} already names a weights variant; pretrained={pretrained!r} would "
                "name another",
                hint="give NAME.TAG, or NAME with pretrained=TAG",
            )
        variant = variants.resolve(name)
    else:
        variant = variants.default_for(get_registry().resolve(name), pretrained)
    located = locate(variant)
    arch = Architecture.of(located.entry)
    saved = read_saved(located.path)
    # The config comes from the bytes whose hash was checked, not from a second read.
    base = arch.config_from_file(located.record.get("config", {}), located.path)
    info = dict(located.section)
    if overrides:
        config = arch.config(overrides, base=base, from_strings=from_strings)
        model, renewed = _finetune(arch, config, saved, info, seed, device, dtype)
        if renewed:
            warnings.warn(
                f"{variant.display_name}: re-initialised {', '.join(renewed)} for the new "
                "config; every other tensor is pretrained",
                PretrainedHeadWarning,
                stacklevel=3,
            )
            for key in ("labels", "metrics"):
                info.pop(key, None)  # they describe the old head
            info.update(reinitialised=renewed, finetuned_from=variant.qualified_name)
    else:
        model = _load_saved(arch, base, saved, device, dtype)
    model.weights_info = info
    details = {"files": [str(f) for f in saved.files], **located.provenance}
    if info.get("reinitialised"):
        details["reinitialised"] = info["reinitialised"]
    seconds = time.perf_counter() - started
    return LoadedModel(model, located.entry, variant.display_name, "variant", seconds, details)


def _finetune(
    arch: Architecture,
    config: Any,
    saved: SavedModel,
    section: dict[str, Any],
    seed: int | None,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> tuple[nn.Module, list[str]]:
    """A model built from ``config`` holding every pretrained tensor that still fits.

    Returns the model and the tensors it initialised afresh (all in the variant's head).
    """
    model = arch.build(config, seed=seed, device=device)
    expected = model.state_dict()
    problems = [p for p in structure_problems(saved, expected) if not p.startswith("wrong shape")]
    if problems:
        raise WeightsError(
            f"the weights of {arch.name} in {saved.path} do not fit this config: "
            + "; ".join(problems)
        )
    changed = {}
    for key, tensor in expected.items():
        stored = saved.aliases.get(key, key)
        shape = saved.headers[saved.key_to_file[stored]].tensors[stored].shape
        if tuple(shape) != tuple(tensor.shape):
            changed[key] = f"{key} {list(shape)} -> {list(tensor.shape)}"
    head = section.get("head") or []
    outside = sorted(k for k in changed if not any(k == h or k.startswith(h + ".") for h in head))
    if outside:
        raise WeightsError(
            "these overrides change pretrained tensors outside the variant's head ("
            + (", ".join(head) or "none declared")
            + "): "
            + ", ".join(changed[k] for k in outside[:5])
            + (f" and {len(outside) - 5} more" if len(outside) > 5 else ""),
            hint="only a new class count may change a variant's shapes; to change the "
            "architecture, build the model by name without weights",
        )
    keep = [k for k in expected if k not in changed]
    tensors = read_tensors(saved, keep, device=device, dtype=dtype)
    model.load_state_dict(tensors, strict=False, assign=True)
    if dtype is not None:
        model.to(dtype)  # the fresh head, in the dtype of the rest
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            module.flatten_parameters()  # assigned tensors are separate allocations
    return model.eval(), sorted(changed)


def _load_saved(
    arch: Architecture,
    config: Any,
    saved: SavedModel,
    device: torch.device | None,
    dtype: torch.dtype | None,
    progress: ProgressCallback | None = None,
) -> nn.Module:
    model = arch.build_meta(config, where=saved.path)
    expected = model.state_dict()
    check_structure(saved, expected, cast=dtype is not None)
    # Measured on meta, before anything is allocated: a config read from a file must not
    # make zoo compute gigabytes that no file holds (tiny_transformer's max_len, say).
    problem = limits.buffer_problem(model, expected)
    if problem is not None:
        raise WeightsError(
            f"{saved.path}: {problem}",
            hint="the config was damaged or edited by hand; if it is genuine, raise "
            f"{limits.LIMITS['buffers'].env} (see SECURITY.md)",
        )
    tensors = read_tensors(saved, list(expected), device=device, dtype=dtype, progress=progress)
    return arch.fill(model, tensors, config, device=device, dtype=dtype)
