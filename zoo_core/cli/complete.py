"""Shell completion of model names, plugin names and ``--set`` keys, without importing torch.

click drives completion (``eval "$(_ZOO_COMPLETE=bash_source zoo)"``); these are
the ``shell_complete`` callbacks the commands attach to their parameters.

Config keys come from the model's config dataclass. Importing the model class to
read them would import torch (a second or more on every Tab), so the keys are
read from the source of the module that defines the class, with :mod:`ast`,
without running it; only when the source does not say (a config class defined
elsewhere, built dynamically, or no source at all) is the class imported.

To complete more kinds of model names (``NAME.TAG`` variants of pretrained
weights, say), append a function to :data:`NAME_SOURCES`.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import click
from click.shell_completion import CompletionItem

from zoo_core.plugins.registry import Registry, get_registry

__all__ = [
    "NAME_SOURCES",
    "complete_architectures",
    "complete_model_names",
    "complete_plugin_names",
    "complete_set_keys",
    "complete_source",
    "config_keys",
    "config_keys_from_source",
]


def _model_names(reg: Registry) -> Iterable[tuple[str, str]]:
    for entry in reg.models():
        yield entry.display_name, entry.spec.summary
        yield entry.qualified_name, entry.spec.summary


def _variant_names(reg: Registry) -> Iterable[tuple[str, str]]:
    from zoo_core.pretrained.catalogue import get_variants  # reads hook modules only: no torch

    for variant in get_variants().find():
        yield variant.display_name, variant.spec.summary
        yield variant.qualified_name, variant.spec.summary


#: Each function yields ``(name, help)`` for names a model argument accepts.
NAME_SOURCES: list[Callable[[Registry], Iterable[tuple[str, str]]]] = [
    _model_names,
    _variant_names,
]


def _registry() -> Registry | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a broken plugin is no news while pressing Tab
            return get_registry()
    except Exception:  # completion must never break the shell: offer nothing instead
        return None


def complete_model_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Everything a model source can name (:data:`NAME_SOURCES`) that starts ``incomplete``."""
    return _complete_names(NAME_SOURCES, incomplete)


