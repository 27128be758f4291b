"""The public verbs: create, save, load (open), push and predict.

>>> import zoo_core
>>> model = zoo_core.create_model("simple_cnn", num_classes=5, seed=0)   # doctest: +SKIP
>>> zoo_core.save_model(model, "cnn/")                                  # doctest: +SKIP
>>> same = zoo_core.load_model("cnn/", dtype="bfloat16")                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
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
from zoo_core.distributed.agreement import agree_on_source
from zoo_core.errors import ModelNotFoundError, UsageError, WeightsError
from zoo_core.hub.download import check_revision, parse_hf_source
from zoo_core.hub.push import push_saved
from zoo_core.models.cost import model_cost
from zoo_core.models.loading import load_finetuned, load_weights
from zoo_core.models.placement import parse_device, parse_dtype
from zoo_core.models.saving import identify, model_record, unwrap, write_model
from zoo_core.plugins.registry import ModelEntry, get_registry
from zoo_core.pretrained.carry import remember, section_to_save
from zoo_core.pretrained.catalogue import get_variants, is_variant_name
from zoo_core.pretrained.prediction import Prediction, check_top_k, predict_with
from zoo_core.progress import ProgressCallback
from zoo_core.sources.resolve import Source, resolve, source_kind
from zoo_core.storage.snapshot import Vanished
from zoo_core.storage.weights import reads_on_first_use
from zoo_core.untrusted import remember_secret

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

__all__ = [
    "LoadedModel",
    "PretrainedHeadWarning",
    "create_model",
    "load_model",
    "open_model",
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
    source_kind: str  # "name", "variant", "directory", "file" or "hub"
    load_seconds: float
    details: dict[str, Any] = field(default_factory=dict)


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

    The model is returned in train mode, in every form (fresh, pretrained,
    fine-tuned), as a constructed ``nn.Module`` is: it is built to be trained
    or fine-tuned. :func:`load_model` returns eval mode: it loads to use. Call
    ``model.eval()`` before inference (:func:`predict` does it for you).

    Raises:
        ModelNotFoundError, AmbiguousModelError: the name does not resolve.
        ConfigError: an override is unknown or has the wrong type.

    >>> model = create_model("simple_rnn", cell="gru", seed=0)   # doctest: +SKIP
    >>> model = create_model("simple_cnn", pretrained=True)      # doctest: +SKIP
    >>> model = create_model("simple_cnn.digits", num_classes=5) # doctest: +SKIP
    """
    if mesh is not None and pretrained is not False:
        raise UsageError(
            "create_model(pretrained=...) does not take mesh=",
            hint="load the weights sharded: load_model('NAME.TAG', mesh=mesh)",
        )
    return open_model(
        name,
        pretrained=pretrained,
        overrides=overrides,
        seed=seed,
        device=device,
        dtype=dtype,
        mesh=mesh,
        parallel=parallel,
        names_only=True,
    ).model.train()


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
    or a string like ``"500MB"``) splits large weights into shards.

    Metadata travels with the weights: a model loaded with a ``weights`` section
    (a variant, or a saved model that has one) is saved with it, its labels,
    preprocessing, license, dataset and metrics, so ``zoo predict`` on the copy
    works as on the original. Once its weights changed (a new head, training,
    any tensor replaced) the metrics are dropped, being measured on other
    weights, and ``base`` records the variant it came from with its pinned
    sha256 (see :mod:`zoo_core.pretrained.carry`). ``weights`` is merged over
    that (``None`` removes a key): new ``labels`` after fine-tuning, new
    ``metrics``, a ``tag``; for a model without one it makes the directory a
    weights variant (see :mod:`zoo_core.pretrained.metadata`). Checked before
    anything is written. A saved ``weights`` section also gets the model's
    ``cost`` (parameters and FLOPs per sample), counted here so that listings
    need no torch.
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
    >>> tuned = create_model("simple_cnn.digits", num_classes=2)       # doctest: +SKIP
    >>> save_model(tuned, "odd-even/", weights={"labels": ["even", "odd"]})  # doctest: +SKIP
    """
    model = unwrap(model)  # torch.compile's, DDP's and DataParallel's wrappers: save what's inside
    arch, config = identify(model)
    record = model_record(arch, config)
    if isinstance(weights, dict):
        weights = {k: v for k, v in weights.items() if k != "cost"}  # zoo counts it
    section = section_to_save(model, weights)
    if section is not None:
        # Counted by zoo, never taken from the caller or an older file.
        section = {k: v for k, v in section.items() if k != "cost"}
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
    overrides: dict[str, Any] | None = None,
    **config: Any,
) -> nn.Module:
    """Load a model from a saved directory, a lone ``.safetensors`` file, or a model name.

    A source that exists on disk is a path; anything else is a model name
    (freshly initialised, as :func:`create_model`). Saved weights are read
    straight into a model built on the ``meta`` device, so no random
    initialisation is paid for and no second copy is made. Loaded models are
    returned in ``eval()`` mode, whatever the source (a model name too);
    :func:`create_model` returns train mode.

    ``arch`` names the architecture of weights saved by other tools (a
    ``PyTorchModelHubMixin.save_pretrained`` or ``save_torch_model`` directory,
    a bare ``.safetensors`` file); config fields are taken from their
    ``config.json`` where the names match. ``progress(done, total)`` counts the
    bytes of saved weights read. Config fields (``overrides={"n_layer": 4}`` or
    ``n_layer=4``, as ``--set`` on the command line) complete or replace those
    found with ``arch=`` weights, and configure a model built by name.

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
    >>> model = load_model("gpt.safetensors", arch="gpt", n_layer=4)  # doctest: +SKIP
    """
    clash = sorted(set(config) & set(overrides or {}))
    if clash:
        raise UsageError(f"config field(s) {', '.join(clash)} given twice (overrides= and keyword)")
    return open_model(
        source,
        device=device,
        dtype=dtype,
        arch=arch,
        mesh=mesh,
        parallel=parallel,
        progress=progress,
        overrides={**(overrides or {}), **config} or None,
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
    pretrained: bool | str = False,
    progress: ProgressCallback | None = None,
    mesh: DeviceMesh | None = None,
    parallel: str = "fsdp",
    names_only: bool = False,
) -> LoadedModel:
    """:func:`load_model` with provenance, and config overrides for model names.

    The source is resolved once (:func:`zoo_core.sources.resolve.resolve`);
    everything below reads, builds and places from what it opened. With
    ``arch``, ``source`` is a path to weights saved by another tool, and
    ``overrides`` complete or replace the config fields found next to them;
    ``pretrained`` is as in :func:`create_model`; ``names_only`` takes ``source``
    as a model name or ``NAME.TAG``, never a path. ``progress(done, total)``
    counts the bytes of saved weights read (or mapped).
    ``details["memory_mapped"]`` says whether the weights' pages are read only
    when first used (a plain CPU load), after ``load_seconds`` has been taken;
    ``details["realigned"]`` names tensors copied because another tool's file
    placed them off their element size. The model is in eval mode (as
    :func:`load_model` returns it; :func:`create_model` switches to train).
    """
    started = time.perf_counter()

    def find() -> Source:
        found = resolve(
            source,
            overrides=overrides,
            from_strings=from_strings,
            seed=seed,
            arch=arch,
            pretrained=pretrained,
            names_only=names_only,
        )
        if mesh is not None and found.finetuning:
            found.close()
            raise UsageError(
                f"{found.display}: config overrides of a weights variant are not "
                "supported with mesh=",
                hint="load the variant sharded without overrides, or without mesh= to fine-tune",
            )
        return found

    # On a mesh, a rank that cannot resolve the source fails every rank (no hang), and the
    # ranks agree on one snapshot, checked, before any of them reads (see agree_on_source).
    with distributed.agreement(mesh) if mesh is not None else contextlib.nullcontext():
        target_device = parse_device(device)
        target_dtype = parse_dtype(dtype)
    source_found = find() if mesh is None else agree_on_source(mesh, find)
    with source_found as found:
        entry = found.arch.entry
        assert entry is not None
        details = found.details()
        info = found.weights_info
        base = _base_of(found)
        renewed: list[str] = []
        if mesh is not None:
            model, sharded = distributed.open_sharded(
                found.arch, found.config, found.saved, mesh, parallel, seed, target_device,
                target_dtype,
            )  # fmt: skip
            details.update(sharded)
        elif found.saved is None:
            model = found.arch.build(
                found.config, seed=seed, device=target_device, dtype=target_dtype
            )
        elif found.finetuning:
            assert info is not None and found.variant is not None
            head = info.get("head") or []
            model, renewed = load_finetuned(
                found.arch, found.config, found.saved, head,  # type: ignore[arg-type]
                seed=seed, device=target_device, dtype=target_dtype,
            )  # fmt: skip
            if renewed:
                warnings.warn(
                    f"{found.display}: re-initialised {', '.join(renewed)} for the new "
                    "config; every other tensor is pretrained",
                    PretrainedHeadWarning,
                    stacklevel=4,
                )
                # The labels named the old classes, the metrics measured the old head.
                info = {k: v for k, v in info.items() if k not in ("labels", "metrics", "cost")}
                info.update(reinitialised=renewed)
                if base is not None:
                    info.setdefault("base", base)
                details["reinitialised"] = renewed
        else:
            model = load_weights(
                found.arch, found.config, found.saved,
                device=target_device, dtype=target_dtype, progress=progress,
            )  # fmt: skip
            details["memory_mapped"] = reads_on_first_use(target_device, target_dtype)
        model.eval()  # one rule: what open_model gives is ready to use; create_model trains
        if found.saved is not None:
            remember(model, info, base=base, derived=bool(renewed))
            if found.saved.realigned:
                details["realigned"] = sorted(found.saved.realigned)
    seconds = time.perf_counter() - started
    return LoadedModel(model, entry, found.display, found.kind, seconds, details)


def _base_of(found: Source) -> dict[str, str] | None:
    """Where loaded weights come from, pinned: what a save of them once changed records."""
    if found.variant is not None:
        spec = found.variant.spec
        return {
            "name": found.variant.display_name,
            "publisher": found.variant.publisher.name,
            "sha256": spec.sha256,
            "source": spec.source,
        }
    if found.kind == "hub" and found.saved is not None and found.saved.config_bytes:
        # The Hub commit's config.json pins every weight file, as a variant's pin does.
        digest = hashlib.sha256(found.saved.config_bytes).hexdigest()
        return {"name": found.display, "sha256": digest}
    carried = (found.weights_info or {}).get("base")
    return dict(carried) if isinstance(carried, dict) else None


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
    """Upload a model (a ZooModel, a directory saved by ``save_model``, ``NAME.TAG``) in one commit.

    The commit holds ``config.json``, the weights (single or sharded with the
    index) and a model card. A variant ``NAME.TAG`` is uploaded as it is
    installed (its pinned files, byte for byte); a model is saved first, with
    the metadata it carries (see :func:`save_model`), which the card repeats:
    license, labels, metrics as ``model-index`` where they still apply. Weight
    files of an earlier push that the new one does not have are deleted in the
    same commit. The card is generated unless
    the directory has its own ``README.md`` or the repository already has one
    (``overwrite_card=True`` regenerates it). ``revision`` names a branch,
    created from ``main`` if missing. The token comes from ``token``, else
    ``HF_TOKEN`` or the saved login; it is never written anywhere.

    huggingface_hub commits atomically: a push that fails leaves the repository
    as it was.

    Returns:
        huggingface_hub's ``CommitInfo`` (``oid`` is the new commit's sha), with
        ``unchanged`` True when the repository already held these very files:
        then no commit is made and ``oid`` is the commit it was at.

    Raises:
        HubError: no permission, not found, network down, a time limit.
        UsageError: the repository id or the revision is malformed.
        WeightsError: the directory is not a saved zoo model or its files do not
            match their recorded hashes.

    >>> zoo_core.push_to_hub(model, "me/cnn-demo", license="mit")          # doctest: +SKIP
    """
    remember_secret(token)  # never shown, even when a server quotes it back
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
            with resolve(directory) as found:
                return push_saved(found.saved, repo_id, revision, **options)  # type: ignore[arg-type]
    text = os.fspath(model_or_dir)
    path = Path(os.path.expanduser(text))
    if not path.is_dir() and not is_variant_name(text) and not text.startswith("hf://"):
        raise WeightsError(
            f"{path} is not a saved model directory",
            hint="push a directory written by 'zoo save' or zoo_core.save_model, a weights "
            "variant NAME.TAG, or a ZooModel",
        )
    for _ in range(_PUSH_ATTEMPTS):
        with resolve(model_or_dir) as found:
            assert found.saved is not None
            try:
                return push_saved(found.saved, repo_id, revision, **options)
            except Vanished:
                continue  # a save replaced the directory before the push opened all of it
    raise WeightsError(
        f"{path} was replaced {_PUSH_ATTEMPTS} times while zoo opened it to push",
        hint="wait until the saves into it finish, then push again",
    )


# How often a push opens the directory again because saves kept replacing it.
_PUSH_ATTEMPTS = 20


def predict(
    model_or_source: nn.Module | str | os.PathLike[str],
    inputs: Any,
    *,
    top_k: int = 5,
    device: str | torch.device | None = None,
    pretrained: bool | str = True,
) -> Prediction:
    """Run a model on raw inputs and say what it predicts, never from random weights by chance.

    Args:
        model_or_source: a loaded model, or anything :func:`~zoo_core.load_model`
            takes (``"simple_cnn.digits"``, a directory, ``hf://...``). A bare
            model name (``"simple_cnn"``) means its default weights variant, as
            ``create_model(name, pretrained=True)`` does; ``result.variant``
            says which.
        inputs: an array or tensor with a leading batch dimension, raw values as
            the data set stores them; or a list of file paths (``.npy`` batches,
            image files for variants that declare image preprocessing).
        top_k: how many labels to report per input for a classifier with labels.
        pretrained: for a bare model name, which variant: ``True`` the default,
            a tag another; ``False`` asks for freshly initialised (random)
            weights on purpose (``result.random_weights`` is then true).

    The inputs go through the weights' recorded preprocessing (the
    :class:`~zoo_core.pretrained.transforms.Transforms` that
    ``get_pretrained(NAME).transforms()`` returns), and the model runs in eval
    mode (a model passed in is put back in its mode afterwards).

    Raises:
        ModelNotFoundError: a bare model name without pretrained weights (and
            ``pretrained`` not ``False``), or no such model.
        UsageError: inputs of the wrong size or kind, or ``top_k`` below 1.

    >>> zoo_core.predict("simple_cnn", raw_digits).variant                 # doctest: +SKIP
    'zoo-cnn:simple_cnn.digits'
    """
    check_top_k(top_k)
    if isinstance(model_or_source, nn.Module):
        return predict_with(model_or_source, inputs, top_k=top_k)
    weights = _weights_for_name(model_or_source, pretrained)
    loaded = open_model(model_or_source, device=device, pretrained=weights)
    result = predict_with(loaded.model, inputs, top_k=top_k)
    result.source = loaded.source
    result.architecture = loaded.entry.name
    result.variant = loaded.details.get("variant")
    result.random_weights = loaded.source_kind == "name"
    return result


def _weights_for_name(source: str | os.PathLike[str], pretrained: bool | str) -> bool | str:
    """``pretrained`` for :func:`open_model`: the variant a bare model name predicts with."""
    if source_kind(source) != "name" or pretrained is False:
        return False
    entry = get_registry().resolve(os.fspath(source))
    if not get_variants().for_model(entry):
        raise ModelNotFoundError(
            f"{entry.display_name} has no pretrained weights, so a prediction would come "
            "from random weights",
            hint="predict with trained weights: a variant NAME.TAG ('zoo list --pretrained'), "
            "a saved model or hf://...; random weights only on purpose: pretrained=False "
            "(zoo predict --random)",
        )
    return pretrained
