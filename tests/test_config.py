"""Config dataclasses: type checking, string parsing, JSON round trips, clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from zoo_core.errors import ConfigError
from zoo_core.models.config import (
    build_config,
    config_fields,
    config_from_dict,
    config_to_dict,
    parse_assignments,
)


@dataclass
class Example:
    width: int = 4
    rate: float = 0.5
    bias: bool = True
    cell: Literal["rnn", "lstm"] = "rnn"
    name: str = "x"
    sizes: tuple[int, ...] = (1, 2)
    limit: int | None = None
    note: str = field(default="", metadata={"help": "free text"})

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError("width must be at least 1")


def test_defaults_and_python_overrides() -> None:
    cfg = build_config(Example, {"width": 8, "rate": 1, "cell": "lstm", "sizes": [3, 4]})
    assert cfg == Example(width=8, rate=1.0, cell="lstm", sizes=(3, 4))
    assert isinstance(cfg.rate, float)


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("width", "12", 12),
        ("rate", "1e-3", 1e-3),
        ("bias", "false", False),
        ("bias", "YES", True),
        ("cell", "lstm", "lstm"),
        ("sizes", "5,6,7", (5, 6, 7)),
        ("sizes", "[5, 6]", (5, 6)),
        ("limit", "none", None),
        ("limit", "3", 3),
    ],
)
def test_strings_parse_to_the_field_type(key: str, text: str, value: object) -> None:
    assert getattr(build_config(Example, {key: text}, from_strings=True), key) == value


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"widht": 3}, "unknown config field 'widht'"),
        ({"width": "3"}, "expects int, got str '3'"),
        ({"width": True}, "expects int"),
        ({"width": 2.5}, "expects int"),
        ({"bias": 1}, "expects bool"),
        ({"cell": "gru"}, "one of 'rnn', 'lstm'"),
        ({"width": 0}, "width must be at least 1"),
    ],
)
def test_bad_overrides_say_what_was_wrong(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(Example, overrides)


def test_unknown_field_suggests_and_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(Example, {"widht": 3})
    assert "did you mean 'width'" in info.value.hint
    assert "rate" in info.value.hint


def test_bad_strings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="expects int, got 'many'"):
        build_config(Example, {"width": "many"}, from_strings=True)
    with pytest.raises(ConfigError, match="bool"):
        build_config(Example, {"bias": "maybe"}, from_strings=True)


def test_json_round_trip() -> None:
    cfg = build_config(Example, {"sizes": (9, 8), "limit": 2})
    data = config_to_dict(cfg)
    assert data["sizes"] == [9, 8]
    assert config_from_dict(Example, data) == cfg


def test_config_from_dict_rejects_non_objects() -> None:
    with pytest.raises(ConfigError, match="JSON object"):
        config_from_dict(Example, [1, 2])


def test_required_fields_are_reported() -> None:
    @dataclass
    class NoDefault:
        size: int

    with pytest.raises(ConfigError, match="size have no default"):
        build_config(NoDefault, {})
    assert build_config(NoDefault, {"size": 2}).size == 2


def test_config_fields_describe_types_and_help() -> None:
    fields = {f.name: f for f in config_fields(Example)}
    assert fields["cell"].type == "'rnn' | 'lstm'"
    assert fields["sizes"].type == "tuple[int, ...]"
    assert fields["limit"].type == "int | None"
    assert fields["note"].help == "free text"
    assert fields["width"].default == 4


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["oops"])
    with pytest.raises(ConfigError, match="twice"):
        parse_assignments(["a=1", "a=2"])