def complete_architectures(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Installed architectures only (``--arch``, ``zoo save NAME``, ``zoo check``): no variants."""
    return _complete_names([_model_names], incomplete)


def _complete_names(
    sources: Iterable[Callable[[Registry], Iterable[tuple[str, str]]]], incomplete: str
) -> list[CompletionItem]:
    reg = _registry()
    if reg is None:
        return []
    seen: dict[str, str] = {}
    for source in sources:
        try:
            for name, help_text in source(reg):
                seen.setdefault(name, help_text)
        except Exception:
            continue
    bare = {name for name in seen if ":" not in name}
    return [
        CompletionItem(name, help=help_text or None)
        for name, help_text in sorted(seen.items())
        if name.startswith(incomplete)
        # DIST:NAME once a colon is typed, or when the bare name is ambiguous (conflicts).
        and (":" not in name or ":" in incomplete or name.partition(":")[2] not in bare)
    ]


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or os.sep in text or "/" in text


def complete_source(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """A model name, or (when the word looks like a path, or no name fits) a file or directory."""
    if incomplete.startswith("hf:"):
        return []
    if not _looks_like_path(incomplete):
        names = complete_model_names(ctx, param, incomplete)
        if names:
            return names
    return [CompletionItem(incomplete, type="file")]


def complete_plugin_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Discovered plugin (distribution) names for ``--plugin``."""
    reg = _registry()
    if reg is None:
        return []
    names = sorted({p.name for p in reg.plugins})
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_set_keys(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """``KEY=`` for each config field of the model named earlier on the command line."""
    if "=" in incomplete:
        return []  # the key is typed; values are free-form
    model = _named_model(ctx)
    if model is None or _looks_like_path(model) or os.path.exists(model):
        return []  # a saved model's config comes from its files: it takes no --set
    reg = _registry()
    if reg is None:
        return []
    try:
        entry = reg.resolve(model)
        keys = config_keys(entry.spec.target, entry.spec.config)
    except Exception:
        return []
    return [CompletionItem(f"{k}=") for k in keys if k.startswith(incomplete)]


_MODEL_PARAMS = ("arch", "source", "name")


def _named_model(ctx: click.Context) -> str | None:
    """The model (or source) given earlier on the command line, if any."""
    for params in (ctx.params, _reparsed(ctx)):
        for name in _MODEL_PARAMS:
            if isinstance(params.get(name), str):
                return params[name]
    return None


def _reparsed(ctx: click.Context) -> dict[str, Any]:
    # click parses the words before the one being completed; an option still waiting
    # for its value (--set) stops that parse and leaves the arguments after the last
    # parsed option unassigned, in ctx.args. Parsing those again assigns them.
    if not ctx.args:
        return {}
    try:
        again = ctx.command.make_context(
            ctx.info_name, list(ctx.args), parent=ctx.parent, resilient_parsing=True
        )
    except Exception:
        return {}
    return again.params


def config_keys(target: str, config: str | None = None) -> list[str]:
    """The config field names of the model class at ``target`` (``'pkg.module:Class'``).

    ``config`` names the class of the config object the target takes
    (``ModelSpec(config=...)``): its fields are the keys. Read from the module's
    source when it says (no torch); otherwise the class is imported.
    """
    if config is not None:
        return config_keys_from_source(config, own=True) or []
    keys = config_keys_from_source(target)
    if keys is not None:
        return keys
    import dataclasses

    module_name, _, attr = target.partition(":")
    import importlib

    cls = getattr(importlib.import_module(module_name), attr)
    return [f.name for f in dataclasses.fields(cls.Config) if f.init]


def config_keys_from_source(target: str, *, own: bool = False) -> list[str] | None:
    """Config field names found by parsing (not running) the module of ``target``, or None.

    Understands the usual shape: ``class Model(...)`` with ``Config = SomeConfig`` in its
    body, and ``SomeConfig`` a class in the same module whose annotated attributes are
    the fields (bases defined in the same module included, ``ClassVar`` left out).
    With ``own``, ``target`` is the config class itself.

    >>> config_keys_from_source("zoo_cnn.model:SimpleCNN")  # doctest: +SKIP
    ['in_channels', 'image_size', 'channels', 'num_classes']
    """
    module_name, _, attr = target.partition(":")
    try:
        # find_spec imports parent packages; a plugin's package __init__ is kept light.
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=spec.origin)
    except (OSError, SyntaxError, ValueError):
        return None
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    model = classes.get(attr)
    if model is None:
        return None
    if own:
        return _fields(model, classes, set())
    config_name = _config_name(model)
    if config_name is None or config_name not in classes:
        return None
    return _fields(classes[config_name], classes, set())


def _config_name(cls: ast.ClassDef) -> str | None:
    for node in cls.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        named = any(isinstance(t, ast.Name) and t.id == "Config" for t in targets)
        if named and isinstance(value, ast.Name):
            return value.id
    return None


def _fields(
    cls: ast.ClassDef, classes: dict[str, ast.ClassDef], seen: set[str]
) -> list[str] | None:
    if cls.name in seen:
        return None
    seen.add(cls.name)
    names: list[str] = []
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            inherited = _fields(classes[base.id], classes, seen)
            if inherited is None:
                return None
            names += inherited
        elif not (isinstance(base, ast.Name) and base.id == "object"):
            return None  # a base from elsewhere may add fields the source here cannot show
    for node in cls.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and "ClassVar" not in ast.unparse(node.annotation)
            and not _is_init_false(node.value)
            and node.target.id not in names
        ):
            names.append(node.target.id)
    return names


def _is_init_false(value: Any) -> bool:
    """``field(init=False)``: not a constructor argument, so not something --set can give."""
    return isinstance(value, ast.Call) and any(
        k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
        for k in value.keywords
    )
