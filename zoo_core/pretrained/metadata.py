"""The ``weights`` section of a variant's ``config.json``: what the weights are and need.

A weights variant is an ordinary saved zoo model whose ``config.json`` has one
more top-level key, ``weights``, written by ``save_model(model, dir,
weights={...})``. Every key is optional except ``tag``::

    "weights": {
      "tag": "digits",                         # lower case, no dot
      "summary": "8x8 handwritten digits",
      "task": "classification",                # or "regression", ...
      "dataset": {"name": "...", "url": "...", "license": "...",
                  "train_split": "rows 0-1346", "test_split": "rows 1347-1796"},
      "metrics": [{"name": "accuracy", "value": 0.97, "split": "test"}],
      "labels": ["0", "1", ...],               # class index -> label
      "head": ["fc"],                          # modules re-initialised for a new num_classes
      "preprocessing": {
        "layout": "NCHW",                      # documents the batch layout
        "reshape": [1, 8, 8],                  # each sample is reshaped to this
        "dtype": "float32",
        "scale": 0.0625,                       # x * scale, then
        "mean": [0.3], "std": [0.4],           # (x - mean) / std, per channel
        "image": {"mode": "L", "resize": 8, "crop": 8, "invert": true, "max_value": 16}
      },
      "license": "CC-BY-4.0",
      "training": {"script": "...", "command": "...", "seed": 0, "recipe": "...", "url": "..."},
      "cost": {"parameters": 5450, "flops_per_sample": 104960},  # written by save_model
      "base": {"name": "simple_cnn.digits", "publisher": "zoo-cnn",
               "sha256": "05af...", "source": "package://zoo_cnn/weights/digits"}
    }

``base`` records where derived weights came from: the variant (or Hub
model) they were fine-tuned or trained further from, with the sha256 of its
``config.json`` (the pin, which covers every weight file). ``save_model``
writes it for a model whose weights changed since they were loaded.

``head`` lists the modules a new class count may replace: ``create_model(
"simple_cnn.digits", num_classes=5)`` re-initialises the tensors under them
whose shapes changed and keeps every other tensor; a shape change anywhere
else is an error.

``image`` says how an image file becomes the raw array the data set stores:
convert to ``mode`` (``L`` grey or ``RGB``), resize the shorter side to
``resize`` pixels, centre-crop to ``crop``, scale 0-255 to ``0..max_value``
(``invert`` first flips dark and light); then the array steps above apply.
The first metric is the headline ``zoo list --pretrained`` shows.

``cost`` is not written by hand: ``save_model(..., weights=...)`` counts the
parameters and the FLOPs of one sample of the model's example input (as
``torch.utils.flop_counter.FlopCounterMode`` counts them, a multiply-add being
2) when the variant is published, so that ``zoo list --pretrained`` can show
them without importing torch.

``config.json`` is untrusted input: :func:`check_weights_section` checks every
type and size before anything else reads the section. Nothing here imports torch.

>>> section = check_weights_section({"tag": "digits", "labels": ["0", "1"]}, "config.json")
>>> section["labels"]
['0', '1']
"""

from __future__ import annotations

import math
import re
from typing import Any

from zoo_core.errors import WeightsError

__all__ = [
    "MAX_LABELS",
    "TAG_PATTERN",
    "card_metadata",
    "check_weights_section",
    "headline_metric",
    "plain_text",
]

TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_\-]*\Z")
#: Limits on what an untrusted section may hold (far above any real variant).
MAX_LABELS = 100_000
_MAX_TEXT = 2_000
_MAX_METRICS = 100
_MAX_DIMS = 8
_LAYOUT = re.compile(r"[A-Z]{1,8}\Z")
_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32")
_IMAGE_MODES = ("L", "RGB")
_MODULE = re.compile(r"[A-Za-z_0-9]+(?:\.[A-Za-z_0-9]+)*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain_text(value: str, limit: int = 200) -> str:
    """Untrusted text made safe to print on one line: no control characters, bounded length.

    >>> plain_text("evil\\x1b[2Jname\\n")
    'evil?[2Jname?'
    """
    text = _CONTROL.sub("?", value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, what: str) -> WeightsError:
        return WeightsError(
            f"{self.where}: weights.{key} {what}",
            hint="the variant's config.json is malformed; see 'Pretrained weights' in the README",
        )

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or len(value) > _MAX_TEXT:
            raise self.fail(key, f"must be a string of at most {_MAX_TEXT} characters")
        return value

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, "must be a number")
        if not math.isfinite(value):
            raise self.fail(key, "must be finite")
        return value

    def positive_int(self, value: Any, key: str, *, limit: int = 1_000_000) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise self.fail(key, f"must be an integer from 1 to {limit}")
        return value

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a JSON object")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.fail(key, f"has unknown keys: {plain_text(', '.join(unknown[:5]), 120)}")
        return value

    def texts(self, value: dict[str, Any], key: str) -> dict[str, str]:
        return {k: self.text(v, f"{key}.{k}") for k, v in value.items()}

    def per_channel(self, value: Any, key: str, *, positive: bool = False) -> list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > 4096:
            raise self.fail(key, "must be a number or a list of 1 to 4096 numbers")
        out = [self.number(v, key) for v in values]
        if positive and not all(v > 0 for v in out):
            raise self.fail(key, "must be positive")
        return out


