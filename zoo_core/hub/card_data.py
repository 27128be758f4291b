"""What a zoo model card says, read back without trusting it.

``zoo push`` writes the card (:mod:`zoo_core.hub.card`) with ``library_name:
zoo`` and tags naming the architecture and the plugin twice: plainly
(``simple_cnn``, ``zoo-cnn``, for people browsing the Hub) and in a fixed form
(``zoo-arch:simple_cnn``, ``zoo-plugin:zoo-cnn``) that says which tag is
which. The Hub indexes the tags, so ``zoo search`` filters on them and reads
them back from the listing with :func:`read_tags`.

``zoo info hf://...`` shows the card's YAML metadata (:func:`parse_card`):
PyYAML's safe loader (a dependency of huggingface_hub; libyaml's where
available), with aliases refused and the metadata's size, depth and number
of values bounded before anything is built, and every string cut and escaped
before anything shows it.

>>> card_tags("simple_cnn", "zoo_CNN")
['zoo', 'simple_cnn', 'zoo_CNN', 'zoo-arch:simple_cnn', 'zoo-plugin:zoo-cnn']
>>> read_tags(["zoo", "zoo-arch:simple_cnn", "zoo-plugin:zoo-cnn", "license:mit"])
CardTags(architecture='simple_cnn', plugin='zoo-cnn', license='mit')
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from zoo_core.hub.transport import LIBRARY_NAME
from zoo_core.plugins.registry import canonical_name
from zoo_core.untrusted import clean_text, valid_distribution

__all__ = [
    "ARCH_TAG",
    "CARD_NAME",
    "LIBRARY_NAME",
    "MAX_METADATA_BYTES",
    "PLUGIN_TAG",
    "CardError",
    "CardTags",
    "card_summary",
    "card_tags",
    "parse_card",
    "read_tags",
    "valid_architecture",
]

CARD_NAME = "README.md"
ARCH_TAG = "zoo-arch:"
PLUGIN_TAG = "zoo-plugin:"
# A card's YAML metadata: zoo writes a few KB (a thousand labels fit in 40 KB).
MAX_METADATA_BYTES = 256 * 1024
_MAX_DEPTH = 16
_MAX_VALUES = 20_000
# What `zoo info` shows of a card: enough to judge a model, never a wall of text.
_MAX_LIST = 1000
_MAX_METRICS = 50
_MAX_TEXT = 200
# A model name as the plugin contract allows it.
_ARCH = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
# The YAML block at the very top of a README.md, between two '---' lines.
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def valid_architecture(name: object) -> bool:
    """Whether ``name`` is a model name the plugin contract allows (``simple_cnn``)."""
    return isinstance(name, str) and bool(_ARCH.fullmatch(name))


def card_tags(architecture: str, plugin: str | None) -> list[str]:
    """The tags ``zoo push`` gives a card: library, architecture and plugin, plain and marked."""
    tags = [LIBRARY_NAME, architecture, *([plugin] if plugin else [])]
    tags.append(ARCH_TAG + architecture)
    if plugin:
        tags.append(PLUGIN_TAG + canonical_name(plugin))
    return tags


@dataclass(frozen=True)
class CardTags:
    """What a listing's tags say about a zoo model; None where they say nothing usable."""

    architecture: str | None
    plugin: str | None
    license: str | None


def read_tags(tags: list[str]) -> CardTags:
    """The architecture, plugin and license a model's tags name (marked tags only).

    A value that is not a valid model or distribution name is ignored, as is a
    tag given twice with different values: the listing is untrusted.
    """
    found: dict[str, set[str]] = {"arch": set(), "plugin": set(), "license": set()}
    for tag in tags:
        if tag.startswith(ARCH_TAG) and valid_architecture(tag[len(ARCH_TAG) :]):
            found["arch"].add(tag[len(ARCH_TAG) :])
        elif tag.startswith(PLUGIN_TAG) and valid_distribution(tag[len(PLUGIN_TAG) :]):
            found["plugin"].add(canonical_name(tag[len(PLUGIN_TAG) :]))
        elif tag.startswith("license:") and 0 < len(tag) - 8 <= 100:
            found["license"].add(clean_text(tag[8:], 100))

    def one(key: str) -> str | None:
        values = found[key]
        return next(iter(values)) if len(values) == 1 else None

    return CardTags(one("arch"), one("plugin"), one("license"))


