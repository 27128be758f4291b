"""Config types of contract v2: each parses strictly from Python, JSON and --set text."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from zoo_core.errors import ConfigError
from zoo_core.models.config import (
    build_config,
    config_fields,
    config_from_dict,
    config_to_dict,
    signature_config,
    type_name,
)


class Act(enum.Enum):
    RELU = "relu"
    GELU = "gelu"


@dataclass
class Stem:
    width: int = 32
    kernel: tuple[int, int] = (3, 3)


@dataclass
class Rich:
    pair: tuple[int, int] = (1, 2)
    layers: tuple[int, ...] = (2, 2, 2, 2)
    pairs: tuple[tuple[int, int], ...] = ((8, 16),)
    names: list[str] = field(default_factory=lambda: ["a"])
    widths: dict[str, int] = field(default_factory=dict)
    limit: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    act: Act = Act.RELU
    stem: Stem = field(default_factory=Stem)
    stems: list[Stem] = field(default_factory=list)
    ratio: float | None = 0.5


SET_CASES = [
    ("pair", "3,4", (3, 4)),
    ("pair", "(3, 4)", (3, 4)),
    ("pair", "[3,4]", (3, 4)),
    ("layers", "3,4,6,3", (3, 4, 6, 3)),
    ("layers", "(3,4,6,3)", (3, 4, 6, 3)),
    ("layers", "7", (7,)),
    ("pairs", "8,16,16,32", ((8, 16), (16, 32))),
    ("pairs", "((8,16),(16,32))", ((8, 16), (16, 32))),
    ("names", "x,y", ["x", "y"]),
    ("widths", '{"a": 1, "b": 2}', {"a": 1, "b": 2}),
    ("widths", "a:1,b:2", {"a": 1, "b": 2}),
    ("limit", "none", None),
    ("limit", "5", 5),
    ("mode", "slow", "slow"),
    ("act", "gelu", Act.GELU),
    ("act", "GELU", Act.GELU),
    ("stem", '{"width": 8}', Stem(width=8)),
    ("stem.width", "64", Stem(width=64)),
    ("stem.kernel", "5,5", Stem(kernel=(5, 5))),
    ("stems", '[{"width": 1}, {"width": 2, "kernel": [1, 1]}]', [Stem(1), Stem(2, (1, 1))]),
    ("ratio", "null", None),
]


@pytest.mark.parametrize(("key", "text", "value"), SET_CASES)
def test_each_type_parses_from_set_and_round_trips_json(key: str, text: str, value: object) -> None:
    config = build_config(Rich, {key: text}, from_strings=True)
    got = getattr(config, key.partition(".")[0])
    assert got == value and type(got) is type(value)
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(Rich, data) == config


BAD_SET = [
    ("pair", "1,2,3", "'pair' expects tuple[int, int] (exactly 2 values, got 3)"),
    ("pair", "1,x", "'pair' expects int (at pair[1])"),
    ("pairs", "8,16,16", "'pairs' expects a multiple of 2 values"),
    ("widths", "a:x", "'widths' expects int (at widths['a'])"),
    ("widths", "[1,2]", "'widths' expects dict[str, int]"),
    ("mode", "medium", "'mode' expects one of 'fast', 'slow'"),
    ("act", "tanh", "'act' expects one of 'relu', 'gelu'"),
    ("stem.width", "wide", "'stem.width' expects int"),
    ("stem.depth", "3", "unknown config field 'stem.depth'"),
    ("stem", "[1]", "'stem' expects Stem"),
    ("limit", "many", "'limit' expects int | None"),
    ("mode.x", "1", "'mode'"),
]


@pytest.mark.parametrize(("key", "text", "message"), BAD_SET)
def test_malformed_set_values_are_refused_naming_field_and_type(
    key: str, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(Rich, {key: text}, from_strings=True)
    assert message in str(info.value)


BAD_JSON = [
    ({"pair": [1, 2, 3]}, "exactly 2 values"),
    ({"pair": [1, "2"]}, "expects int (at pair[1])"),
    ({"widths": {"a": 1.5}}, "expects int (at widths['a'])"),
    ({"stem": {"width": 1, "depth": 2}}, "unknown config field 'depth'"),
    ({"stem": 3}, "expects Stem"),
    ({"act": "RELU"}, "one of 'relu', 'gelu'"),
    ({"layers": "3,4"}, "tuple[int, ...]"),
]


@pytest.mark.parametrize(("data", "message"), BAD_JSON)
def test_malformed_json_is_refused(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict(Rich, data)
    assert message in str(info.value)


def test_type_names_are_readable() -> None:
    types = {f.name: f.type for f in config_fields(Rich)}
    assert types == {
        "pair": "tuple[int, int]",
        "layers": "tuple[int, ...]",
        "pairs": "tuple[tuple[int, int], ...]",
        "names": "list[str]",
        "widths": "dict[str, int]",
        "limit": "int | None",
        "mode": "'fast' | 'slow'",
        "act": "'relu' | 'gelu'",
        "stem": "Stem",
        "stems": "list[Stem]",
        "ratio": "float | None",
    }
    assert type_name(list[int]) == "list[int]"


def test_json_form_of_enums_and_nested() -> None:
    data = config_to_dict(build_config(Rich, {"act": Act.GELU, "stem": {"width": 2}}))
    assert data["act"] == "gelu" and data["stem"] == {"width": 2, "kernel": [3, 3]}


def test_signature_config_captures_json_parameters() -> None:
    class Net:
        def __init__(self, width: int, depth=2, act: str = "relu", sizes=(1, 2), norm=None):
            pass

    config_cls = signature_config(Net, {"width": 8})
    config = config_cls()
    assert (config.width, config.depth, config.act, config.sizes) == (8, 2, "relu", (1, 2))
    assert "norm" not in {f.name for f in config_fields(config_cls)}
    with pytest.raises(TypeError, match=r"'width' .* is required"):
        signature_config(Net)
    with pytest.raises(TypeError, match="no parameter"):
        signature_config(Net, {"width": 1, "nope": 2})
    assert build_config(config_cls, {"depth": "3"}, from_strings=True).depth == 3


# --- through the command line: --set, config.json and zoo info --------------------------

CLI_SETS = [
    ("stem.width=6", "stem", {"width": 6, "kernel": [3, 3]}, "Stem(width=6, kernel=(3, 3))"),
    ("layers=(3,4,6,3)", "layers", [3, 4, 6, 3], "(3, 4, 6, 3)"),
    ("pair=5,6", "pair", [5, 6], "(5, 6)"),
    ("pairs=8,16,16,32", "pairs", [[8, 16], [16, 32]], "((8, 16), (16, 32))"),
    ("names=x,y", "names", ["x", "y"], "['x', 'y']"),
    ("widths=a:1,b:2", "widths", {"a": 1, "b": 2}, "{'a': 1, 'b': 2}"),
    ("limit=4", "limit", 4, "4"),
    ("mode=slow", "mode", "slow", "'slow'"),
    ("act=tanh", "act", "tanh", "'tanh'"),
]


def test_every_type_round_trips_through_set_config_json_and_info(
    fixture_plugins, tmp_path, zoo
) -> None:
    fixture_plugins("typed_config_plugin")
    args = [a for text, *_ in CLI_SETS for a in ("--set", text)]
    saved = zoo("save", "typed", str(tmp_path / "m"), *args)
    assert saved.returncode == 0, saved.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    info = zoo("info", str(tmp_path / "m"), "--json")
    assert info.returncode == 0, info.stderr
    shown = json.loads(info.stdout)
    for _, key, value, _ in CLI_SETS:
        assert config[key] == value
        assert shown["config"][key] == value
    human = zoo("info", "typed", *args)
    assert human.returncode == 0, human.stderr
    for _, key, _, text in CLI_SETS:
        line = next(x for x in human.stdout.splitlines() if x.split()[:1] == [key])
        assert f"-> {text}" in line, line
    types = {f["name"]: f["type"] for f in shown["fields"]}
    assert types["pairs"] == "tuple[tuple[int, int], ...]" and types["act"] == "'relu' | 'tanh'"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pair=1,2,3", "'pair' expects tuple[int, int] (exactly 2 values, got 3)"),
        ("stem.width=wide", "'stem.width' expects int"),
        ("stem.depth=1", "unknown config field 'stem.depth'"),
        ("widths=a:x", "'widths' expects int (at widths['a'])"),
        ("act=gelu", "'act' expects one of 'relu', 'tanh'"),
    ],
)
def test_malformed_set_values_exit_2(fixture_plugins, zoo, text, fragment) -> None:
    fixture_plugins("typed_config_plugin")
    result = zoo("info", "typed", "--set", text)
    assert result.returncode == 2
    assert fragment in result.stderr and "Traceback" not in result.stderr
