"""Typed model configs: dataclasses that validate overrides and round-trip through JSON.

A model's ``Config`` is a plain :func:`dataclasses.dataclass` whose fields have
type annotations and defaults. This module checks values against those
annotations (Python values from ``create_model``, strings from ``--set``, JSON
from ``config.json``) so that a mistake is reported by field name, with the
valid names or the expected type, before any layer is built. It imports no torch.

Supported field types: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
enums, ``X | None``, fixed tuples (``tuple[int, int]``), variable tuples
(``tuple[int, ...]``), ``list[X]``, ``dict[str, X]`` and nested dataclasses,
in any combination.

>>> from dataclasses import dataclass
>>> @dataclass
... class Config:
...     input_dim: int = 1
...     bias: bool = True
>>> build_config(Config, {"input_dim": "3"}, from_strings=True)
Config(input_dim=3, bias=True)
>>> config_to_dict(build_config(Config, {"bias": False}))
{'input_dim': 1, 'bias': False}
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import enum
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from zoo_core.errors import ConfigError

__all__ = [
    "FieldInfo",
    "build_config",
    "config_fields",
    "config_from_dict",
    "config_kwargs",
    "config_to_dict",
    "format_value",
    "parse_assignments",
    "signature_config",
    "type_name",
]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null"}


@dataclass(frozen=True)
class FieldInfo:
    """One config field as ``zoo info`` shows it."""

    name: str
    type: str
    default: Any
    help: str = ""


def _hints(cls: type) -> dict[str, Any]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__qualname__} is not a dataclass")
    return typing.get_type_hints(cls)


def _is_union(origin: Any) -> bool:
    return origin in (Union, types.UnionType)


def type_name(tp: Any) -> str:
    """A short human name for an annotation.

    >>> type_name(tuple[int, int]), type_name(list[int]), type_name(dict[str, float] | None)
    ('tuple[int, int]', 'list[int]', 'dict[str, float] | None')
    >>> type_name(tuple[int, ...]), type_name(Literal["rnn", "lstm"])
    ('tuple[int, ...]', "'rnn' | 'lstm'")
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return "any"
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if _is_union(origin):
        return " | ".join(type_name(a) for a in args)
    if origin is tuple:
        if not args:
            return "tuple[any, ...]"
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{type_name(args[0])}, ...]"
        if args == ((),):
            return "tuple[()]"
        return f"tuple[{', '.join(type_name(a) for a in args)}]"
    if origin is list:
        return f"list[{type_name(args[0]) if args else 'any'}]"
    if origin is dict:
        key, value = args if args else (str, Any)
        return f"dict[{type_name(key)}, {type_name(value)}]"
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " | ".join(repr(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp))


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def config_fields(cls: type) -> list[FieldInfo]:
    """Describe the fields of a config dataclass: name, type, default and help text.

    Help text comes from ``field(metadata={"help": "..."})`` when a plugin gives it.
    """
    hints = _hints(cls)
    return [
        FieldInfo(f.name, type_name(hints[f.name]), _default_of(f), f.metadata.get("help", ""))
        for f in dataclasses.fields(cls)
    ]


