"""Shell completion of names, ``--set`` keys and values, devices and dtypes, without torch.

click drives completion (``eval "$(_ZOO_COMPLETE=bash_source zoo)"``); these are
the ``shell_complete`` callbacks the commands attach to their parameters.

Config keys come from the model's config dataclass. Importing the model class to
read them would import torch (a second or more on every Tab), so the keys are
read from the source of the module that defines the class, with :mod:`ast`,
without running it; only when the source does not say (a config class defined
elsewhere, built dynamically, or no source at all) is the class imported.

After ``KEY=``, the values a field allows are offered: a ``Literal``'s choices,
``true``/``false`` for a ``bool``, ``none`` for an optional field (read the same
way). ``--set`` after ``NAME.TAG`` offers the config keys of the variant's model.
``--dtype`` and ``--device`` offer the words zoo accepts (a fixed list: asking
torch which devices exist would cost a second per Tab).

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
from zoo_core.pretrained.catalogue import is_variant_name

__all__ = [
    "DEVICE_WORDS",
    "DTYPE_WORDS",
    "NAME_SOURCES",
    "complete_architectures",
    "complete_device",
    "complete_dtype",
    "complete_model_names",
    "complete_plugin_names",
    "complete_set_keys",
    "complete_source",
    "config_choices",
    "config_keys",
    "config_keys_from_source",
]

#: What ``--dtype`` accepts (zoo_core.models.placement), shortest spellings last.
DTYPE_WORDS = ("float32", "float16", "bfloat16", "float64", "fp32", "fp16", "bf16", "fp64")
#: What ``--device`` accepts, without asking torch which devices this machine has.
DEVICE_WORDS = ("cpu", "cuda", "cuda:0", "cuda:1", "mps")


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
    """``KEY=`` for each config field of the model named earlier on the command line
    (a model name or a weights variant ``NAME.TAG``); after ``KEY=``, the values it allows."""
    model = _named_model(ctx)
    if model is None or _looks_like_path(model) or os.path.exists(model):
        return []  # a saved model's config comes from its files: it takes no --set
    reg = _registry()
    if reg is None:
        return []
    try:
        if is_variant_name(model):
            from zoo_core.pretrained.catalogue import get_variants  # hook modules only: no torch

            entry = get_variants().resolve(model).model_entry(reg)
        else:
            entry = reg.resolve(model)
        if "=" in incomplete:
            key, _, value = incomplete.partition("=")
            values = config_choices(entry.spec.target, entry.spec.config).get(key, [])
            return [CompletionItem(f"{key}={v}") for v in values if v.startswith(value)]
        keys = config_keys(entry.spec.target, entry.spec.config)
    except Exception:
        return []
    return [CompletionItem(f"{k}=") for k in keys if k.startswith(incomplete)]


def complete_dtype(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The floating dtypes ``--dtype`` accepts."""
    return [CompletionItem(w) for w in DTYPE_WORDS if w.startswith(incomplete)]


def complete_device(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The device words ``--device`` accepts (cpu, cuda, cuda:N, mps)."""
    return [CompletionItem(w) for w in DEVICE_WORDS if w.startswith(incomplete)]


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


def config_choices(target: str, config: str | None = None) -> dict[str, list[str]]:
    """The values each config field of ``target`` allows, where there are few: ``Literal``
    choices, ``true``/``false`` for a ``bool``, ``none`` for an optional field.

    ``config`` names the class of the config object the target takes, as for
    :func:`config_keys`. Read from the module's source when it says (no torch);
    otherwise the class is imported.

    >>> config_choices("zoo_rnn.model:SimpleRNN")["cell"]   # doctest: +SKIP
    ['rnn', 'lstm', 'gru']
    """
    nodes = _config_nodes(config or target, own=config is not None)
    if nodes is not None:
        return {name: values for name, node in nodes if (values := _choices(node))}
    import dataclasses
    import importlib
    import typing

    module_name, _, attr = (config or target).partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    config_cls = cls if config is not None else cls.Config
    if not dataclasses.is_dataclass(config_cls):
        return {}
    hints = typing.get_type_hints(config_cls)
    out = {}
    for f in dataclasses.fields(config_cls):
        values = _choices_of_type(hints.get(f.name))
        if f.init and values:
            out[f.name] = values
    return out


def _choices(node: ast.expr | None) -> list[str]:
    """Values of an annotation read from source: Literal[...], bool, X | None, Optional[X]."""
    if node is None:
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:  # a string annotation: "Literal['a', 'b']"
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _choices(node.left), _choices(node.right)
        return list(dict.fromkeys([*left, *right])) if (left or right) else []
    if isinstance(node, ast.Constant) and node.value is None:
        return ["none"]
    name = _annotation_name(node)
    if name == "bool":
        return ["true", "false"]
    if isinstance(node, ast.Subscript):
        head = _annotation_name(node.value)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head == "Literal":
            return [
                str(a.value).lower() if isinstance(a.value, bool) else str(a.value)
                for a in args
                if isinstance(a, ast.Constant) and a.value is not None
            ]
        if head == "Optional":
            return [*_choices(args[0]), "none"] if args else []
        if head == "Union":
            found = [v for a in args for v in _choices(a)]
            return list(dict.fromkeys(found))
    return []


def _annotation_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr  # typing.Literal, t.Optional
    return None


def _choices_of_type(tp: Any) -> list[str]:
    import typing

    if tp is bool:
        return ["true", "false"]
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return [str(a).lower() if isinstance(a, bool) else str(a) for a in typing.get_args(tp)]
    args = typing.get_args(tp)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return [*(v for a in rest for v in _choices_of_type(a)), "none"]
    return []


def config_keys_from_source(target: str, *, own: bool = False) -> list[str] | None:
    """Config field names found by parsing (not running) the module of ``target``, or None.

    Understands the usual shape: ``class Model(...)`` with ``Config = SomeConfig`` in its
    body, and ``SomeConfig`` a class in the same module whose annotated attributes are
    the fields (bases defined in the same module included, ``ClassVar`` left out).
    With ``own``, ``target`` is the config class itself.

    >>> config_keys_from_source("zoo_cnn.model:SimpleCNN")  # doctest: +SKIP
    ['in_channels', 'image_size', 'channels', 'num_classes']
    """
    nodes = _config_nodes(target, own=own)
    return None if nodes is None else [name for name, _ in nodes]


def _config_nodes(target: str, *, own: bool = False) -> list[tuple[str, ast.expr | None]] | None:
    """Each config field of ``target``'s class with its annotation, parsed from source, or None."""
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
) -> list[tuple[str, ast.expr | None]] | None:
    if cls.name in seen:
        return None
    seen.add(cls.name)
    fields: list[tuple[str, ast.expr | None]] = []
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes:
            inherited = _fields(classes[base.id], classes, seen)
            if inherited is None:
                return None
            fields += inherited
        elif not (isinstance(base, ast.Name) and base.id == "object"):
            return None  # a base from elsewhere may add fields the source here cannot show
    names = {name for name, _ in fields}
    for node in cls.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and "ClassVar" not in ast.unparse(node.annotation)
            and not _is_init_false(node.value)
            and node.target.id not in names
        ):
            fields.append((node.target.id, node.annotation))
            names.add(node.target.id)
    return fields


def _is_init_false(value: Any) -> bool:
    """``field(init=False)``: not a constructor argument, so not something --set can give."""
    return isinstance(value, ast.Call) and any(
        k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
        for k in value.keywords
    )
