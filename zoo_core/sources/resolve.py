"""Resolving a source, once: whatever names a model becomes one :class:`Source`.

A model name, ``NAME.TAG``, a saved directory, a lone ``.safetensors`` file,
``hf://owner/repo[@revision]`` or another tool's weights with ``arch=`` are all
resolved here, in one place, into the architecture, the config and (for
anything with weights) the opened snapshot: the record, the tensor map, the
open files and the hashes they were checked against. Loading, sharded
loading, ``zoo info``, ``zoo verify``, ``zoo push`` and ``zoo predict`` read,
build and place from that object; nothing below asks again what kind of
source it was.

>>> with resolve("simple_cnn.digits") as source:                     # doctest: +SKIP
...     source.kind, source.arch.name, source.saved.files
('variant', 'simple_cnn', [PosixPath('.../digits/model.safetensors')])
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from zoo_core.errors import ConfigError, ModelNotFoundError, SourceNotFoundError, UsageError
from zoo_core.models.build import Architecture
from zoo_core.models.config import config_to_dict
from zoo_core.plugins.registry import get_registry
from zoo_core.pretrained.catalogue import Variant, get_variants, is_variant_name
from zoo_core.pretrained.metadata import check_weights_section
from zoo_core.sources.hub import open_hub_saved
from zoo_core.sources.variant import locate
from zoo_core.storage.atomic import try_recover
from zoo_core.storage.weights import SavedModel, read_saved

__all__ = [
    "Source",
    "SourceDescription",
    "describe_source",
    "looks_like_path",
    "resolve",
    "saved_architecture",
    "source_kind",
]

#: The kinds of :attr:`Source.kind`.
KINDS = ("name", "variant", "directory", "file", "hub")


@dataclass
class Source:
    """A source resolved once: what every command reads, builds and places from.

    ``saved`` is the opened snapshot (None for a bare model name, and for a
    description without weights); ``config`` is the config to build, the
    recorded one for saved weights, with ``overrides`` applied where they are
    allowed (names, variants being fine-tuned, foreign weights).
    ``weights_info`` is the checked ``weights`` section, ``provenance`` what
    ``zoo load --json`` reports of the origin (Hub commit, variant).
    Close it (or use ``with``) once the tensors are read or mapped.
    """

    text: str
    kind: str
    arch: Architecture
    config: Any
    saved: SavedModel | None = None
    variant: Variant | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    weights_info: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """How commands name it: the variant, the Hub source pinned to its commit, the path."""
        if self.variant is not None:
            return self.variant.display_name
        if self.saved is not None:
            return self.saved.source
        return self.text

    @property
    def finetuning(self) -> bool:
        """Whether pretrained weights are loaded into a changed config (a new head, say)."""
        return self.variant is not None and bool(self.overrides)

    def details(self) -> dict[str, Any]:
        """The facts ``zoo load --json`` reports about this source (files and provenance)."""
        out: dict[str, Any] = {}
        if self.saved is not None:
            out["files"] = [str(f) for f in self.saved.files]
            out.update(self.saved.provenance())
        out.update(self.provenance)
        return out

    def close(self) -> None:
        """Close the snapshot's files (tensors already read or mapped stay valid)."""
        if self.saved is not None:
            self.saved.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def looks_like_path(source: str) -> bool:
    """Whether a string that names nothing on disk was still meant as a path (a typo, say)."""
    return (
        "/" in source
        or os.sep in source
        or source.startswith((".", "~"))
        or source.endswith((".safetensors", ".json"))
    )


def source_kind(source: str | os.PathLike[str], *, recover: bool = False) -> str:
    """What ``source`` names, decided as :func:`resolve` decides it, before anything is read.

    ``"variant"`` (``NAME.TAG``), ``"hub"`` (``hf://``), ``"path"`` (it exists
    on disk), ``"missing"`` (meant as a path, absent) or ``"name"`` (a model
    name, perhaps mistyped). ``recover`` first puts back a model an
    interrupted save left aside (what a load does).
    """
    text = os.fspath(source)
    if is_variant_name(text):
        return "variant"
    if text.startswith("hf://"):
        return "hub"
    path = Path(os.path.expanduser(text))
    if recover:
        try_recover(Path(os.path.abspath(path)))
    if path.exists():
        return "path"
    return "missing" if looks_like_path(text) else "name"


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


def resolve(
    source: str | os.PathLike[str],
    *,
    overrides: dict[str, Any] | None = None,
    from_strings: bool = False,
    seed: int | None = None,
    arch: str | None = None,
    pretrained: bool | str = False,
    weights: bool = True,
    names_only: bool = False,
    card: bool = False,
) -> Source:
    """Resolve ``source`` into a :class:`Source`, checking what can be checked before any read.

    A source that exists on disk is a path (as in ``from_pretrained``); else
    ``hf://...``, a weights variant ``NAME.TAG`` (or a model name with
    ``pretrained`` True or a tag), or a model name. ``arch`` names the
    architecture of another tool's weights at a local path. Saved models take
    their config from the file: ``overrides`` and ``seed`` are refused for
    them before anything is read or downloaded. With ``weights=False`` only
    what describes the model is read (for ``hf://``, only ``config.json`` is
    downloaded), and ``saved`` may hold no tensor map. With ``names_only``
    (``create_model``), ``source`` is a model name or ``NAME.TAG``, never a path;
    ``card=True`` has an ``hf://`` source read its model card's metadata too
    (``source.saved.card``).

    Raises:
        SourceNotFoundError: a path-like source does not exist.
        ModelNotFoundError, AmbiguousModelError: a name does not resolve.
        ConfigError: overrides or a seed for a saved model, or bad overrides.
        WeightsError, HubError: the files are not a usable zoo model.
        PluginNotInstalledError: the architecture's plugin is not installed.
    """
    text = os.fspath(source)
    overrides = dict(overrides or {})
    if arch is not None:
        return _foreign(text, arch, overrides, from_strings)
    if pretrained is not False:
        return _variant(text, pretrained, overrides, from_strings, weights)
    kind = "name" if names_only and not is_variant_name(text) else source_kind(text, recover=True)
    if kind == "variant":
        return _variant(text, pretrained, overrides, from_strings, weights)
    if names_only:
        return _named(text, overrides, from_strings)
    if kind == "hub":
        _refuse_for_saved(text, "the Hub", overrides, seed)
        return _saved(text, "hub", open_hub_saved(text, weights=weights, card=card))
    if kind == "path":
        _refuse_for_saved(text, "the file", overrides, seed)
        saved = read_saved(Path(os.path.expanduser(text)))
        return _saved(text, saved.kind, saved)
    if kind == "missing":
        raise SourceNotFoundError(
            f"no such file or directory: {text}",
            hint="give a saved model directory, a .safetensors file, or a model name",
        )
    try:
        return _named(text, overrides, from_strings)
    except ModelNotFoundError as err:
        # "cnnn" may be a mistyped directory as much as a mistyped model name.
        raise ModelNotFoundError(
            f"{err.message}, and no file or directory {text!r} exists", hint=err.hint
        ) from None