_TOP = (
    "tag",
    "summary",
    "task",
    "dataset",
    "metrics",
    "labels",
    "head",
    "preprocessing",
    "license",
    "training",
    "cost",
    "base",
)
_COST = ("parameters", "flops_per_sample")
_MAX_COUNT = 2**63 - 1
_BASE = ("name", "publisher", "sha256", "source")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_DATASET = ("name", "url", "license", "train_split", "test_split", "revision")
_TRAINING = ("script", "command", "seed", "recipe", "url")
_PREPROCESSING = ("layout", "reshape", "dtype", "scale", "mean", "std", "image")
_IMAGE = ("mode", "resize", "crop", "invert", "max_value")


def check_weights_section(section: Any, where: str) -> dict[str, Any]:
    """Check a ``weights`` section (from a file or a caller) and return it normalised.

    ``mean`` and ``std`` become lists; everything else is returned as given.

    Raises:
        WeightsError: a key is unknown, or a value has the wrong type or size.
    """
    c = _Checker(where)
    data = dict(c.mapping(section, "", _TOP))
    if "tag" not in data:
        raise c.fail("tag", "is missing")
    tag = c.text(data["tag"], "tag")
    if not TAG_PATTERN.match(tag):
        raise c.fail("tag", "must be lower case letters, digits, '_' or '-' (no dot)")
    for key in ("summary", "task", "license"):
        if key in data:
            c.text(data[key], key)
    if "dataset" in data:
        c.texts(c.mapping(data["dataset"], "dataset", _DATASET), "dataset")
    if "training" in data:
        training = c.mapping(data["training"], "training", _TRAINING)
        seed = training.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise c.fail("training.seed", "must be an integer")
        c.texts({k: v for k, v in training.items() if k != "seed"}, "training")
    if "metrics" in data:
        metrics = data["metrics"]
        if not isinstance(metrics, list) or len(metrics) > _MAX_METRICS:
            raise c.fail("metrics", f"must be a list of at most {_MAX_METRICS} objects")
        for i, metric in enumerate(metrics):
            m = c.mapping(metric, f"metrics[{i}]", ("name", "value", "split"))
            if "name" not in m or "value" not in m:
                raise c.fail(f"metrics[{i}]", "needs a name and a value")
            c.text(m["name"], f"metrics[{i}].name")
            c.number(m["value"], f"metrics[{i}].value")
            if "split" in m:
                c.text(m["split"], f"metrics[{i}].split")
    if "labels" in data:
        labels = data["labels"]
        if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_LABELS:
            raise c.fail("labels", f"must be a list of 1 to {MAX_LABELS} strings")
        for label in labels:
            c.text(label, "labels")
    if "head" in data:
        head = data["head"]
        if not isinstance(head, list) or len(head) > 64:
            raise c.fail("head", "must be a list of at most 64 module names")
        for module in head:
            if not _MODULE.match(c.text(module, "head")):
                raise c.fail("head", "must hold module names like 'fc' or 'classifier.1'")
    if "preprocessing" in data:
        data["preprocessing"] = _check_preprocessing(c, data["preprocessing"])
    if "cost" in data:
        for key, value in c.mapping(data["cost"], "cost", _COST).items():
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not whole or not 0 <= value <= _MAX_COUNT:
                raise c.fail(f"cost.{key}", "must be a non-negative integer")
    if "base" in data:
        base = c.texts(c.mapping(data["base"], "base", _BASE), "base")
        if "name" not in base or not _SHA256.match(base.get("sha256", "")):
            raise c.fail("base", "needs a name and the sha256 (64 hex digits) of its config.json")
    return data


