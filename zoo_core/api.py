"""The public verbs: create, save, load (open), push and predict.

>>> import zoo_core
>>> model = zoo_core.create_model("simple_cnn", num_classes=5, seed=0)   # doctest: +SKIP
>>> zoo_core.save_model(model, "cnn/")                                  # doctest: +SKIP
>>> same = zoo_core.load_model("cnn/", dtype="bfloat16")                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo_core.distributed import sharding as distributed
from zoo_core.errors import ModelNotFoundError, UsageError, WeightsError
from zoo_core.hub.download import check_revision, parse_hf_source
from zoo_core.hub.push import push_directory
from zoo_core.models.build import Architecture
from zoo_core.models.cost import model_cost
from zoo_core.models.placement import parse_device, parse_dtype
from zoo_core.models.saving import identify, model_record, write_model
from zoo_core.plugins.registry import ModelEntry, get_registry
from zoo_core.pretrained.catalogue import get_variants, is_variant_name
from zoo_core.pretrained.metadata import check_weights_section
from zoo_core.pretrained.prediction import Prediction, check_top_k, predict_with
from zoo_core.progress import ProgressCallback
from zoo_core.sources.resolve import find_saved, foreign_saved, saved_architecture, variant_saved
from zoo_core.sources.variant import locate
from zoo_core.storage import limits
from zoo_core.storage.weights import (
    SavedModel,
    check_structure,
    read_saved,
    read_tensors,
    reads_on_first_use,
    structure_problems,
)

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

__all__ = [
    "LoadedModel",
    "PretrainedHeadWarning",
    "create_model",
    "load_model",
    "open_model",
    "open_variant",
    "predict",
    "push_to_hub",
    "save_model",
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
    :mod:`zoo_core.pretrained.metadata`) is checked and written into ``config.json``,
    with the model's ``cost`` (parameters and FLOPs per sample) counted and added.
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
    arch, config = identify(model)
    record = model_record(arch, config)
    if weights is not None:
        if isinstance(weights, dict):
            weights = {k: v for k, v in weights.items() if k != "cost"}  # zoo counts it
        section = check_weights_section(weights, "save_model(weights=...)")
        # Counted here, when a variant is published, so that listings need no torch.
        cost = {k: v for k, v in model_cost(arch, config).items() if v is not None}
        record["weights"] = {**section, "cost": cost} if cost else section
    if distributed.is_sharded(model):
        return distributed.save_sharded(
            model, Path(directory), record, max_shard_size=max_shard_size
        )
    return write_model(
        model,
        arch,
        config,
        record,
        Path(directory),
        max_shard_size=max_shard_size,
        progress=progress,
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
            saved, architecture, config = foreign_saved(source, arch, overrides or {}, from_strings)
        else:
            saved = find_saved(source, overrides, seed=seed)
            if saved is not None:
                architecture, config = saved_architecture(saved)
            elif mesh is not None and is_variant_name(os.fspath(source)):
                saved, architecture, config = variant_saved(os.fspath(source), overrides)
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
            for key in ("labels", "metrics", "cost"):
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


def push_to_hub(
    model_or_dir: Any,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    license: str | None = None,
    overwrite_card: bool = False,
) -> Any:
    """Upload a model (a ZooModel, or a directory saved by ``save_model``) in one commit.

    The commit holds ``config.json``, the weights (single or sharded with the
    index) and a model card; weight files of an earlier push that the new one
    does not have are deleted in the same commit. The card is generated unless
    the directory has its own ``README.md`` or the repository already has one
    (``overwrite_card=True`` regenerates it). ``revision`` names a branch,
    created from ``main`` if missing. The token comes from ``token``, else
    ``HF_TOKEN`` or the saved login; it is never written anywhere.

    huggingface_hub commits atomically: a push that fails leaves the repository
    as it was.

    Returns:
        huggingface_hub's ``CommitInfo`` (``oid`` is the new commit's sha).

    Raises:
        HubError: no permission, not found, network down, a time limit.
        UsageError: the repository id or the revision is malformed.
        WeightsError: the directory is not a saved zoo model or its files do not
            match their recorded hashes.

    >>> zoo_core.push_to_hub(model, "me/cnn-demo", license="mit")          # doctest: +SKIP
    """
    repo_id, inline_revision = parse_hf_source(repo_id)
    revision = check_revision(revision) or inline_revision
    options = dict(
        private=private,
        commit_message=commit_message,
        token=token,
        license=license,
        overwrite_card=overwrite_card,
    )
    if isinstance(model_or_dir, nn.Module):  # a ZooModel, or any model zoo built
        with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
            directory = save_model(model_or_dir, Path(tmp) / "model")
            return push_directory(directory, repo_id, revision, **options)
    path = Path(os.path.expanduser(os.fspath(model_or_dir)))
    if not path.is_dir():
        raise WeightsError(
            f"{path} is not a saved model directory",
            hint="push a directory written by 'zoo save' or zoo_core.save_model, or a ZooModel",
        )
    return push_directory(path, repo_id, revision, **options)


def predict(
    model_or_source: nn.Module | str | os.PathLike[str],
    inputs: Any,
    *,
    top_k: int = 5,
    device: str | torch.device | None = None,
) -> Prediction:
    """Run a model on raw inputs and say what it predicts.

    Args:
        model_or_source: a loaded model, or anything :func:`~zoo_core.load_model`
            takes (``"simple_cnn.digits"``, a directory, ``hf://...``).
        inputs: an array or tensor with a leading batch dimension, raw values as
            the data set stores them; or a list of file paths (``.npy`` batches,
            image files for variants that declare image preprocessing).
        top_k: how many labels to report per input for a classifier with labels.

    Raises:
        UsageError: inputs of the wrong size or kind, or ``top_k`` below 1.
    """
    check_top_k(top_k)
    if isinstance(model_or_source, nn.Module):
        model = model_or_source
    else:
        model = load_model(model_or_source, device=device)
    return predict_with(model, inputs, top_k=top_k)
