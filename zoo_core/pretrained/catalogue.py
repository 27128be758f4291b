"""Weights variants: discovery, ``NAME.TAG`` resolution, and finding a variant's files safely.

Plugins announce variants with the ``zoo_register_weights`` hook (see
:class:`~zoo_core.WeightsSpec`). Like model names, a ``NAME.TAG`` published by
two distributions is a conflict that is reported, never settled by load order:
the qualified ``PUBLISHER:NAME.TAG`` picks one. A hook that raises or returns
garbage is reported and its variants are left out; the plugin's models still work.

Trust: a spec pins the sha256 of the variant's ``config.json``, which records
the sha256 of every weight file. :func:`locate` checks the first before the
record is used and the others before any tensor is read, for package data as
much as for the Hub, and evicts a bad Hub copy from the cache.

Nothing here imports torch: ``zoo list --pretrained`` reads only JSON and
safetensors headers.

>>> from zoo_core.pretrained.catalogue import get_variants
>>> get_variants().resolve("simple_cnn.digits").spec.source        # doctest: +SKIP
'package://zoo_cnn/weights/digits'
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import importlib.util
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_core.errors import (
    AmbiguousModelError,
    HubError,
    ModelNotFoundError,
    PluginError,
    WeightsError,
    ZooError,
)
from zoo_core.plugins.contract import WeightsSpec
from zoo_core.plugins.registry import (
    ModelEntry,
    PluginInfo,
    Registry,
    ZooPluginWarning,
    canonical_name,
    get_registry,
)
from zoo_core.pretrained.metadata import check_weights_section, headline_metric, plain_text

__all__ = [
    "PACKAGE_PREFIX",
    "LocatedVariant",
    "Variant",
    "VariantRegistry",
    "describe_variant",
    "get_variants",
    "is_variant_name",
    "locate",
    "package_directory",
    "reset_variants",
    "split_variant_name",
]

PACKAGE_PREFIX = "package://"
_CONFIG = "config.json"
_MAX_CONFIG_BYTES = 16 * 1024 * 1024


def split_variant_name(text: str) -> tuple[str, str, str] | None:
    """``[QUALIFIER:]NAME.TAG`` -> ``(qualifier, name, tag)``; None when ``text`` has no tag.

    Model names contain no dot, so the first dot after the qualifier starts the tag.

    >>> split_variant_name("zoo-cnn:simple_cnn.digits")
    ('zoo-cnn', 'simple_cnn', 'digits')
    >>> split_variant_name("simple_cnn") is None
    True
    """
    qualifier, _, rest = text.rpartition(":") if ":" in text else ("", "", text)
    name, dot, tag = rest.partition(".")
    if not dot or not name or not tag or "/" in text or os.sep in text:
        return None
    return qualifier, name, tag


def is_variant_name(text: str) -> bool:
    """Whether ``text`` names a weights variant (``NAME.TAG``) rather than a model or a path."""
    return not text.startswith(("hf://", ".", "~")) and split_variant_name(text) is not None


@dataclass(frozen=True)
class Variant:
    """A registered weights variant: its spec and the plugin that publishes it."""

    spec: WeightsSpec
    publisher: PluginInfo
    conflicted: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def qualified_name(self) -> str:
        return f"{self.publisher.name}:{self.spec.name}"

    @property
    def display_name(self) -> str:
        """The shortest name that resolves to this variant."""
        return self.qualified_name if self.conflicted else self.spec.name

    def model_entry(self, registry: Registry | None = None) -> ModelEntry:
        """The architecture the weights are for, or an error saying what to install.

        Checked before anything is read or downloaded.

        Raises:
            PluginError: the architecture's plugin is missing, broken or ambiguous.
        """
        registry = registry or get_registry()
        qualifier, sep, bare = self.spec.model.rpartition(":")
        if sep and registry.plugin(qualifier) is None:
            raise PluginError(
                f"{self.display_name} holds weights for {bare!r} from the plugin {qualifier}, "
                "which is not installed",
                hint=f"install it: pip install {qualifier}",
            )
        try:
            return registry.resolve(self.spec.model)
        except ModelNotFoundError:
            raise PluginError(
                f"{self.display_name} holds weights for the model {bare!r}, "
                "which no installed plugin provides",
                hint=f"install the plugin that provides {bare!r} (published by "
                f"{self.publisher.distribution or self.publisher.name})",
            ) from None
        except AmbiguousModelError as err:
            raise PluginError(
                f"{self.display_name} names the model {bare!r}, but {err.message}",
                hint=f"the publisher ({self.publisher.name}) should name it as DIST:{bare}",
            ) from None


@dataclass
class VariantRegistry:
    """Every announced variant, and what went wrong while collecting them."""

    variants: list[Variant] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def find(self, pattern: str | None = None) -> list[Variant]:
        """Variants whose ``NAME.TAG`` or qualified name matches the fnmatch ``pattern``, sorted."""
        found = [
            v
            for v in self.variants
            if pattern is None
            or fnmatch.fnmatchcase(v.name, pattern)
            or fnmatch.fnmatchcase(v.qualified_name, pattern)
        ]
        return sorted(found, key=lambda v: (v.name, v.qualified_name))

    def for_model(self, entry: ModelEntry) -> list[Variant]:
        """The variants whose weights are for ``entry``'s architecture."""
        return [v for v in self.find() if _is_for(v, entry)]

    def resolve(self, text: str) -> Variant:
        """The one variant ``[QUALIFIER:]NAME.TAG`` means.

        A qualifier may name the publisher or the architecture's plugin.

        Raises:
            ModelNotFoundError: no such variant (close names are suggested).
            AmbiguousModelError: two publishers offer it; qualify it.
        """
        parts = split_variant_name(text)
        if parts is None:
            raise ModelNotFoundError(f"{text!r} is not a NAME.TAG weights variant name")
        qualifier, name, tag = parts
        matches = [v for v in self.variants if v.spec.model_name == name and v.spec.tag == tag]
        if qualifier:
            wanted = canonical_name(qualifier)
            matches = [v for v in matches if wanted in _qualifiers(v)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            options = ", ".join(v.qualified_name for v in matches)
            raise AmbiguousModelError(
                f"{text!r} is published by {len(matches)} plugins: {options}",
                hint=f"use a qualified name, e.g. {matches[0].qualified_name}",
            )
        known = sorted({v.name for v in self.variants})
        close = difflib.get_close_matches(f"{name}.{tag}", known, n=3, cutoff=0.6)
        same_model = sorted(v.spec.tag for v in self.variants if v.spec.model_name == name)
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif same_model:
            hint = f"{name} has the variants: {', '.join(same_model)}"
        else:
            hint = "'zoo list --pretrained' shows the installed variants"
        raise ModelNotFoundError(f"no weights variant named {text!r}", hint=hint)

    def default_for(self, entry: ModelEntry, tag: str | bool = True) -> Variant:
        """The variant ``create_model(name, pretrained=tag)`` means for ``entry``.

        ``True`` picks the variant marked default (or the only one); a string picks by tag.

        Raises:
            ModelNotFoundError: the model has no such variant, or several and no default.
        """
        mine = self.for_model(entry)
        if isinstance(tag, str):
            chosen = [v for v in mine if v.spec.tag == tag]
            if len(chosen) == 1:
                return chosen[0]
            if chosen:
                return self.resolve(f"{entry.name}.{tag}")  # raises the ambiguity
            tags = ", ".join(sorted(v.spec.tag for v in mine)) or "none"
            raise ModelNotFoundError(
                f"{entry.display_name} has no weights variant {tag!r}",
                hint=f"its variants: {tags} ('zoo list --pretrained')",
            )
        defaults = [v for v in mine if v.spec.default] or (mine if len(mine) == 1 else [])
        if len(defaults) == 1:
            return defaults[0]
        if not mine:
            raise ModelNotFoundError(
                f"{entry.display_name} has no pretrained weights",
                hint="'zoo list --pretrained' shows the models that have some",
            )
        tags = ", ".join(sorted(v.display_name for v in (defaults or mine)))
        raise AmbiguousModelError(
            f"{entry.display_name} has several weights variants and "
            + ("several defaults" if defaults else "no default"),
            hint=f"choose one: {tags}",
        )


def _qualifiers(variant: Variant) -> set[str]:
    """What may qualify a variant's name: its publisher, or its architecture's plugin."""
    names = {canonical_name(variant.publisher.name)}
    if ":" in variant.spec.model:
        names.add(canonical_name(variant.spec.model.partition(":")[0]))
    return names


def _is_for(variant: Variant, entry: ModelEntry) -> bool:
    qualifier, sep, bare = variant.spec.model.rpartition(":")
    if bare != entry.name:
        return False
    if sep:
        return canonical_name(qualifier) == canonical_name(entry.plugin.name)
    return not entry.conflicted


def _collect(registry: Registry) -> VariantRegistry:
    found = VariantRegistry()
    manager = registry.manager
    if manager is None:
        return found
    for info in registry.plugins:
        if info.status != "ok":
            continue
        specs: list[WeightsSpec] = []
        try:
            for result in registry.hook_results(info, "zoo_register_weights"):
                if not isinstance(result, (list, tuple)) or not all(
                    isinstance(s, WeightsSpec) for s in result
                ):
                    raise PluginError(
                        f"zoo_register_weights returned {type(result).__name__}, "
                        "not a list of WeightsSpec"
                    )
                specs.extend(result)
            names = [s.name for s in specs]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise PluginError(f"registers the weights {', '.join(twice)} twice")
        except Exception as err:  # third-party code: report it, keep its models
            text = str(err).strip().splitlines()
            found.problems.append(
                f"zoo plugin {info.name}: weights hook is broken "
                f"({type(err).__name__}: {plain_text(text[0] if text else '', 200)})"
            )
            continue
        found.variants.extend(Variant(s, info) for s in specs)
    names = [v.name for v in found.variants]
    found.variants = [
        Variant(v.spec, v.publisher, conflicted=names.count(v.name) > 1) for v in found.variants
    ]
    for name in sorted({n for n in names if names.count(n) > 1}):
        who = ", ".join(v.publisher.name for v in found.variants if v.name == name)
        found.problems.append(
            f"weights variant {name} is published by several plugins ({who}); "
            "qualify it as PUBLISHER:NAME.TAG"
        )
    by_model: dict[str, list[Variant]] = {}
    for v in found.variants:
        if v.spec.default:
            by_model.setdefault(v.spec.model_name, []).append(v)
    for model, defaults in sorted(by_model.items()):
        if len(defaults) > 1:
            found.problems.append(
                f"{model} has several default weights variants "
                f"({', '.join(v.qualified_name for v in defaults)}); pretrained=True must choose"
            )
    return found


_VARIANTS: tuple[Registry, VariantRegistry] | None = None


def get_variants() -> VariantRegistry:
    """The variants of the current registry's plugins (collected once per registry).

    Problems (broken weights hooks, conflicts) are warned about once, as
    :class:`~zoo_core.plugins.registry.ZooPluginWarning`.
    """
    global _VARIANTS
    registry = get_registry()
    if _VARIANTS is None or _VARIANTS[0] is not registry:
        _VARIANTS = (registry, _collect(registry))
        for problem in _VARIANTS[1].problems:
            warnings.warn(problem, ZooPluginWarning, stacklevel=2)
    return _VARIANTS[1]


def reset_variants() -> None:
    """Forget the collected variants; the next use collects them again."""
    global _VARIANTS
    _VARIANTS = None


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
    """A variant's checked directory and its parsed ``config.json`` record."""

    variant: Variant
    entry: ModelEntry
    path: Path
    record: dict[str, Any]
    section: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)


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
    record = _check_pin(variant, directory / _CONFIG, evict=on_hub)
    where = f"{variant.display_name} ({source})"
    section = _check_record(variant, entry, record, where)
    if weights:
        _check_files(directory, record, where, evict=on_hub)
    return LocatedVariant(variant, entry, directory, record, section, provenance)