def _check_preprocessing(c: _Checker, value: Any) -> dict[str, Any]:
    pre = dict(c.mapping(value, "preprocessing", _PREPROCESSING))
    if "layout" in pre and not (
        isinstance(pre["layout"], str) and _LAYOUT.match(pre["layout"]) and pre["layout"][0] == "N"
    ):
        raise c.fail("preprocessing.layout", "must be capital letters starting with N, like NCHW")
    if "reshape" in pre:
        shape = pre["reshape"]
        if not isinstance(shape, list) or not 1 <= len(shape) <= _MAX_DIMS:
            raise c.fail("preprocessing.reshape", f"must be a list of 1 to {_MAX_DIMS} sizes")
        for size in shape:
            c.positive_int(size, "preprocessing.reshape")
    if "dtype" in pre and pre["dtype"] not in _DTYPES:
        raise c.fail("preprocessing.dtype", f"must be one of {', '.join(_DTYPES)}")
    if "scale" in pre:
        c.number(pre["scale"], "preprocessing.scale")
    if "mean" in pre:
        pre["mean"] = c.per_channel(pre["mean"], "preprocessing.mean")
    if "std" in pre:
        pre["std"] = c.per_channel(pre["std"], "preprocessing.std", positive=True)
    if "image" in pre:
        image = c.mapping(pre["image"], "preprocessing.image", _IMAGE)
        if image.get("mode", "RGB") not in _IMAGE_MODES:
            raise c.fail("preprocessing.image.mode", "must be 'L' or 'RGB'")
        for key in ("resize", "crop"):
            if key in image:
                c.positive_int(image[key], f"preprocessing.image.{key}", limit=16_384)
        if not isinstance(image.get("invert", False), bool):
            raise c.fail("preprocessing.image.invert", "must be true or false")
        if "max_value" in image:
            c.number(image["max_value"], "preprocessing.image.max_value")
    return pre


def headline_metric(section: dict[str, Any]) -> str | None:
    """The first metric as ``'accuracy 0.9733 (test)'``, for tables.

    >>> headline_metric({"metrics": [{"name": "r2", "value": 0.51, "split": "test"}]})
    'r2 0.51 (test)'
    """
    metrics = section.get("metrics") or []
    if not metrics:
        return None
    m = metrics[0]
    split = f" ({plain_text(m['split'], 40)})" if m.get("split") else ""
    return f"{plain_text(m['name'], 40)} {m['value']:.4g}{split}"


_DATASET_TYPE = re.compile(r"[^a-z0-9]+")


def card_metadata(section: dict[str, Any], model_name: str) -> dict[str, Any]:
    """Model-card metadata from a checked ``weights`` section: license, labels, ``model-index``.

    The Hub reads ``model-index`` as evaluation results (one per metric, with
    its split); ``license`` is the Hub's lower-case identifier.

    >>> meta = card_metadata({"tag": "d", "license": "MIT", "labels": ["0", "1"]}, "cnn")
    >>> meta["license"], meta["labels"]
    ('mit', ['0', '1'])
    """
    meta: dict[str, Any] = {}
    if section.get("license"):
        meta["license"] = plain_text(section["license"], 100).lower()
    if section.get("labels"):
        meta["labels"] = [plain_text(label, 200) for label in section["labels"]]
    dataset = section.get("dataset") or {}
    name = plain_text(dataset.get("name", "unknown"), 200)
    results = []
    for metric in section.get("metrics") or []:
        data = {"name": name, "type": _DATASET_TYPE.sub("-", name.lower()).strip("-") or "unknown"}
        if metric.get("split"):
            data["split"] = plain_text(metric["split"], 100)
        results.append(
            {
                "task": {"type": plain_text(section.get("task", "other"), 100)},
                "dataset": data,
                "metrics": [
                    {
                        "type": plain_text(metric["name"], 100),
                        "value": metric["value"],
                        "name": plain_text(metric["name"], 100),
                    }
                ],
            }
        )
    if results:
        meta["model-index"] = [{"name": model_name, "results": results}]
    base = section.get("base") or {}
    source = base.get("source") or base.get("name") or ""
    if source.startswith("hf://"):
        # The Hub links a model to the one it was fine-tuned from by this field.
        meta["base_model"] = plain_text(source.removeprefix("hf://").partition("@")[0], 200)
    return meta