# -- the YAML metadata of a model card --------------------------------------------------------


class CardError(ValueError):
    """The card's metadata cannot be read (too large, not YAML, aliases, too deep)."""


def _check_events(block: str, loader: Any) -> None:
    """Refuse aliases, deep nesting and too many values from the parser's events, before any
    object is built (libyaml's parser where PyYAML has it: a pure-Python parse of a large
    block takes seconds)."""
    import yaml

    depth = values = 0
    for event in yaml.parse(block, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            # A few bytes of aliases can stand for gigabytes once walked.
            raise CardError("it uses YAML aliases")
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            values += 1
            if values > _MAX_VALUES:
                raise CardError(f"it holds over {_MAX_VALUES} values")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > _MAX_DEPTH:
                raise CardError(f"it is nested over {_MAX_DEPTH} deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _plain(value: Any) -> Any:
    """A JSON-like copy of parsed YAML (depth and size already bounded), strings escaped."""
    if isinstance(value, dict):
        return {clean_text(str(k), 100): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return clean_text(str(value), 2000)


def parse_card(text: str) -> dict[str, Any]:
    """The YAML metadata at the top of a model card, as plain checked data ({} if none).

    >>> parse_card("---\\nlicense: mit\\ntags: [zoo]\\n---\\n# Title\\n")
    {'license': 'mit', 'tags': ['zoo']}

    Raises:
        CardError: the metadata is over :data:`MAX_METADATA_BYTES`, not YAML,
            not a mapping, uses aliases, or is nested or sized beyond reason.
    """
    import yaml

    match = _FRONT_MATTER.match(text)
    if match is None:
        return {}
    block = match.group(1) or ""
    if len(block.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise CardError(f"its metadata is over {MAX_METADATA_BYTES} bytes")
    # Safe loaders only: they build plain data and never call anything a tag names.
    loader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    try:
        _check_events(block, loader)
        data = yaml.load(block, Loader=loader)
    except CardError:
        raise
    except (yaml.YAMLError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CardError(f"its metadata is not valid YAML ({clean_text(first)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CardError("its metadata is not a mapping")
    return _plain(data)


def _strings(value: Any, limit: int) -> list[str]:
    items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return [clean_text(v, _MAX_TEXT) for v in items[:limit] if isinstance(v, (str, int, float))]


def _number(value: Any) -> float | int | str | None:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return value
    return clean_text(value, 40) if value is not None else None


def _metrics(model_index: Any) -> list[dict[str, Any]]:
    """Each metric of a card's ``model-index``: name, value, split, dataset and task."""
    metrics: list[dict[str, Any]] = []
    for model in model_index if isinstance(model_index, list) else []:
        results = model.get("results") if isinstance(model, dict) else None
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, dict):
                continue
            task = result.get("task") if isinstance(result.get("task"), dict) else {}
            dataset = result.get("dataset") if isinstance(result.get("dataset"), dict) else {}
            values = result.get("metrics")
            for metric in values if isinstance(values, list) else []:
                if not isinstance(metric, dict) or len(metrics) >= _MAX_METRICS:
                    continue
                name = metric.get("name") or metric.get("type")
                metrics.append(
                    {
                        "name": clean_text(name, 100) if name is not None else "?",
                        "value": _number(metric.get("value")),
                        "split": _text(dataset.get("split")),
                        "dataset": _text(dataset.get("name")),
                        "task": _text(task.get("type")),
                    }
                )
    return metrics


def _text(value: Any) -> str | None:
    return clean_text(value, _MAX_TEXT) if isinstance(value, (str, int, float)) else None


def card_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """What ``zoo info`` shows of a card's metadata: license, tags, data sets, metrics, labels.

    >>> card_summary({"license": "mit", "labels": ["cat", "dog"]})["labels"]
    ['cat', 'dog']
    """
    return {
        "license": _text(meta.get("license")),
        "library_name": _text(meta.get("library_name")),
        "pipeline_tag": _text(meta.get("pipeline_tag")),
        "tags": _strings(meta.get("tags"), 100),
        "datasets": _strings(meta.get("datasets"), 100),
        "metrics": _metrics(meta.get("model-index")),
        "labels": _strings(meta.get("labels"), _MAX_LIST),
    }
