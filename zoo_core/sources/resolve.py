"""Resolving a source: a path, a lone file, ``hf://``, ``NAME.TAG``, foreign weights, a name.

>>> from zoo_core.sources.resolve import describe_source
>>> arch, config, where, card = describe_source("simple_cnn.digits")     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, NamedTuple

from zoo_core.errors import ConfigError, SourceNotFoundError, UsageError
from zoo_core.models.build import Architecture
from zoo_core.models.config import config_to_dict
from zoo_core.pretrained.catalogue import get_variants, is_variant_name
from zoo_core.sources.hub import open_hub_saved
from zoo_core.sources.variant import locate
from zoo_core.storage.atomic import try_recover
from zoo_core.storage.weights import SavedModel, read_saved

__all__ = [
    "SourceDescription",
    "describe_source",
    "find_saved",
    "foreign_saved",
    "looks_like_path",
    "saved_architecture",
    "variant_saved",
]


def looks_like_path(source: str) -> bool:
    return (
        "/" in source
        or os.sep in source
        or source.startswith((".", "~"))
        or source.endswith((".safetensors", ".json"))
    )


def find_saved(
    source: str | os.PathLike[str],
    overrides: dict[str, Any] | None,
    *,
    weights: bool = True,
    seed: int | None = None,
    card: bool = False,
) -> SavedModel | None:
    """The saved model at ``source`` if it is a path or ``hf://``; None if it is a model name.

    ``weights=False`` lets an ``hf://`` source fetch only its config;
    ``card=True`` has it read its model card's metadata too.
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
        return open_hub_saved(text, weights=weights, card=card)
    path = Path(os.path.expanduser(text))
    # An interrupted save may have left the model aside; put it back before looking.
    try_recover(Path(os.path.abspath(path)))
    if path.exists():
        refuse_overrides("the file")
        return read_saved(path)
    if looks_like_path(text):
        raise SourceNotFoundError(
            f"no such file or directory: {text}",
            hint="give a saved model directory, a .safetensors file, or a model name",
        )
    return None


def foreign_saved(
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


class SourceDescription(NamedTuple):
    """What :func:`describe_source` finds: architecture, config, where it came from, and for
    ``hf://`` the model card's metadata (None elsewhere or when unreadable)."""

    architecture: Architecture
    config: Any
    origin: str
    card: dict[str, Any] | None = None


def describe_source(
    source: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    *,
    from_strings: bool = True,
) -> SourceDescription:
    """The architecture and config a source stands for, without building or reading weights."""
    saved = find_saved(source, overrides, weights=False, card=True)
    if saved is not None:
        arch, config = saved_architecture(saved)
        return SourceDescription(arch, config, saved.source, getattr(saved, "card", None))
    if is_variant_name(os.fspath(source)):
        located = locate(get_variants().resolve(os.fspath(source)), weights=False)
        arch = Architecture.of(located.entry)
        base = arch.config_from_file(located.record.get("config", {}), located.path)
        config = arch.config(overrides, base=base, from_strings=from_strings)
        return SourceDescription(arch, config, located.variant.spec.source)
    arch = Architecture.named(os.fspath(source))
    return SourceDescription(
        arch, arch.config(overrides, from_strings=from_strings), os.fspath(source)
    )


def variant_saved(
    name: str, overrides: dict[str, Any] | None
) -> tuple[SavedModel, Architecture, Any]:
    """A weights variant as a saved source, for loads that only read it (sharded ones)."""
    if overrides:
        raise UsageError(
            f"{name}: config overrides of a weights variant are not supported with mesh=",
            hint="load the variant sharded without overrides, or without mesh= to fine-tune",
        )
    located = locate(get_variants().resolve(name))
    arch = Architecture.of(located.entry)
    config = arch.config_from_file(located.record.get("config", {}), located.path)
    return read_saved(located.path), arch, config
