"""Typed model configs: dataclasses that validate overrides and round-trip through JSON.

A model's ``Config`` is a plain :func:`dataclasses.dataclass` whose fields have
type annotations and defaults. This module checks values against those
annotations (Python values from ``create_model``, strings from ``--set``, JSON
from ``config.json``) so that a mistake is reported by field name, with the
valid names or the expected type, before any layer is built. It imports no torch.

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

import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from zoo_core.errors import ConfigError

__all__ = [
    "FieldInfo",
    "build_config",
    "config_fields",
    "config_from_dict",
    "config_to_dict",
    "parse_assignments",
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


def type_name(tp: Any) -> str:
    """A short human name for an annotation: ``int``, ``'rnn' | 'lstm'``, ``tuple[int, ...]``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        (item, *_rest) = typing.get_args(tp) or (Any,)
        return f"{origin.__name__}[{type_name(item)}, ...]" if origin is tuple else f"list[{item}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def config_fields(cls: type) -> list[FieldInfo]:
    """Describe the fields of a config dataclass: name, type, default and help text.

    Help text comes from ``field(metadata={"help": "..."})`` when a plugin gives it.
    """
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out.append(FieldInfo(f.name, type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return out


class _Mismatch(Exception):
    """Raised inside coercion; turned into a ConfigError that names the field."""


def _coerce(value: Any, tp: Any, from_string: bool) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (value is None or (from_string and str(value).lower() in _NONE)):
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
        choices = typing.get_args(tp)
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return choice
            if from_string and isinstance(value, str) and value == str(choice):
                return choice
        raise _Mismatch("one of " + ", ".join(repr(c) for c in choices))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        item = args[0] if args else Any
        if from_string and isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as err:
                    raise _Mismatch(type_name(tp)) from err
            else:
                value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(type_name(tp))
        items = [_coerce(v, item, from_string) for v in value]
        return tuple(items) if origin is tuple else items
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
    already have the right type (an ``int`` is accepted for a ``float``).

    Raises:
        ConfigError: an unknown field (the message lists the valid ones), a value
            of the wrong type (the message says which type was expected), or a
            value the config's own ``__post_init__`` rejects.
    """
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    values: dict[str, Any] = {}
    if base is not None:
        values = {n: getattr(base, n) for n in names}
    for key, value in (overrides or {}).items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown config field {key!r} for {cls.__qualname__}",
                hint=f"{hint}valid fields: {', '.join(names)}",
            )
        try:
            values[key] = _coerce(value, hints[key], from_strings)
        except _Mismatch as err:
            got = repr(value) if from_strings else f"{type(value).__name__} {value!r}"
            raise ConfigError(f"config field {key!r} expects {err}, got {got}") from None
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"config field(s) {', '.join(missing)} have no default and must be set")
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid config for {cls.__qualname__}: {err}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


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

    >>> parse_assignments(["num_classes=5", "cell=gru"])
    {'num_classes': '5', 'cell': 'gru'}
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
