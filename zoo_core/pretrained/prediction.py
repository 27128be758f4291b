"""Running a model on real inputs, with the preprocessing its weights declare.

:func:`predict` is what ``zoo predict`` runs. A variant's ``weights`` section
travels with the loaded model (``model.weights_info``); its preprocessing is
applied to raw inputs, and a classifier with labels is answered with the top-k
labels and their probabilities. Any other model's output is returned whole
(``outputs``) and summarised per input.

>>> import numpy as np, zoo_core
>>> digits = np.load("digits.npy")                  # (N, 8, 8), raw values 0-16
>>> result = zoo_core.predict("simple_cnn.digits", digits, top_k=3)   # doctest: +SKIP
>>> result.rows[0]["top_k"][0]                                          # doctest: +SKIP
{'label': '7', 'index': 7, 'probability': 0.998}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo_core.errors import UsageError
from zoo_core.pretrained.transforms import Transforms, load_input_file

__all__ = ["Prediction", "check_top_k", "predict_with", "preprocess", "transforms_of"]

# Values shown per input before the summary takes over.
_SHOWN = 10
_CHUNK = 1024


@dataclass
class Prediction:
    """What :func:`predict` found: the raw outputs and one readable row per input.

    ``rows[i]`` has ``input`` (file name or index) and either ``top_k`` (a list
    of ``{"label", "index", "probability"}``, for a classifier with labels) or
    ``shape`` and ``values`` (the first values of that input's output) plus
    ``summary`` (min, max, mean) when the output is larger than a few numbers.
    ``source`` says what was loaded (``None`` for a model passed in) and
    ``architecture`` the model it is, ``variant``
    which weights variant (qualified ``PUBLISHER:NAME.TAG``) when one was, and
    ``random_weights`` is true only when asked for (``pretrained=False``).
    """

    outputs: torch.Tensor
    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] | None = None
    source: str | None = None
    architecture: str | None = None
    variant: str | None = None
    random_weights: bool = False


def transforms_of(model: nn.Module) -> Transforms:
    """The :class:`~zoo_core.pretrained.transforms.Transforms` of a loaded model's weights.

    A model without a ``weights`` section gets the empty preprocessing (inputs
    as given, floating values as float32).
    """
    info = getattr(model, "weights_info", None) or {}
    return Transforms(info.get("preprocessing"))


def preprocess(model: nn.Module, inputs: Any) -> torch.Tensor:
    """Raw inputs (leading batch dimension) as the tensor ``model`` expects.

    The steps come from ``model.weights_info["preprocessing"]`` (a loaded
    variant or saved model with a ``weights`` section); a model without one
    gets its inputs unchanged (floating values as float32, integers as int64).

    It is :meth:`Transforms.batch` of ``transforms_of(model)`` (the same as
    ``zoo_core.get_pretrained(NAME).transforms()`` for a variant), moved to the
    model's device and floating dtype.

    >>> model = zoo_core.load_model("simple_cnn.digits")                 # doctest: +SKIP
    >>> preprocess(model, raw_digits).shape                               # doctest: +SKIP
    torch.Size([450, 1, 8, 8])
    """
    tensor = transforms_of(model).batch(inputs)
    reference = next(iter(model.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    floating = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if tensor.is_floating_point() and floating is not None:
        return tensor.to(device=device, dtype=floating)  # a model loaded in bfloat16
    return tensor.to(device)


def _read_inputs(
    files: Sequence[str | os.PathLike[str]], preprocessing: dict[str, Any] | None
) -> tuple[np.ndarray, list[str]]:
    arrays, names = [], []
    for file in files:
        array = load_input_file(file, preprocessing)
        if array.ndim < 1:
            raise UsageError(f"{file} holds a scalar; inputs need a leading batch dimension")
        arrays.append(array)
        name = Path(file).name
        names += [name] if len(array) == 1 else [f"{name}[{i}]" for i in range(len(array))]
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        raise UsageError(
            "the input files hold samples of different shapes: "
            + ", ".join(str(list(s)) for s in sorted(shapes)),
            hint="predict one kind of input per command",
        )
    return np.concatenate(arrays) if len(arrays) > 1 else arrays[0], names


def check_top_k(top_k: Any) -> None:
    """Refuse a ``top_k`` that is not a positive integer (before anything is loaded).

    Raises:
        UsageError: it is not.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise UsageError(f"top_k must be a positive integer, got {top_k!r}")


def predict_with(model: nn.Module, inputs: Any, *, top_k: int = 5) -> Prediction:
    """:func:`zoo_core.predict` on a model already loaded.

    The model runs in eval mode (dropout off, running statistics used) and is
    put back in the mode it was in.
    """
    check_top_k(top_k)
    info = getattr(model, "weights_info", None) or {}
    names: list[str] | None = None
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (str, os.PathLike)):
        inputs, names = _read_inputs(inputs, info.get("preprocessing"))
    batch = preprocess(model, inputs)
    training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            outputs = (
                torch.cat([model(chunk) for chunk in batch.split(_CHUNK)]) if len(batch) else None
            )
    finally:
        model.train(training)
    if outputs is None:
        raise UsageError("no inputs: the batch is empty")
    labels = info.get("labels")
    result = Prediction(outputs=outputs, labels=labels)
    is_classifier = labels is not None and outputs.ndim == 2 and outputs.shape[1] == len(labels)
    if is_classifier:
        probabilities = outputs.float().softmax(dim=1)
        k = min(top_k, len(labels))
        top = probabilities.topk(k, dim=1)
    for i in range(len(outputs)):
        row: dict[str, Any] = {"input": names[i] if names else i}
        if is_classifier:
            row["top_k"] = [
                {"label": labels[j], "index": j, "probability": round(float(p), 6)}
                for p, j in zip(top.values[i].tolist(), top.indices[i].tolist(), strict=True)
            ]
        else:
            row.update(_summarise(outputs[i]))
        result.rows.append(row)
    return result


def _summarise(output: torch.Tensor) -> dict[str, Any]:
    flat = output.detach().float().flatten()
    data: dict[str, Any] = {
        "shape": list(output.shape),
        "values": [round(v, 6) for v in flat[:_SHOWN].tolist()],
    }
    if flat.numel() > _SHOWN:
        data["summary"] = {
            "min": round(float(flat.min()), 6),
            "max": round(float(flat.max()), 6),
            "mean": round(float(flat.mean()), 6),
        }
    return data