def _named(text: str, overrides: dict[str, Any], from_strings: bool) -> Source:
    architecture = Architecture.named(text)
    config = architecture.config(overrides, from_strings=from_strings)
    return Source(text, "name", architecture, config, overrides=overrides)


class SourceDescription(NamedTuple):
    """What :func:`describe_source` finds: architecture, config, where it came from, for
    ``hf://`` the model card's metadata (None elsewhere or when unreadable), and the bytes
    of its weight files as ``config.json`` records them (None for a model name)."""

    architecture: Architecture
    config: Any
    origin: str
    card: dict[str, Any] | None = None
    file_bytes: int | None = None


def _file_bytes(saved: SavedModel | None) -> int | None:
    if saved is None:
        return None
    files = saved.record.get("files")
    if isinstance(files, dict):
        sizes = [f.get("size") for f in files.values() if isinstance(f, dict)]
        if sizes and all(isinstance(n, int) and not isinstance(n, bool) for n in sizes):
            return sum(sizes)
    return sum(f.stat().st_size for f in saved.files if f.exists()) or None


def describe_source(
    source: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    *,
    from_strings: bool = True,
) -> SourceDescription:
    """The architecture and config a source stands for, without building or reading weights.

    ``origin`` is the variant's source, the Hub source pinned to its commit, the
    path, or the name.
    """
    options = {"overrides": overrides, "from_strings": from_strings, "weights": False}
    with resolve(source, **options, card=True) as found:
        if found.variant is not None:
            return SourceDescription(found.arch, found.config, found.variant.spec.source)
        card = getattr(found.saved, "card", None)
        size = _file_bytes(found.saved)
        return SourceDescription(found.arch, found.config, found.display, card, size)


def _refuse_for_saved(text: str, where: str, overrides: dict[str, Any], seed: int | None) -> None:
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


def _saved(text: str, kind: str, saved: SavedModel) -> Source:
    try:
        architecture, config = saved_architecture(saved)
        section = saved.record.get("weights")
        info = None if section is None else check_weights_section(section, str(saved.path))
    except BaseException:
        saved.close()
        raise
    return Source(text, kind, architecture, config, saved=saved, weights_info=info)


def _foreign(text: str, name: str, overrides: dict[str, Any], from_strings: bool) -> Source:
    """Weights from another tool, read as the architecture ``name``."""
    path = Path(os.path.expanduser(text))
    if not path.exists():
        raise SourceNotFoundError(
            f"no such file or directory: {text}",
            hint="--arch names the architecture of a local directory or .safetensors file",
        )
    architecture = Architecture.named(name)
    saved = read_saved(path, foreign=True)
    try:
        names = {f.name for f in dataclasses.fields(architecture.Config)}
        found = {k: v for k, v in saved.record["config"].items() if k in names}
        base = architecture.config_from_file(found, path)
        config = architecture.config(overrides, base=base, from_strings=from_strings)
    except BaseException:
        saved.close()
        raise
    saved.record.update(architecture=architecture.name, config=config_to_dict(config))
    return Source(text, saved.kind, architecture, config, saved=saved, overrides=overrides)


def _variant(
    text: str,
    pretrained: bool | str,
    overrides: dict[str, Any],
    from_strings: bool,
    weights: bool,
) -> Source:
    """A weights variant: ``NAME.TAG``, or model ``NAME`` with ``pretrained`` True or a tag."""
    variants = get_variants()
    if is_variant_name(text):
        if pretrained not in (True, False):
            raise UsageError(
                f"{text} already names a weights variant; pretrained={pretrained!r} would "
                "name another",
                hint="give NAME.TAG, or NAME with pretrained=TAG",
            )
        variant = variants.resolve(text)
    else:
        variant = variants.default_for(get_registry().resolve(text), pretrained)
    located = locate(variant, weights=weights)
    saved = located.saved
    try:
        architecture = Architecture.of(located.entry)
        # The config comes from the bytes whose hash was checked, not from a second read.
        base = architecture.config_from_file(located.record.get("config", {}), located.path)
        config = architecture.config(overrides, base=base, from_strings=from_strings)
    except BaseException:
        if saved is not None:
            saved.close()
        raise
    return Source(
        text,
        "variant",
        architecture,
        config,
        saved=saved,
        variant=variant,
        overrides=overrides,
        weights_info=dict(located.section),
        provenance=dict(located.provenance),
    )