class _Mismatch(Exception):
    """Raised inside coercion; turned into a ConfigError that names the field."""

    def __init__(self, expected: str, where: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.where = where  # the path below the field: "[2]", ".width", "['a']"


def _parse_text(text: str) -> Any:
    """Command-line text for a composite field: JSON, a Python literal, or a comma list.

    ``[3, 4]``, ``(3, 4)``, ``3,4`` and ``{"a": 1}`` all parse; ``a:1,b:2`` is a
    dict; anything else is split on commas into strings, parsed again per item.
    """
    text = text.strip()
    if not text:
        return []
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        # literal_eval evaluates literals only, never names or calls.
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    parts = [p.strip() for p in text.strip("()[]").split(",") if p.strip()]
    if parts and all(":" in p for p in parts):
        return {k.strip(): v.strip() for k, v in (p.split(":", 1) for p in parts)}
    return parts


def _fixed_length(tp: Any) -> int | None:
    """The length of a fixed tuple type (``tuple[int, int]`` -> 2); None otherwise."""
    if typing.get_origin(tp) is not tuple:
        return None
    args = typing.get_args(tp)
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        return None
    return len(args)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def _coerce_items(items: list[Any], item_tp: Any, from_string: bool) -> list[Any]:
    # "8,16,16,32" for tuple[tuple[int, int], ...]: group the flat list by the inner length.
    size = _fixed_length(item_tp)
    if from_string and size and items and all(_is_scalar(v) for v in items):
        if len(items) % size:
            raise _Mismatch(f"a multiple of {size} values for {type_name(item_tp)} items")
        items = [items[i : i + size] for i in range(0, len(items), size)]
    out = []
    for i, v in enumerate(items):
        try:
            out.append(_coerce(v, item_tp, from_string))
        except _Mismatch as err:
            raise _Mismatch(err.expected, f"[{i}]{err.where}") from None
    return out


def _coerce(value: Any, tp: Any, from_string: bool) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if _is_union(origin):
        if type(None) in args and (
            value is None or (from_string and isinstance(value, str) and value.lower() in _NONE)
        ):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, from_string)
            except _Mismatch:
                continue
        raise _Mismatch(type_name(tp))
    if origin is Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return choice
            if from_string and isinstance(value, str) and value == str(choice):
                return choice
        raise _Mismatch("one of " + ", ".join(repr(c) for c in args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        for member in tp:
            if value == member.value and type(value) is type(member.value):
                return member
            if from_string and isinstance(value, str) and value in (str(member.value), member.name):
                return member
        raise _Mismatch("one of " + ", ".join(repr(m.value) for m in tp))
    if origin in (tuple, list):
        if from_string and isinstance(value, str):
            value = _parse_text(value)
            if _is_scalar(value):
                value = [value]
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(type_name(tp))
        size = _fixed_length(tp)
        if size is not None:
            if len(value) != size:
                raise _Mismatch(f"{type_name(tp)} (exactly {size} values, got {len(value)})")
            out = []
            for i, (v, item_tp) in enumerate(zip(value, args, strict=True)):
                try:
                    out.append(_coerce(v, item_tp, from_string))
                except _Mismatch as err:
                    raise _Mismatch(err.expected, f"[{i}]{err.where}") from None
            return tuple(out)
        items = _coerce_items(list(value), args[0] if args else Any, from_string)
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        key_tp, value_tp = args if args else (str, Any)
        if from_string and isinstance(value, str):
            value = _parse_text(value)
        if not isinstance(value, Mapping):
            raise _Mismatch(type_name(tp))
        result = {}
        for k, v in value.items():
            if not isinstance(k, str) or key_tp is not str:
                raise _Mismatch(f"{type_name(tp)} with string keys")
            try:
                result[k] = _coerce(v, value_tp, from_string)
            except _Mismatch as err:
                raise _Mismatch(err.expected, f"[{k!r}]{err.where}") from None
        return result
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if from_string and isinstance(value, str):
            value = _parse_text(value)
        if not isinstance(value, Mapping):
            raise _Mismatch(f"{tp.__qualname__} (an object of its fields)")
        return _build(tp, value, None, from_string, prefix="")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_string and isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        raise _Mismatch("bool (true or false)")
    if tp is int:
        # bool is a subclass of int; True is never meant as a layer size.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_string and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _Mismatch("int")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_string and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise _Mismatch("float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch("str")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch(type_name(tp))


def _split_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"stem.width": 64}`` -> ``{"stem": {"width": 64}}`` (merged with other stem keys)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if not dot:
            if key in out and isinstance(out[key], _Nested):
                raise ConfigError(f"config field {key!r} is given whole and by its parts")
            out[key] = value
            continue
        nested = out.setdefault(head, _Nested())
        if not isinstance(nested, _Nested):
            raise ConfigError(f"config field {head!r} is given whole and by its parts")
        nested[rest] = value
    return out


class _Nested(dict):  # type: ignore[type-arg]
    """Dotted overrides of one nested field, applied on top of its current value."""


def _build(
    cls: type, overrides: Mapping[str, Any], base: Any, from_strings: bool, prefix: str
) -> Any:
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    values: dict[str, Any] = {}
    if base is not None:
        values = {n: getattr(base, n) for n in names}
    for key, value in _split_dotted(overrides).items():
        where = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {prefix}{close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown config field {where!r} for {cls.__qualname__}",
                hint=f"{hint}valid fields: {', '.join(prefix + n for n in names)}",
            )
        tp = hints[key]
        if isinstance(value, _Nested):
            inner = _dataclass_in(tp)
            if inner is None:
                raise ConfigError(
                    f"config field {where!r} ({type_name(tp)}) has no fields to set with '.'"
                )
            current = values.get(key)
            if current is None:
                current = _default_of(next(f for f in fields if f.name == key))
            base_inner = current if isinstance(current, inner) else None
            values[key] = _build(inner, value, base_inner, from_strings, prefix=f"{where}.")
            continue
        try:
            values[key] = _coerce(value, tp, from_strings)
        except _Mismatch as err:
            got = repr(value) if from_strings else f"{type(value).__name__} {value!r}"
            at = f" (at {where}{err.where})" if err.where else ""
            raise ConfigError(
                f"config field {where!r} expects {err.expected}{at}, got {got}",
                hint=_syntax_hint(tp) if from_strings else None,
            ) from None
    missing = [
        prefix + f.name
        for f in fields
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"config field(s) {', '.join(missing)} have no default and must be set")
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid config for {cls.__qualname__}: {err}") from None


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass a field holds (``Stem`` or ``Stem | None``), if any."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    if _is_union(typing.get_origin(tp)):
        found = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def _syntax_hint(tp: Any) -> str | None:
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return "give items separated by commas (--set k=3,4,6) or as [3,4,6] / (3,4,6)"
    if origin is dict:
        return "give a JSON object (--set k='{\"a\": 1}') or a:1,b:2"
    if _dataclass_in(tp) is not None:
        return "set one nested field with a dot (--set stem.width=64) or give a JSON object"
    return None


def build_config(
    cls: type,
    overrides: Mapping[str, Any] | None = None,
    *,
    base: Any = None,
    from_strings: bool = False,
) -> Any:
    """Make a config instance from defaults (or ``base``) plus checked ``overrides``.

    With ``from_strings=True`` the values are command-line text (``"5"``,
    ``"true"``, ``"64,128"``) parsed to each field's type; otherwise they must
    already have the right type (an ``int`` is accepted for a ``float``, a list
    for a tuple, a dict for a nested dataclass). A key with a dot
    (``"stem.width"``) sets one field of a nested dataclass.

    Raises:
        ConfigError: an unknown field (the message lists the valid ones), a value
            of the wrong type (the message names the field and the expected type),
            or a value the config's own ``__post_init__`` rejects.
    """
    return _build(cls, overrides or {}, base, from_strings, prefix="")


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as a JSON-ready dict (tuples become lists, enums their values)."""
    return json.loads(json.dumps(_plain(config)))


def format_value(value: Any) -> str:
    """A config value as ``zoo info`` shows it: JSON-like, one line.

    >>> format_value((3, 4)), format_value({"a": 1}), format_value(None)
    ('(3, 4)', "{'a': 1}", 'None')
    """
    if isinstance(value, enum.Enum):
        return repr(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(
            f"{f.name}={format_value(getattr(value, f.name))}" for f in dataclasses.fields(value)
        )
        return f"{type(value).__name__}({inner})"
    return repr(value)


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a config from :func:`config_to_dict` output, checking every field.

    Raises:
        ConfigError: ``data`` is not a mapping, or a field is unknown or ill-typed.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
    return build_config(cls, data)


def parse_assignments(items: typing.Iterable[str]) -> dict[str, str]:
    """Split ``KEY=VALUE`` strings (``--set`` options) into a dict.

    >>> parse_assignments(["num_classes=5", "cell=gru", "stem.width=64"])
    {'num_classes': '5', 'cell': 'gru', 'stem.width': '64'}
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--set expects KEY=VALUE, got {item!r}", hint="for example: --set num_classes=5"
            )
        if key in out:
            raise ConfigError(f"--set gives {key!r} twice")
        out[key] = value
    return out


