"""A weights variant as a source: its files found and checked against the publisher's pin.

Trust: a spec pins the sha256 of the variant's ``config.json``, which records
the sha256 of every weight file. :func:`locate` checks the first before the
record is used and the others before any tensor is read, for package data as
much as for the Hub, and evicts a bad Hub copy from the cache.

Nothing here imports torch: ``zoo list --pretrained`` reads only JSON and
safetensors headers (:func:`describe_variant`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_core.errors import HubError, WeightsError, ZooError
from zoo_core.plugins.registry import ModelEntry, Registry, get_registry
from zoo_core.pretrained.catalogue import (
    PACKAGE_PREFIX,
    Variant,
    get_variants,
    is_variant_name,
    variant_supports,
)
from zoo_core.pretrained.info import PretrainedInfo
from zoo_core.pretrained.metadata import check_weights_section, headline_metric, plain_text

if TYPE_CHECKING:
    from zoo_core.storage.weights import SavedModel

__all__ = [
    "LocatedVariant",
    "describe_variant",
    "get_pretrained",
    "locate",
    "package_directory",
]

_CONFIG = "config.json"
_MAX_CONFIG_BYTES = 16 * 1024 * 1024


# -- finding a variant's files ----------------------------------------------------------------


def package_directory(source: str) -> Path:
    """The directory a ``package://PACKAGE/PATH`` source names, without importing the package.

    Raises:
        WeightsError: the package is not installed or the path is not a directory in it.
    """
    package, _, relative = source.removeprefix(PACKAGE_PREFIX).partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        candidate = Path(root, *relative.split("/"))
        if candidate.is_dir():
            return candidate
    raise WeightsError(
        f"{source} is missing: the package {package} has no directory {relative}",
        hint=f"reinstall the distribution that provides {package}",
    )


def _sha256(path: Path) -> tuple[bytes, str]:
    """The bytes of a small file and their sha256 (read once: what is hashed is what is used)."""
    try:
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise WeightsError(f"{path} is too large to be a variant's config.json")
        data = path.read_bytes()
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None
    return data, hashlib.sha256(data).hexdigest()


def _record_from(data: bytes, where: Path) -> dict[str, Any]:
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WeightsError(f"{where} is not valid JSON") from None
    if not isinstance(record, dict):
        raise WeightsError(f"{where} must hold a JSON object")
    return record


@dataclass
class LocatedVariant:
    """A variant's checked directory, its ``config.json`` record and, with weights, the snapshot.

    ``saved`` is the directory opened once (see :mod:`zoo_core.storage.snapshot`):
    the pin and every file's hash were checked on the very files it holds open,
    so what is loaded is what was checked.
    """

    variant: Variant
    entry: ModelEntry
    path: Path
    record: dict[str, Any]
    section: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    saved: SavedModel | None = None


def locate(
    variant: Variant, *, weights: bool = True, registry: Registry | None = None
) -> LocatedVariant:
    """Find a variant's directory and check it: config.json pin, record, every file's hash.

    The architecture's plugin is checked first, before any download. Hub
    variants come through huggingface_hub's cache (``HF_HUB_OFFLINE=1`` works
    once cached); a Hub copy whose files do not match is evicted. With
    ``weights=False`` only ``config.json`` is fetched and checked (what
    ``zoo info`` needs).

    Raises:
        PluginError: the architecture's plugin is missing.
        WeightsError: a shipped variant does not match its pin.
        HubError: a Hub variant cannot be fetched, or its copy does not match its pin.
    """
    entry = variant.model_entry(registry)
    source = variant.spec.source
    on_hub = source.startswith("hf://")
    provenance: dict[str, Any] = {"variant": variant.qualified_name, "variant_source": source}
    if on_hub:
        from zoo_core.hub.download import resolve_hf_source

        # config.json alone first: nothing else is fetched for a copy that fails its pin.
        snapshot = resolve_hf_source(source, weights=False, check_plugin=False)
        directory = snapshot.path
        _check_pin(variant, directory / _CONFIG, evict=True)
        if weights:
            snapshot = resolve_hf_source(source, weights=True, check_plugin=False)
        provenance.update(repo_id=snapshot.repo_id, commit=snapshot.commit)
    else:
        directory = package_directory(source)
    where = f"{variant.display_name} ({source})"
    if not weights:
        record = _check_pin(variant, directory / _CONFIG, evict=on_hub)
        section = _check_record(variant, entry, record, where)
        return LocatedVariant(variant, entry, directory, record, section, provenance)
    from zoo_core.storage.weights import read_saved  # torch: describing a variant needs none

    saved = read_saved(directory)
    try:
        config = directory / _CONFIG
        record = _check_pinned(variant, saved.config_bytes or b"", config, evict=on_hub)
        section = _check_record(variant, entry, record, where)
        _check_files(saved, record, where, evict=on_hub)
    except BaseException:
        saved.close()
        raise
    return LocatedVariant(variant, entry, directory, record, section, provenance, saved)


def _evict(path: Path) -> None:
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)


def _check_pin(variant: Variant, config: Path, *, evict: bool) -> dict[str, Any]:
    data, _ = _sha256(config)
    return _check_pinned(variant, data, config, evict=evict)


def _check_pinned(variant: Variant, data: bytes, config: Path, *, evict: bool) -> dict[str, Any]:
    """The record in ``data`` (config.json's bytes), once they match the publisher's pin."""
    if hashlib.sha256(data).hexdigest() != variant.spec.sha256:
        if evict:
            _evict(config)
        error = HubError if evict else WeightsError
        raise error(
            f"{variant.display_name}: {config} does not match the sha256 its publisher "
            f"({variant.publisher.name}) pinned; refusing to use it",
            hint="the files were changed or corrupted; "
            + ("the cached copy was removed, try again" if evict else "reinstall the plugin"),
        )
    return _record_from(data, config)


def _check_record(
    variant: Variant, entry: ModelEntry, record: dict[str, Any], where: str
) -> dict[str, Any]:
    if record.get("architecture") != entry.name:
        raise WeightsError(
            f"{where} holds {plain_text(str(record.get('architecture')), 80)!r} weights, "
            f"not {entry.name!r}"
        )
    section = check_weights_section(record.get("weights", {"tag": variant.spec.tag}), where)
    if section["tag"] != variant.spec.tag:
        raise WeightsError(f"{where}: its weights section is tagged {section['tag']!r}")
    if not isinstance(record.get("files"), dict) or not record["files"]:
        raise WeightsError(
            f"{where}: config.json records no file hashes, so the variant cannot be pinned",
            hint="save the variant with zoo_core.save_model, which records them",
        )
    return section


def _check_files(saved: SavedModel, record: dict[str, Any], where: str, *, evict: bool) -> None:
    problems = saved.check_hashes()
    if not problems:
        return
    directory = saved.path
    if evict:
        for name in record["files"]:
            if isinstance(name, str) and "/" not in name and (directory / name).exists():
                _evict(directory / name)
        _evict(directory / _CONFIG)
    text = "; ".join(f"{p.where} {p.message}" for p in problems[:3])
    error = HubError if evict else WeightsError
    raise error(
        f"{where}: refusing to use weights that do not match their config.json: {text}",
        hint="the cached copy was removed, try again"
        if evict
        else "the installed files were changed or corrupted; reinstall the plugin",
    )


# -- describing, without torch ----------------------------------------------------------------


def _cached_hub_config(source: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    repo, _, commit = source.removeprefix("hf://").partition("@")
    found = try_to_load_from_cache(repo, _CONFIG, revision=commit)
    return Path(found) if isinstance(found, str) else None


def _header_counts(directory: Path, files: dict[str, Any]) -> tuple[int, int]:
    """Tensor elements and tensor bytes of the weight files, from their headers alone."""
    from zoo_core.storage.safetensors_io import read_header

    count = size = 0
    for name in files:
        if not (isinstance(name, str) and name.endswith(".safetensors") and "/" not in name):
            continue
        header = read_header(directory / name)
        for info in header.tensors.values():
            numel = 1
            for dim in info.shape:
                numel *= dim
            count += numel
            size += info.end - info.begin
    return count, size


def describe_variant(variant: Variant) -> dict[str, Any]:
    """What ``zoo list --pretrained`` and ``zoo info`` show, read from files already on disk.

    A Hub variant not yet downloaded is described by its spec alone
    (``status: "not downloaded"``). Only the config pin is checked here;
    weight files are checked when the variant is loaded. ``bytes`` is the size
    of the weight files (headers included: what a download costs),
    ``tensor_bytes`` that of the tensors they hold (what a load takes in memory).
    """
    spec = variant.spec
    row: dict[str, Any] = {
        "name": variant.display_name,
        "qualified_name": variant.qualified_name,
        "model": spec.model,
        "tag": spec.tag,
        "publisher": variant.publisher.name,
        "default": spec.default,
        "source": spec.source,
        "sha256": spec.sha256,
        "summary": spec.summary,
        "status": "ok",
        "metric": None,
        "parameters": None,
        "tensor_bytes": None,
        "bytes": None,
        "license": None,
        "flops_per_sample": None,
        "supports": variant_supports(variant),
        "weights": None,
    }
    try:
        if spec.source.startswith("hf://"):
            config = _cached_hub_config(spec.source)
            if config is None:
                row["status"] = "not downloaded"
                return row
        else:
            config = package_directory(spec.source) / _CONFIG
        data, digest = _sha256(config)
        if digest != spec.sha256:
            row["status"] = "config.json does not match its pinned sha256"
            return row
        record = _record_from(data, config)
        section = check_weights_section(record.get("weights", {"tag": spec.tag}), str(config))
        files = record.get("files") if isinstance(record.get("files"), dict) else {}
        parameters, tensor_bytes = _header_counts(config.parent, files)
        row.update(
            metric=(section.get("metrics") or [None])[0],
            headline=headline_metric(section),
            parameters=parameters,
            tensor_bytes=tensor_bytes,
            bytes=sum(f.get("size", 0) for f in files.values() if isinstance(f, dict)),
            license=section.get("license"),
            flops_per_sample=(section.get("cost") or {}).get("flops_per_sample"),
            weights=section,
            config=record.get("config"),
        )
    except (ZooError, OSError) as err:
        row["status"] = plain_text(getattr(err, "message", None) or str(err), 200)
    return row


def get_pretrained(name: str) -> PretrainedInfo:
    """A weights variant's record: labels, metrics, parameters, sizes, license, preprocessing.

    ``name`` is a variant ``NAME.TAG`` (``PUBLISHER:NAME.TAG``), or a model
    name for its default variant (as ``create_model(name, pretrained=True)``).
    The record comes from the variant's ``config.json``, checked against its
    pin; a Hub variant's ``config.json`` is fetched (nothing else) if it is
    not cached yet. ``transforms()`` of the record is the preprocessing
    :func:`zoo_core.predict` applies. No torch is imported.

    Raises:
        ModelNotFoundError, AmbiguousModelError: no such variant (or model), or
            several and no default.
        PluginError: the architecture's plugin is not installed.
        WeightsError, HubError: the files do not match their pin.

    >>> info = zoo_core.get_pretrained("simple_cnn.digits")              # doctest: +SKIP
    >>> info.labels[7], info.metrics[0].value                             # doctest: +SKIP
    ('7', 0.9867)
    """
    variants = get_variants()
    if is_variant_name(name):
        variant = variants.resolve(name)
    else:
        variant = variants.default_for(get_registry().resolve(name))
    locate(variant, weights=False)  # the pin, checked (and a Hub config.json fetched)
    return PretrainedInfo.from_row(describe_variant(variant))
