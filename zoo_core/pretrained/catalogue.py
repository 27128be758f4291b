"""Weights variants: discovery and ``NAME.TAG`` resolution (the catalogue).

Plugins announce variants with the ``zoo_register_weights`` hook (see
:class:`~zoo_core.WeightsSpec`). Like model names, a ``NAME.TAG`` published by
two distributions is a conflict that is reported, never settled by load order:
the qualified ``PUBLISHER:NAME.TAG`` picks one. A hook that raises or returns
garbage is reported and its variants are left out; the plugin's models still work.

Finding and checking a variant's files (package data or the Hub) is
:mod:`zoo_core.sources.variant`'s job. Nothing here imports torch.

>>> from zoo_core.pretrained.catalogue import get_variants
>>> get_variants().resolve("simple_cnn.digits").spec.source        # doctest: +SKIP
'package://zoo_cnn/weights/digits'
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from zoo_core.errors import (
    AmbiguousModelError,
    ModelNotFoundError,
    PluginError,
    ZooError,
)
from zoo_core.plugins.contract import WeightsSpec, check_capabilities
from zoo_core.plugins.registry import (
    ModelEntry,
    PluginInfo,
    Registry,
    ZooPluginWarning,
    canonical_name,
    get_registry,
)
from zoo_core.plugins.registry import list_models as list_architectures
from zoo_core.pretrained.metadata import plain_text

__all__ = [
    "PACKAGE_PREFIX",
    "Variant",
    "VariantRegistry",
    "get_variants",
    "is_variant_name",
    "list_models",
    "reset_variants",
    "split_variant_name",
    "variant_supports",
]

PACKAGE_PREFIX = "package://"


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


def list_models(
    pattern: str | None = None, *, pretrained: bool = False, supports: Sequence[str] = ()
) -> list[str]:
    """Names of the installed models, sorted, optionally filtered by an fnmatch ``pattern``.

    A name registered by two plugins is listed once per plugin, qualified as
    ``DIST:NAME``; every other name is listed bare. With ``pretrained=True``,
    the weights variants instead, as ``NAME.TAG`` (qualified
    ``PUBLISHER:NAME.TAG`` where two publishers offer one): ``pattern``
    matches the variant's name, its qualified name or its model's name, so
    ``list_models("simple_cnn", pretrained=True)`` lists that model's variants
    (timm's convention). ``supports`` keeps the models (or variants) that
    declare every capability named (see :class:`~zoo_core.ModelSpec`; a
    variant's own ``supports``, else its model's). Nothing here imports torch.

    >>> import zoo_core
    >>> zoo_core.list_models("simple_*")                        # doctest: +SKIP
    ['simple_cnn', 'simple_rnn']
    >>> zoo_core.list_models("simple_*", pretrained=True)       # doctest: +SKIP
    ['simple_cnn.digits', 'simple_rnn.digits']
    >>> zoo_core.list_models(supports=["export", "compile"])    # doctest: +SKIP
    ['linear_regression', 'simple_cnn', 'tiny_transformer']
    """
    if not pretrained:
        return list_architectures(pattern, supports=supports)
    wanted = check_capabilities(list(supports), "list_models")
    found = [
        v
        for v in get_variants().find()
        if pattern is None
        or fnmatch.fnmatchcase(v.name, pattern)
        or fnmatch.fnmatchcase(v.qualified_name, pattern)
        or fnmatch.fnmatchcase(v.spec.model_name, pattern)
        or fnmatch.fnmatchcase(v.spec.model, pattern)
    ]
    if wanted:
        found = [v for v in found if set(wanted) <= set(variant_supports(v))]
    return sorted({v.display_name for v in found})


def variant_supports(variant: Variant) -> list[str]:
    """The capabilities of a variant: its own ``WeightsSpec.supports``, else its model's."""
    if variant.spec.supports is not None:
        return list(variant.spec.supports)
    try:
        return list(variant.model_entry().spec.supports)
    except ZooError:  # the architecture's plugin is missing: nothing is known to work
        return []
