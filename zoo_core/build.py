"""Building models: the one place that turns an architecture and a config into a module.

Every caller that makes a model goes through here: :func:`zoo_core.create_model`
and :func:`zoo_core.load_model`, ``zoo convert``, ``zoo verify``, ``zoo info``
and the conformance kit. An :class:`Architecture` is a registered model with its
class imported once; it checks configs, builds normally (seeded without
touching the global random state) or on the ``meta`` device, and fills a
meta-built model with loaded tensors.

>>> from zoo_core.build import Architecture
>>> arch = Architecture.named("simple_cnn")                       # doctest: +SKIP
>>> config = arch.config({"num_classes": "5"}, from_strings=True)  # doctest: +SKIP
>>> model = arch.build(config, seed=0)                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo_core.config import build_config
from zoo_core.errors import ConfigError, WeightsError
from zoo_core.registry import ModelEntry, get_registry

__all__ = ["Architecture"]

# A config read from a file that makes the constructor fail is the file's fault;
# these are the ways absurd sizes and types surface from torch's layers.
_BUILD_ERRORS = (ValueError, TypeError, RuntimeError, OverflowError, MemoryError)


@dataclass(frozen=True)
class Architecture:
    """A model class together with the registry entry that names it (if any).

    ``entry`` is None for a class checked on its own (the kit accepts bare
    classes); everything but naming works without it.
    """

    cls: type
    entry: ModelEntry | None = None

    @classmethod
    def of(cls, entry: ModelEntry) -> Architecture:
        """The architecture of a registry entry; imports its class (and torch) once."""
        return cls(entry.load_class(), entry)

    @classmethod
    def named(cls, name: str) -> Architecture:
        """Resolve a user-typed model name (bare or ``DIST:NAME``) and import its class.

        Raises:
            ModelNotFoundError, AmbiguousModelError, PluginError: see
                :meth:`~zoo_core.registry.Registry.resolve`.
        """
        return cls.of(get_registry().resolve(name))

    @classmethod
    def for_saved(
        cls, architecture: str, plugin: str | None, plugin_version: str | None
    ) -> Architecture:
        """The installed architecture saved weights name, or an error naming what to install."""
        return cls.of(get_registry().resolve_saved(architecture, plugin, plugin_version))

    @property
    def name(self) -> str:
        return self.entry.name if self.entry is not None else self.cls.__qualname__

    # --- configs -----------------------------------------------------------------

    def config(
        self,
        overrides: Mapping[str, Any] | None = None,
        *,
        from_strings: bool = False,
        base: Any = None,
    ) -> Any:
        """The model's ``Config`` with ``overrides`` checked against its fields.

        Raises:
            ConfigError: an unknown field, or a value of the wrong type.
        """
        return build_config(
            self.cls.Config, dict(overrides or {}), base=base, from_strings=from_strings
        )

    def config_from_file(self, fields: Mapping[str, Any], where: Path | str) -> Any:
        """A config recorded in a file; a bad one is the file's fault, not the caller's.

        Raises:
            WeightsError: the recorded fields do not fit the config.
        """
        try:
            return build_config(self.cls.Config, dict(fields))
        except ConfigError as err:
            raise WeightsError(f"{where}: {err}", hint=err.hint) from None

    # --- building ----------------------------------------------------------------

    def build(
        self,
        config: Any,
        *,
        seed: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> nn.Module:
        """Build with fresh weights under ``device``; a ``seed`` leaves the global RNG alone."""
        with torch.device(device or "cpu"):
            if seed is None:
                model = self.cls(config)
            else:
                # fork_rng restores the global generators afterwards: a seed given here
                # must not change what the caller's own torch.randn calls return.
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    model = self.cls(config)
        return model if dtype is None else model.to(dtype)

    def build_meta(self, config: Any, *, where: Path | str | None = None) -> nn.Module:
        """Build on the ``meta`` device: structure only, no memory, no initialisation.

        ``where`` names the file the config came from, so that a constructor that
        fails on it blames the file.

        Raises:
            WeightsError: with ``where``, the recorded config cannot be built.
        """
        try:
            with torch.device("meta"):
                return self.cls(config)
        except _BUILD_ERRORS as err:
            if where is None:
                raise
            raise WeightsError(
                f"{where}: cannot build {self.name} with the config it records: {err}",
                hint="the config.json or metadata was damaged or edited by hand",
            ) from None

    def fill(
        self,
        model: nn.Module,
        tensors: Mapping[str, torch.Tensor],
        config: Any,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> nn.Module:
        """Assign loaded ``tensors`` to a meta-built ``model`` and make it ready to run.

        The tensors become the parameters themselves (no copy). Non-persistent
        buffers, which no file holds, are computed by a real build, and RNN
        weights are re-flattened for cuDNN. Returns the model in eval mode.
        """
        model.load_state_dict(dict(tensors), strict=True, assign=True)
        self.materialise_leftovers(model, config, device=device, dtype=dtype)
        for module in model.modules():
            if isinstance(module, nn.RNNBase):
                # Assigned tensors are separate allocations; cuDNN wants one flat buffer and
                # would otherwise re-pack them on every call (what .to() does for it, too).
                module.flatten_parameters()
        return model.eval()

    def materialise_leftovers(
        self,
        model: nn.Module,
        config: Any,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Give non-persistent buffers (in no state dict) real values.

        They were built on ``meta`` with the rest and no file holds them, so the
        only way to compute them is to build the model for real. Most models have
        none and never pay for this.
        """
        leftovers = [name for name, b in model.named_buffers() if b.is_meta]
        if not leftovers:
            return
        real = dict(self.build(config, seed=0, device=device).named_buffers())
        for name in leftovers:
            module_name, _, buffer_name = name.rpartition(".")
            value = real[name]
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            model.get_submodule(module_name).register_buffer(buffer_name, value, persistent=False)
