"""Building models: the one place that turns an architecture and a config into a module.

Every caller that makes a model goes through here: :func:`zoo_core.create_model`
and :func:`zoo_core.load_model`, ``zoo convert``, ``zoo verify``, ``zoo info``
and the conformance kit. An :class:`Architecture` is a registered model with its
target imported once; it checks configs, builds normally (seeded without
touching the global random state) or on the ``meta`` device, and fills a
meta-built model with loaded tensors.

A target is a :class:`~zoo_core.ZooModel` subclass (it owns its ``Config`` and
``example_input``), or any ``nn.Module`` subclass or factory function: then the
config is captured from its signature and the spec says how to make inputs.
A model built here remembers where it came from (:func:`origin_of`), which is
how :func:`zoo_core.save_model` knows what it saves.

>>> from zoo_core.models.build import Architecture
>>> arch = Architecture.named("simple_cnn")                       # doctest: +SKIP
>>> config = arch.config({"num_classes": "5"}, from_strings=True)  # doctest: +SKIP
>>> model = arch.build(config, seed=0)                             # doctest: +SKIP
>>> arch.forward(model, arch.example_input(model, 2)).shape        # doctest: +SKIP
torch.Size([2, 5])
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo_core.errors import (
    ConfigError,
    InputShapeError,
    PluginCodeError,
    PluginError,
    WeightsError,
    ZooError,
    error_text,
)
from zoo_core.models.budget import meta_budget
from zoo_core.models.config import build_config, config_kwargs, signature_config
from zoo_core.models.model import ZooModel, call_model
from zoo_core.models.tying import assign_tensors
from zoo_core.plugins.registry import ModelEntry, get_registry

__all__ = ["ORIGIN_ATTRIBUTE", "Architecture", "Origin", "config_of", "origin_of"]

#: The attribute in which a model built here records its :class:`Origin`.
ORIGIN_ATTRIBUTE = "zoo_origin"
#: Free dimensions of a declared input shape other than "batch" get this size.
FREE_DIMENSION_SIZE = 8
# Config classes captured from signatures, by (target, config class, defaults as JSON).
_CONFIG_CLASSES: dict[tuple[Any, Any, str], type] = {}
#: A shape zoo checks before ``forward``: by argument position (0) or name.
Shapes = dict[int | str, tuple[int | str, ...]]


@dataclass(frozen=True)
class Origin:
    """Where a built model came from: its architecture and the config it was built with."""

    arch: Architecture
    config: Any


def origin_of(model: nn.Module) -> Origin | None:
    """The :class:`Origin` a model built by zoo carries, or None for one built elsewhere."""
    origin = model.__dict__.get(ORIGIN_ATTRIBUTE)
    return origin if isinstance(origin, Origin) else None


def config_of(model: nn.Module) -> Any:
    """The config a model was built with: a ZooModel's own, or the one zoo recorded.

    Returns None for an ``nn.Module`` built outside zoo.
    """
    origin = origin_of(model)
    if origin is not None:
        return origin.config
    return model.config if isinstance(model, ZooModel) else None


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class Architecture:
    """A model target together with the registry entry that names it (if any).

    ``entry`` is None for a class checked on its own (the kit accepts bare
    classes); everything but naming and saving works without it.
    """

    cls: Any
    entry: ModelEntry | None = None
    Config: type = field(init=False, repr=False, compare=False)
    #: The class of the one config object the target takes (``ModelSpec(config=...)``).
    config_object: type | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        spec = self.entry.spec if self.entry is not None else None
        if self.native:
            if spec is not None and spec.config is not None:
                raise PluginError(
                    f"{self._where()} is a ZooModel, which defines its own Config; "
                    f"the spec's config={spec.config!r} does not apply",
                    hint="drop config= from the ModelSpec",
                )
            object.__setattr__(self, "Config", self.cls.Config)
            return
        if spec is not None and spec.config is not None:
            object.__setattr__(self, "config_object", self._config_class(spec.config))
        defaults = dict(spec.defaults) if spec is not None else {}
        source = self.config_object or self.cls
        # One class per target and defaults: configs of two builds must compare equal.
        key = (self.cls, self.config_object, json.dumps(defaults, sort_keys=True))
        try:
            config_cls = _CONFIG_CLASSES.get(key) or signature_config(
                source, defaults, name=source.__name__ if self.config_object else ""
            )
        except (TypeError, ValueError) as err:
            raise PluginError(
                f"{self._where()} cannot be used as a zoo model: {err}", hint=self._config_hint()
            ) from None
        _CONFIG_CLASSES[key] = config_cls
        object.__setattr__(self, "Config", config_cls)

    def _config_class(self, target: str) -> type:
        try:
            found = _import(target)
        except Exception as err:  # a plugin's import can fail in any way
            raise PluginError(
                f"{self._where()}: cannot import its config class {target}: {error_text(err)}",
                hint="config= names the class of the object the constructor takes, "
                "as 'package.module:Class'",
            ) from err
        if not isinstance(found, type):
            raise PluginError(f"{self._where()}: config {target} is not a class")
        return found

    def _config_hint(self) -> str:
        """How to register a target whose parameters zoo cannot capture (a config object)."""
        if self.config_object is not None:
            return (
                "give every config field a JSON type (int, float, bool, str, Literal, tuples, "
                "lists, dicts, dataclasses) and a default, or a value in ModelSpec(defaults=...)"
            )
        try:
            params = list(inspect.signature(self.cls).parameters.values())
        except (TypeError, ValueError):
            params = []
        takes = None
        if len(params) == 1:
            annotation = params[0].annotation
            if isinstance(annotation, type):
                takes = f"{annotation.__module__}:{annotation.__qualname__}"
            elif isinstance(annotation, str) and annotation.isidentifier():
                takes = f"{getattr(self.cls, '__module__', 'package.module')}:{annotation}"
        one = f"ModelSpec(..., config={takes or 'package.module:ConfigClass'!r})"
        return (
            f"a constructor that takes one config object registers with {one}; "
            "otherwise give required parameters values with ModelSpec(defaults={...}), "
            "or make the target a factory function with JSON-typed parameters that builds it"
        )

    @classmethod
    def of(cls, entry: ModelEntry) -> Architecture:
        """The architecture of a registry entry; imports its target (and torch) once."""
        return cls(entry.load_class(), entry)

    @classmethod
    def named(cls, name: str) -> Architecture:
        """Resolve a user-typed model name (bare or ``DIST:NAME``) and import its class.

        Raises:
            ModelNotFoundError, AmbiguousModelError, PluginError: see
                :meth:`~zoo_core.plugins.registry.Registry.resolve`.
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

    @property
    def native(self) -> bool:
        """True for a ZooModel subclass; False for a plain ``nn.Module`` class or a factory."""
        return isinstance(self.cls, type) and issubclass(self.cls, ZooModel)

    def _where(self) -> str:
        if self.entry is not None:
            return f"{self.entry.spec.target} (model {self.entry.name})"
        return getattr(self.cls, "__qualname__", repr(self.cls))

    # --- blame ---------------------------------------------------------------------

    @contextmanager
    def plugin_code(self, doing: str) -> Iterator[None]:
        """Report an exception from the plugin's own code as that plugin's.

        zoo's own errors pass through; anything else raised inside becomes a
        :class:`~zoo_core.errors.PluginCodeError` naming the distribution and
        model, so that the user knows whom to tell.
        """
        try:
            yield
        except ZooError:
            raise
        except Exception as err:
            raise self.code_error(doing, err) from err

    def code_error(self, doing: str, err: BaseException) -> PluginCodeError:
        """The :class:`PluginCodeError` for ``err``, raised while ``doing`` something."""
        plugin = self.entry.plugin if self.entry is not None else None
        dist = (plugin.distribution or plugin.name) if plugin is not None else None
        version = f" {plugin.version}" if plugin is not None and plugin.version else ""
        owner = f"plugin {dist}{version}" if dist else "the model's code"
        return PluginCodeError(
            f"{owner} failed in {doing} of {self.name}: {error_text(err)}",
            distribution=dist,
            model=self.name,
            hint=(
                ("if the config values are sensible, " if "constructor" in doing else "")
                + (
                    f"this is a bug in {dist}, not in zoo: report it to {dist}'s authors"
                    if dist
                    else "this is a bug in the model's code, not in zoo"
                )
            ),
        )

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
            self.Config, dict(overrides or {}), base=base, from_strings=from_strings
        )

    def config_from_file(self, fields: Mapping[str, Any], where: Path | str) -> Any:
        """A config recorded in a file; a bad one is the file's fault, not the caller's.

        Raises:
            WeightsError: the recorded fields do not fit the config.
        """
        try:
            return build_config(self.Config, dict(fields))
        except ConfigError as err:
            raise WeightsError(f"{where}: {err.message}", hint=err.hint) from None

    # --- building ----------------------------------------------------------------

    def construct(self, config: Any) -> nn.Module:
        """Call the target with ``config`` under the current device; no seeding, no blame."""
        if self.native:
            return self.cls(config)
        kwargs = config_kwargs(config)
        if self.config_object is not None:
            model = self.cls(self.config_object(**kwargs))
        else:
            model = self.cls(**kwargs)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{self._where()} returned {type(model).__name__}, not an nn.Module")
        # Plain attribute, not a submodule: it stays out of state_dict and repr.
        model.__dict__[ORIGIN_ATTRIBUTE] = Origin(self, config)
        shapes = self.input_shapes(config)
        if shapes:
            check = _shape_check(self.name, shapes, model)
            model.register_forward_pre_hook(check, with_kwargs=True)
        return model

    def build(
        self,
        config: Any,
        *,
        seed: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> nn.Module:
        """Build with fresh weights under ``device``; a ``seed`` leaves the global RNG alone.

        Raises:
            PluginCodeError: the model's constructor raised.
        """
        with self.plugin_code("its constructor"), torch.device(device or "cpu"):
            if seed is None:
                model = self.construct(config)
            else:
                # fork_rng restores the global generators afterwards: a seed given here
                # must not change what the caller's own torch.randn calls return.
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    model = self.construct(config)
        if not self.native:
            model.__dict__[ORIGIN_ATTRIBUTE] = Origin(self, config)
        return model if dtype is None else model.to(dtype)

    def build_meta(self, config: Any, *, where: Path | str | None = None) -> nn.Module:
        """Build on the ``meta`` device: structure only, no memory, no initialisation.

        ``where`` names the file the config came from. A constructor that fails
        on it blames the file, unless it also fails on the defaults: then the
        plugin's code is at fault, whatever the file says.

        The constructor runs under :func:`~zoo_core.models.budget.meta_budget`: a
        config asking for an absurd size is stopped, not built for minutes.

        Raises:
            WeightsError: with ``where``, the recorded config cannot be built.
            PluginCodeError: the constructor fails on ``meta`` whatever the config.
            BuildBudgetExceeded: the build made too many tensors or took too long.
        """
        try:
            with meta_budget(self.name, where), torch.device("meta"):
                return self.construct(config)
        except ZooError:
            raise
        except Exception as err:
            if where is None or not self.builds_on_meta(self.config()):
                raise self.code_error("its constructor on the meta device", err) from err
            raise WeightsError(
                f"{where}: cannot build {self.name} with the config it records: {error_text(err)}",
                hint="the config.json or metadata was damaged or edited by hand",
            ) from None

    def builds_on_meta(self, config: Any) -> bool:
        """Whether ``config`` builds on ``meta`` (how every load starts)."""
        try:
            with meta_budget(self.name), torch.device("meta"):
                self.construct(config)
        except Exception:
            return False
        return True

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

        The tensors become the parameters themselves (no copy); weights the
        model ties stay one Parameter. Non-persistent buffers, which no file
        holds, are computed by a real build, and RNN weights are re-flattened
        for cuDNN. Returns the model in eval mode.
        """
        assign_tensors(model, tensors)
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

    # --- inputs and running ------------------------------------------------------

    def declared_shape(self, config: Any) -> tuple[int | str, ...] | None:
        """The input shape a spec's ``example_input`` declares, fields resolved.

        Ints stay sizes, config field names become their values, other names
        stay free dimensions. None for ZooModels and specs without a shape.
        """
        spec = self.entry.spec if self.entry is not None else None
        if self.native or spec is None or not isinstance(spec.example_input, tuple):
            return None
        return _resolved(spec.example_input, config)

    def input_shapes(self, config: Any) -> Shapes:
        """The shapes zoo checks before ``forward``: the spec's ``input_shape``, else the
        shape of its ``example_input``; by argument position (0) or name. Empty for ZooModels
        (they check their own inputs) and for specs that declare no shape."""
        spec = self.entry.spec if self.entry is not None else None
        if self.native or spec is None:
            return {}
        declared = spec.input_shape
        if isinstance(declared, Mapping):
            return {k: _resolved(v, config) for k, v in declared.items()}
        if declared is not None:
            return {0: _resolved(declared, config)}
        shape = self.declared_shape(config)
        return {0: shape} if shape is not None else {}

    def tp_plan(self, model: nn.Module) -> dict[str, str]:
        """The tensor-parallel plan: the spec's, else the one the built model's class declares."""
        spec = self.entry.spec if self.entry is not None else None
        if spec is not None and spec.tp_plan:
            return dict(spec.tp_plan)
        plan = getattr(type(model), "tp_plan", None)
        return dict(plan) if isinstance(plan, Mapping) else {}

    def fsdp_units(self, model: nn.Module) -> tuple[str, ...]:
        """Module patterns FSDP shards as units: the spec's, else the model class's (or none)."""
        spec = self.entry.spec if self.entry is not None else None
        if spec is not None and spec.fsdp_units:
            return spec.fsdp_units
        units = getattr(type(model), "fsdp_units", None)
        return tuple(units) if isinstance(units, (tuple, list)) else ()

    def example_input(self, model: nn.Module, batch_size: int = 1) -> Any:
        """What ``forward`` accepts: the model's own ``example_input``, or the spec's recipe.

        Raises:
            PluginCodeError: the plugin's code for making inputs raised.
            PluginError: an ``nn.Module`` target's spec says nothing about inputs.
        """
        with self.plugin_code("example_input"):
            if isinstance(model, ZooModel):
                return model.example_input(batch_size)
            origin = origin_of(model)
            config = origin.config if origin is not None else self.config()
            spec = self.entry.spec if self.entry is not None else None
            recipe = spec.example_input if spec is not None else None
            if recipe is None:
                raise PluginError(
                    f"{self._where()} is an nn.Module without example_input, "
                    "and its ModelSpec gives none",
                    hint="add example_input=('batch', 'field', ...) or 'module:function' "
                    "to its ModelSpec",
                )
            ref = _reference(model)
            dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
            device = ref.device if ref is not None else torch.device("cpu")
            if isinstance(recipe, str):
                make = _import(recipe)
                extra = {"dtype": dtype, "device": device}
                return _place(make(config, batch_size, **_accepted(make, extra)), model)
            shape = self.declared_shape(config) or ()
            sizes = [
                batch_size if d == "batch" else (d if isinstance(d, int) else FREE_DIMENSION_SIZE)
                for d in shape
            ]
            return torch.randn(*sizes, device=device, dtype=dtype)

    def forward(self, model: nn.Module, inputs: Any) -> Any:
        """Call ``model`` on ``inputs`` (see :func:`call_model`), blaming its code.

        Raises:
            PluginCodeError: ``forward`` raised something other than a zoo error.
        """
        with self.plugin_code("forward"):
            return call_model(model, inputs)


def _reference(model: nn.Module) -> torch.Tensor | None:
    """The tensor whose device and dtype inputs follow: a floating one where there is one."""
    tensors = [*model.parameters(), *model.buffers()]
    return next((t for t in tensors if t.is_floating_point()), tensors[0] if tensors else None)


def _resolved(shape: tuple[int | str, ...], config: Any) -> tuple[int | str, ...]:
    return tuple(
        getattr(config, d) if isinstance(d, str) and hasattr(config, d) else d for d in shape
    )


def _accepted(func: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``func`` takes (an input function may predate dtype and device)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _place(inputs: Any, model: nn.Module) -> Any:
    """Move a factory's inputs to the model's device, floating ones to its dtype.

    Nested tuples and lists (an LSTM's ``(h, c)``) are followed; None stays None.
    """
    ref = _reference(model)
    if ref is None:
        return inputs

    def move(t: Any) -> Any:
        if isinstance(t, (tuple, list)):
            return type(t)(move(item) for item in t)
        if isinstance(t, Mapping):
            return {k: move(v) for k, v in t.items()}
        if not isinstance(t, torch.Tensor):
            return t
        if t.is_floating_point() and ref.is_floating_point():
            return t.to(device=ref.device, dtype=ref.dtype)
        return t.to(device=ref.device)

    return move(inputs)


def _shape_check(name: str, shapes: Shapes, model: nn.Module) -> Callable[..., None]:
    """A forward pre-hook raising InputShapeError unless the declared inputs have their shapes."""
    try:
        signature: inspect.Signature | None = inspect.signature(model.forward)
    except (TypeError, ValueError):
        signature = None

    def check(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        given: dict[int | str, Any] = {}
        if 0 in shapes:
            given[0] = args[0] if args else next(iter(kwargs.values()), None)
        elif signature is not None:
            # A call that does not bind: forward itself will say what is wrong with it.
            with contextlib.suppress(TypeError):
                given = dict(signature.bind_partial(*args, **kwargs).arguments)
        for key, shape in shapes.items():
            if key not in given:
                continue
            x = given[key]
            what = "input" if key == 0 else f"{key!r}"
            want_text = ", ".join(str(d) for d in shape)
            if not isinstance(x, torch.Tensor):
                raise InputShapeError(f"{name} expects a tensor as {what}, got {type(x).__name__}")
            ok = x.dim() == len(shape) and all(
                not isinstance(want, int) or got == want
                for got, want in zip(x.shape, shape, strict=False)
            )
            if not ok:
                raise InputShapeError(
                    f"{name} expects {what} of shape ({want_text}), got {tuple(x.shape)}"
                )

    return check
