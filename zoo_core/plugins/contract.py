"""The plugin contract: everything a plugin's hook module touches, on one screen.

A plugin is a distribution with an entry point in the group ``zoo``
(:data:`ENTRY_POINT_GROUP`) naming a hook module. The module states the plugin
API it targets (``ZOO_PLUGIN_API = 2``) and implements the hooks below with
:data:`hookimpl`. It must not import torch: ``zoo list`` calls the hooks and has
to stay instant.

>>> from zoo_core import ModelSpec, hookimpl
>>> ZOO_PLUGIN_API = 2          # the plugin API this hook module targets
>>> @hookimpl
... def zoo_register_models():
...     return [ModelSpec("simple_cnn", "zoo_cnn.model:SimpleCNN", "A tiny CNN.", ("vision",))]

A module may also publish weights variants (its own models' or anyone's) with
``zoo_register_weights`` returning :class:`WeightsSpec` s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

__all__ = [
    "CAPABILITIES",
    "ENTRY_POINT_GROUP",
    "MIN_PLUGIN_API_VERSION",
    "PLUGIN_API_ATTRIBUTE",
    "PLUGIN_API_VERSION",
    "PROJECT_NAME",
    "ModelSpec",
    "WeightsSpec",
    "check_capabilities",
    "hookimpl",
    "hookspec",
    "plugin_api_problem",
    "zoo_register_models",
    "zoo_register_weights",
]

#: pluggy's project name, which is also the entry-point group plugins are found in.
PROJECT_NAME = "zoo"
#: ``[project.entry-points.zoo]`` in a plugin's pyproject.toml.
ENTRY_POINT_GROUP = PROJECT_NAME

#: The plugin API this zoo-core provides (2: ``nn.Module`` and factory targets,
#: ``defaults`` and ``example_input`` in specs, inputs as tuples or dicts). It
#: changes only when something a plugin relies on (the hooks, the specs, the
#: ZooModel contract) changes
#: incompatibly; a plugin states the version it targets, and one that targets
#: a version outside ``MIN_PLUGIN_API_VERSION..PLUGIN_API_VERSION`` is reported
#: as incompatible instead of failing later with an AttributeError.
PLUGIN_API_VERSION = 2
#: The oldest plugin API this zoo-core still supports.
MIN_PLUGIN_API_VERSION = 1
#: The hook-module attribute in which a plugin states its target API.
PLUGIN_API_ATTRIBUTE = "ZOO_PLUGIN_API"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def zoo_register_models() -> list[ModelSpec]:
    """Return the :class:`ModelSpec` of each model this plugin provides."""


@hookspec
def zoo_register_weights() -> list[WeightsSpec]:
    """Return the :class:`WeightsSpec` of each weights variant this plugin publishes.

    Optional. A plugin may implement only this hook, to publish weights for
    another plugin's architecture (``WeightsSpec(model="zoo-cnn:simple_cnn", ...)``).
    """


# No dot in model names: ``NAME.TAG`` names a weights variant, split at the dot.
_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*\Z")
_MODEL_REF = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.\-]*:)?[a-z0-9][a-z0-9_\-]*\Z")
_TAG = re.compile(r"[a-z0-9][a-z0-9_\-]*\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_PACKAGE_SOURCE = re.compile(r"package://[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:/[A-Za-z0-9_.\-]+)+\Z")
_HUB_PART = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
_HUB_SOURCE = re.compile(rf"hf://{_HUB_PART}/{_HUB_PART}@[0-9a-f]{{40}}\Z")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")


_JSON = (str, int, float, bool, type(None))

#: What a model may declare it supports (``ModelSpec(supports=...)``), each verified
#: by the conformance kit (``zoo check``) and searchable with ``zoo list --supports``:
#:
#: - ``export``: ``torch.export`` with a dynamic batch dimension (``zoo export``, pt2);
#: - ``onnx``: ONNX through ``torch.onnx.export(dynamo=True)`` (``zoo export --format onnx``);
#: - ``compile``: ``torch.compile(fullgraph=True)``, no graph breaks;
#: - ``fsdp``: sharding with FSDP2 (``load_model(..., mesh=mesh, parallel="fsdp")``);
#: - ``tp``: tensor parallelism by the class's ``tp_plan`` (``parallel="tp"``).
CAPABILITIES = ("export", "onnx", "compile", "fsdp", "tp")


def check_capabilities(value: Any, owner: str) -> tuple[str, ...]:
    """``value`` as a tuple of known capabilities in :data:`CAPABILITIES` order.

    Raises:
        ValueError: not a sequence of strings, or a name zoo does not know.

    >>> check_capabilities(["compile", "export"], "simple_cnn")
    ('export', 'compile')
    """
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ValueError(
            f"supports of {owner} must be a tuple of capability names like ('export', 'compile')"
        )
    unknown = [v for v in value if v not in CAPABILITIES]
    if unknown:
        raise ValueError(
            f"supports of {owner} names unknown capabilities {unknown!r}; "
            f"the known ones are {', '.join(CAPABILITIES)}"
        )
    return tuple(c for c in CAPABILITIES if c in value)


def _json_value(value: Any) -> bool:
    if isinstance(value, _JSON):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_value(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


@dataclass(frozen=True)
class ModelSpec:
    """How a plugin announces one model, without importing it.

    Args:
        name: the model's name, lower case (``"simple_cnn"``); users type it.
        target: where the model lives, as ``"package.module:Name"``; imported
            only when the model is built. A :class:`~zoo_core.ZooModel` subclass
            (recommended for new code), or, since plugin API 2, any
            ``nn.Module`` subclass or a function returning one: its config is
            then captured from the signature's JSON-typed parameters.
        summary: one line for ``zoo list``.
        tags: free-form labels (``"vision"``, ``"classification"``).
        defaults: for an ``nn.Module`` target, values of its required
            parameters (and replacements of other defaults), JSON types only.
        example_input: for an ``nn.Module`` target, how to make an input: a
            shape over config fields (``("batch", "input_dim")``: an int is a
            size, a field name its value, any other name a free dimension), or
            ``"package.module:function"`` called as
            ``function(config, batch_size, dtype=..., device=...)`` (the keyword
            arguments only if it takes them) and returning a tensor, a tuple
            (positional; members may be None) or a dict (keyword).
        config: for a target whose constructor takes one config object
            (``GPT(config)``), that object's class as ``"package.module:Class"``:
            a dataclass, or a class whose ``__init__`` has typed keyword
            parameters. Its fields become the model's config (``defaults``
            replaces their defaults, ``--set n_layer=4`` sets one) and the
            target is called as ``GPT(GPTConfig(**fields))``.
        input_shape: for an ``nn.Module`` target, the shape zoo checks before
            each ``forward`` (an InputShapeError instead of an error deep in a
            layer): a shape for the first argument, as in ``example_input``, or
            ``{"argument": shape}`` by ``forward``'s parameter names. A shape
            ``example_input`` is checked without this.
        expected_failures: ``{check: reason}`` for conformance checks known to
            fail (``zoo check`` and ``parametrize_with_checks`` report them as
            expected failures, with the reason).
        tp_plan: a tensor-parallel plan (module pattern to ``"colwise"``,
            ``"rowwise"`` or ``"replicate"``) for a class that declares none.
        fsdp_units: module name patterns (``"blocks.*"``, ``*`` one name part)
            that FSDP shards as units; by default each block of a ``ModuleList``
            that implements ``forward`` (containers are looked into).
        supports: what the model can be deployed with, from :data:`CAPABILITIES`
            (``("export", "onnx", "compile", "fsdp")``). The kit verifies each
            one declared and reports the ones that work but are not declared;
            ``zoo list --supports export`` finds models by them without importing torch.

    >>> ModelSpec("simple_cnn", "zoo_cnn.model:SimpleCNN", supports=("export", "compile")).supports
    ('export', 'compile')
    >>> ModelSpec("linear_regression", "seed.models:LinearRegression",
    ...           defaults={"input_dim": 1, "output_dim": 1},
    ...           example_input=("batch", "input_dim")).example_input
    ('batch', 'input_dim')
    >>> ModelSpec("gpt", "nanogpt.model:GPT", config="nanogpt.model:GPTConfig",
    ...           defaults={"n_layer": 4}, example_input="nanogpt.inputs:tokens",
    ...           input_shape=("batch", "seq")).config
    'nanogpt.model:GPTConfig'
    """

    name: str
    target: str
    summary: str = ""
    tags: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)
    example_input: tuple[int | str, ...] | str | None = None
    config: str | None = None
    input_shape: tuple[int | str, ...] | Mapping[str, tuple[int | str, ...]] | None = field(
        default=None, hash=False
    )
    expected_failures: Mapping[str, str] = field(default_factory=dict, hash=False)
    tp_plan: Mapping[str, str] = field(default_factory=dict, hash=False)
    fsdp_units: tuple[str, ...] = ()
    supports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Plugins are third-party code: check what they hand us here, so that a
        # bad spec marks its plugin broken instead of failing later in a command.
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"model name {self.name!r} must be lower case letters, digits, '_' or '-' "
                "(no dot: NAME.TAG names a weights variant)"
            )
        if not isinstance(self.target, str) or not _TARGET.match(self.target):
            raise ValueError(f"target {self.target!r} must look like 'package.module:ClassName'")
        if not isinstance(self.summary, str):
            raise ValueError(f"summary of {self.name!r} must be a string")
        if isinstance(self.tags, str) or not all(isinstance(t, str) for t in self.tags):
            raise ValueError(f"tags of {self.name!r} must be a sequence of strings")
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "supports", check_capabilities(self.supports, repr(self.name)))
        if not isinstance(self.defaults, Mapping) or not _json_value(self.defaults):
            raise ValueError(f"defaults of {self.name!r} must be a dict of JSON values")
        object.__setattr__(self, "defaults", dict(self.defaults))
        example = self.example_input
        if isinstance(example, list):
            example = tuple(example)
            object.__setattr__(self, "example_input", example)
        if isinstance(example, str):
            if not _TARGET.match(example):
                raise ValueError(
                    f"example_input {example!r} of {self.name!r} must look like "
                    "'package.module:function'"
                )
        elif example is not None and not (
            isinstance(example, tuple)
            and all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in example)
        ):
            raise ValueError(
                f"example_input of {self.name!r} must be a shape like ('batch', 'input_dim') "
                "or 'package.module:function'"
            )
        if self.config is not None and (
            not isinstance(self.config, str) or not _TARGET.match(self.config)
        ):
            raise ValueError(
                f"config {self.config!r} of {self.name!r} must look like 'package.module:Class'"
            )
        object.__setattr__(self, "input_shape", self._input_shape(self.input_shape))
        for attr in ("expected_failures", "tp_plan"):
            value = getattr(self, attr)
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError(f"{attr} of {self.name!r} must be a dict of strings to strings")
            object.__setattr__(self, attr, dict(value))
        units = self.fsdp_units
        if isinstance(units, str) or not all(isinstance(u, str) and u for u in units):
            raise ValueError(f"fsdp_units of {self.name!r} must be a sequence of module patterns")
        object.__setattr__(self, "fsdp_units", tuple(units))

    def _input_shape(self, value: Any) -> Any:
        """A declared input shape, checked, with lists (from the plugin cache's JSON) as tuples."""
        if value is None:
            return None
        if isinstance(value, Mapping):
            if value and all(isinstance(k, str) and _shape(v) for k, v in value.items()):
                return {k: tuple(v) for k, v in value.items()}
        elif _shape(value):
            return tuple(value)
        raise ValueError(
            f"input_shape of {self.name!r} must be a shape like ('batch', 'seq') or "
            "{'argument': shape, ...}"
        )


def _shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(
        isinstance(d, (int, str)) and not isinstance(d, bool) for d in value
    )


@dataclass(frozen=True)
class WeightsSpec:
    """How a distribution announces one weights variant (a saved zoo model), without reading it.

    Args:
        model: the architecture, bare (``"simple_cnn"``) or ``"DIST:NAME"``
            (``"zoo-cnn:simple_cnn"``): anyone may publish weights for anyone's model.
        tag: the variant's name, lower case, no dot; users type ``NAME.TAG``.
        source: ``"package://PACKAGE/path/in/package"`` (a directory shipped as
            package data) or ``"hf://owner/repo@<40-hex commit>"`` (pinned).
        sha256: the sha256 of the variant's ``config.json``, which records
            every weight file's sha256: this one hash pins the whole variant.
        summary: one line for ``zoo list --pretrained``.
        default: whether ``create_model(NAME, pretrained=True)`` picks it.
        supports: the capabilities of these weights when they differ from the
            model's ``ModelSpec.supports`` (a variant whose config does not
            compile, say); None (the default) means the model's.

    >>> WeightsSpec("simple_cnn", "digits", "package://zoo_cnn/weights/digits", "0" * 64).tag
    'digits'
    """

    model: str
    tag: str
    source: str
    sha256: str
    summary: str = ""
    default: bool = False
    supports: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not _MODEL_REF.match(self.model):
            raise ValueError(f"weights model {self.model!r} must be NAME or DIST:NAME")
        if not isinstance(self.tag, str) or not _TAG.match(self.tag):
            raise ValueError(
                f"weights tag {self.tag!r} must be lower case letters, digits, '_' or '-' (no dot)"
            )
        if not isinstance(self.source, str) or not (
            (_PACKAGE_SOURCE.match(self.source) and ".." not in self.source.split("/"))
            or _HUB_SOURCE.match(self.source)
        ):
            raise ValueError(
                f"weights source {self.source!r} must be 'package://PACKAGE/PATH' or "
                "'hf://OWNER/REPO@<40-hex commit>' (a branch or tag can move: pin the commit)"
            )
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise ValueError(f"sha256 of {self.model}.{self.tag} must be 64 lower-case hex digits")
        if not isinstance(self.summary, str):
            raise ValueError(f"summary of {self.model}.{self.tag} must be a string")
        if not isinstance(self.default, bool):
            raise ValueError(f"default of {self.model}.{self.tag} must be True or False")
        if self.supports is not None:
            supports = check_capabilities(self.supports, f"{self.model}.{self.tag}")
            object.__setattr__(self, "supports", supports)

    @property
    def model_name(self) -> str:
        """The bare architecture name (``simple_cnn`` for ``zoo-cnn:simple_cnn``)."""
        return self.model.rpartition(":")[2]

    @property
    def name(self) -> str:
        """``NAME.TAG``, what users type."""
        return f"{self.model_name}.{self.tag}"

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "tag": self.tag,
            "source": self.source,
            "sha256": self.sha256,
            "summary": self.summary,
            "default": self.default,
            "supports": None if self.supports is None else list(self.supports),
        }


def plugin_api_problem(declared: object, *, core_version: str) -> str | None:
    """Why a plugin that targets plugin API ``declared`` cannot work here, or None if it can.

    ``None`` (nothing declared) is accepted as API 1, the first version, so that
    plugins written before the contract existed keep working.

    >>> plugin_api_problem(1, core_version="0.1.0") is None
    True
    >>> plugin_api_problem(3, core_version="0.1.0")
    'needs plugin API 3, but zoo-core 0.1.0 provides plugin API 1 to 2'
    """
    if declared is None:
        return None
    if isinstance(declared, bool) or not isinstance(declared, int):
        return f"{PLUGIN_API_ATTRIBUTE} must be an int like {PLUGIN_API_VERSION}, got {declared!r}"
    provided = (
        f"plugin API {PLUGIN_API_VERSION}"
        if MIN_PLUGIN_API_VERSION == PLUGIN_API_VERSION
        else f"plugin API {MIN_PLUGIN_API_VERSION} to {PLUGIN_API_VERSION}"
    )
    if declared > PLUGIN_API_VERSION or declared < MIN_PLUGIN_API_VERSION:
        return f"needs plugin API {declared}, but zoo-core {core_version} provides {provided}"
    return None