def _evict(path: Path) -> None:
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)


def _check_pin(variant: Variant, config: Path, *, evict: bool) -> dict[str, Any]:
    data, digest = _sha256(config)
    if digest != variant.spec.sha256:
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


def _check_files(directory: Path, record: dict[str, Any], where: str, *, evict: bool) -> None:
    from zoo_core.storage.hashes import check_file_hashes

    problems = check_file_hashes(directory, record["files"])
    if not problems:
        return
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


def _header_counts(directory: Path, files: dict[str, Any]) -> int | None:
    from zoo_core.storage.safetensors_io import read_header

    count = 0
    for name in files:
        if not (isinstance(name, str) and name.endswith(".safetensors") and "/" not in name):
            continue
        header = read_header(directory / name)
        for info in header.tensors.values():
            numel = 1
            for dim in info.shape:
                numel *= dim
            count += numel
    return count


def describe_variant(variant: Variant) -> dict[str, Any]:
    """What ``zoo list --pretrained`` and ``zoo info`` show, read from files already on disk.

    A Hub variant not yet downloaded is described by its spec alone
    (``status: "not downloaded"``). Only the config pin is checked here;
    weight files are checked when the variant is loaded.
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
        "bytes": None,
        "license": None,
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
        row.update(
            metric=(section.get("metrics") or [None])[0],
            headline=headline_metric(section),
            parameters=_header_counts(config.parent, files),
            bytes=sum(f.get("size", 0) for f in files.values() if isinstance(f, dict)),
            license=section.get("license"),
            weights=section,
            config=record.get("config"),
        )
    except (ZooError, OSError) as err:
        row["status"] = plain_text(getattr(err, "message", None) or str(err), 200)
    return row