# --- configs captured from a signature (bring your own nn.Module) -------------------

_JSON_SCALARS = (bool, int, float, str)


def _supported(tp: Any) -> bool:
    """Whether :func:`build_config` can check and JSON can hold values of ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp in _JSON_SCALARS:
        return True
    if origin is Literal:
        return all(isinstance(a, _JSON_SCALARS) for a in args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return all(isinstance(m.value, _JSON_SCALARS) for m in tp)
    if _is_union(origin):
        return all(a is type(None) or _supported(a) for a in args)
    if origin is tuple:
        return bool(args) and all(a is Ellipsis or _supported(a) for a in args)
    if origin is list:
        return bool(args) and _supported(args[0])
    if origin is dict:
        return len(args) == 2 and args[0] is str and _supported(args[1])
    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def _type_of_value(value: Any) -> Any:
    """The config type a default value implies (``3`` -> int, ``(1, 2)`` -> tuple[int, ...])."""
    if isinstance(value, _JSON_SCALARS):
        return type(value)
    if isinstance(value, (tuple, list)) and value:
        kinds = {_type_of_value(v) for v in value}
        if len(kinds) == 1 and None not in kinds:
            item = kinds.pop()
            return tuple[item, ...] if isinstance(value, tuple) else list[item]
    return None


def signature_config(
    target: Callable[..., Any], defaults: Mapping[str, Any] | None = None, *, name: str = ""
) -> type:
    """A config dataclass captured from the parameters of a class or factory function.

    Each parameter with a JSON-typed default (or annotation) becomes a field of
    the same name; its type comes from the annotation, else from the default.
    ``defaults`` supplies values for required parameters (and may replace
    others). Parameters that JSON cannot hold and that have a default of their
    own (``norm_layer=None``, ``device=None``) are left out and keep it.

    Raises:
        TypeError: a required parameter has no value in ``defaults``, or a
            ``defaults`` key is not a parameter.

    >>> def make(width: int, depth=2, act: str = "relu", device=None): ...
    >>> Config = signature_config(make, {"width": 8})
    >>> Config()
    makeConfig(width=8, depth=2, act='relu')
    """
    defaults = dict(defaults or {})
    func = target.__init__ if isinstance(target, type) else target  # type: ignore[misc]
    signature = inspect.signature(func)
    try:
        # A dataclass's own annotations resolve in its module (its __init__'s may not).
        hints = typing.get_type_hints(target if _is_dataclass_type(target) else func)
    except Exception:  # annotations of third-party code may not resolve; use defaults
        hints = {}
    if _is_dataclass_type(target):
        # default_factory fields show a sentinel in the signature: use the fields' defaults.
        factories = {
            f.name: f.default_factory()
            for f in dataclasses.fields(target)
            if f.init and f.default_factory is not dataclasses.MISSING
        }
        signature = signature.replace(
            parameters=[
                p.replace(default=factories[p.name]) if p.name in factories else p
                for p in signature.parameters.values()
            ]
        )
    specs: list[tuple[str, Any, Any]] = []
    params = [
        p
        for p in signature.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    known = {p.name for p in params}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise TypeError(f"defaults name no parameter of {target.__qualname__}: {unknown}")
    for p in params:
        if p.kind is p.POSITIONAL_ONLY:
            raise TypeError(f"{target.__qualname__} has positional-only parameter {p.name!r}")
        value = defaults.get(p.name, p.default)
        tp = hints.get(p.name)
        if tp is None or not _supported(tp):
            tp = _type_of_value(value) if value is not inspect.Parameter.empty else None
            if tp is None:
                optional = value is None and hints.get(p.name) is None
                if value is not inspect.Parameter.empty and (optional or p.name not in defaults):
                    continue  # keeps its own default: not part of the config
                takes = hints.get(p.name)
                raise TypeError(
                    f"parameter {p.name!r} of {target.__qualname__} has no JSON type; "
                    "annotate it or give it a default in the spec"
                    if takes is None
                    else f"parameter {p.name!r} of {target.__qualname__} takes a "
                    f"{type_name(takes)}, which is not a JSON type"
                )
        if value is inspect.Parameter.empty:
            raise TypeError(
                f"parameter {p.name!r} of {target.__qualname__} is required; "
                f"give it a value in the spec's defaults"
            )
        try:
            value = _coerce(value, tp, False) if value is not None else None
        except _Mismatch as err:
            raise TypeError(
                f"the default {value!r} of {p.name!r} ({target.__qualname__}) is not {err.expected}"
            ) from None
        if isinstance(value, (list, dict, set)) or _is_dataclass_instance(value):
            specs.append((p.name, tp, dataclasses.field(default_factory=lambda v=value: _copy(v))))
        else:
            specs.append((p.name, tp, dataclasses.field(default=value)))
    return dataclasses.make_dataclass(
        name or f"{target.__name__}Config",
        specs,
        namespace={"__module__": getattr(target, "__module__", __name__)},
    )


def _copy(value: Any) -> Any:
    if _is_dataclass_instance(value):
        return dataclasses.replace(value)
    return json.loads(json.dumps(value))


def _is_dataclass_type(value: Any) -> bool:
    return isinstance(value, type) and dataclasses.is_dataclass(value)


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def config_kwargs(config: Any) -> dict[str, Any]:
    """The config's fields as keyword arguments (nested dataclasses kept as they are)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
