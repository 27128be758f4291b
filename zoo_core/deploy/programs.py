"""What export, verification and benchmarks share: inputs, batch dimensions, outputs.

A model's example input is a tensor, a tuple (positional arguments) or a dict
(keyword arguments); exporters want ``(args, kwargs)`` and a matching
``dynamic_shapes``. Which dimensions are the batch is found by asking the
model for examples at two batch sizes: the dimension 0 of each tensor that
changed with it.

>>> args, kwargs = split_inputs({"x": x, "mask": mask})           # doctest: +SKIP
>>> batch_shapes(model.example_input(2), model.example_input(3))  # doctest: +SKIP
((), {'x': {0: Dim('batch', min=1)}, 'mask': {0: Dim('batch', min=1)}})
"""

from __future__ import annotations

import inspect
import io
import logging
import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any

import torch
from torch import nn

from zoo_core.errors import ExportError
from zoo_core.models.model import output_tensors

__all__ = [
    "BATCH",
    "batch_shapes",
    "compare_outputs",
    "default_tolerance",
    "flat_outputs",
    "input_names",
    "output_names",
    "quiet",
    "seeded",
    "split_inputs",
    "tensor_spec",
]

#: The name of the dynamic batch dimension, in ``dynamic_shapes`` and in ONNX input shapes.
BATCH = "batch"

# (absolute, relative to the largest eager output): what an exported program may differ
# by. Exporters reorder and fuse floating-point work; these bounds are far above the
# rounding that causes and far below any real bug.
_TOLERANCES = {
    torch.float64: (1e-10, 1e-7),
    torch.float32: (1e-5, 1e-4),
    torch.float16: (1e-3, 1e-2),
    torch.bfloat16: (1e-2, 2e-2),
}


def split_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` of an example input: a tensor, a tuple or a dict."""
    if isinstance(inputs, tuple):
        return inputs, {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    return (inputs,), {}


def batch_shapes(small: Any, large: Any) -> tuple[Any, set[str]] | None:
    """``dynamic_shapes`` marking dimension 0 as the batch where it differs between two inputs.

    ``small`` and ``large`` are example inputs at two batch sizes. Returns the
    structure ``torch.export`` takes (matching ``(args, kwargs)``) and the
    names (positions or keywords) of the batched inputs, or None when no
    tensor's first dimension followed the batch size.
    """
    dim = torch.export.Dim(BATCH, min=1)
    batched: set[str] = set()

    def spec(name: str, a: Any, b: Any) -> Any:
        if (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dim() > 0
            and a.dim() == b.dim()
            and a.shape[0] != b.shape[0]
        ):
            batched.add(name)
            return {0: dim}
        return None

    args_a, kwargs_a = split_inputs(small)
    args_b, kwargs_b = split_inputs(large)
    if len(args_a) != len(args_b) or list(kwargs_a) != list(kwargs_b):
        return None
    if kwargs_a:
        shapes: Any = {k: spec(k, kwargs_a[k], kwargs_b[k]) for k in kwargs_a}
    else:
        pairs = enumerate(zip(args_a, args_b, strict=True))
        shapes = tuple(spec(str(i), a, b) for i, (a, b) in pairs)
    return (shapes, batched) if batched else None


def input_names(model: nn.Module, inputs: Any) -> list[str]:
    """The names of a model's tensor inputs: the keywords, or ``forward``'s parameter names."""
    args, kwargs = split_inputs(inputs)
    if kwargs:
        return [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    try:
        params = [
            p
            for p in inspect.signature(model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    names = []
    for i, value in enumerate(args):
        if isinstance(value, torch.Tensor):
            names.append(params[i].name if i < len(params) else f"input_{i}")
    return names


#: The tensors of a model's output, in the order exporters flatten them.
flat_outputs = output_tensors


def output_names(value: Any) -> list[str]:
    """Names for a model's output tensors: ``output``, ``output_0, output_1, ...`` or keys."""
    if isinstance(value, torch.Tensor):
        return ["output"]
    if isinstance(value, Mapping) and all(isinstance(v, torch.Tensor) for v in value.values()):
        return [str(k) for k in value]
    return [f"output_{i}" for i in range(len(flat_outputs(value)))]


def tensor_spec(name: str, t: torch.Tensor, batched: bool) -> dict[str, Any]:
    """``{"name", "shape", "dtype"}`` of one input or output, the batch dimension as ``"batch"``."""
    shape: list[Any] = list(t.shape)
    if batched and shape:
        shape[0] = BATCH
    return {"name": name, "shape": shape, "dtype": str(t.dtype).removeprefix("torch.")}


def default_tolerance(expected: list[torch.Tensor]) -> float:
    """How far an exported program's outputs may be from eager's, by dtype and magnitude."""
    allowed = 0.0
    for t in expected:
        if not t.is_floating_point():
            continue
        atol, rtol = _TOLERANCES.get(t.dtype, _TOLERANCES[torch.float32])
        biggest = float(t.detach().abs().max()) if t.numel() else 0.0
        allowed = max(allowed, atol + rtol * biggest)
    return allowed


def compare_outputs(expected: list[torch.Tensor], got: list[Any], what: str) -> float:
    """The largest absolute difference between two output lists (``got`` may hold arrays).

    Raises:
        ExportError: different numbers of outputs, shapes or dtypes, or not finite.
    """
    if len(expected) != len(got):
        raise ExportError(f"{what} returned {len(got)} output(s); eager returned {len(expected)}")
    worst = 0.0
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        have = torch.as_tensor(have)
        if tuple(have.shape) != tuple(want.shape):
            raise ExportError(
                f"{what}: output {i} has shape {tuple(have.shape)}; eager gave {tuple(want.shape)}"
            )
        want = want.detach().cpu()
        have = have.detach().cpu()
        if not want.is_floating_point():
            if not torch.equal(want, have.to(want.dtype)):
                raise ExportError(f"{what}: output {i} ({want.dtype}) differs from eager")
            continue
        diff = float((have.double() - want.double()).abs().max()) if want.numel() else 0.0
        if math.isnan(diff):
            if torch.equal(torch.isnan(have), torch.isnan(want)):
                continue  # NaN where eager has NaN too
            raise ExportError(f"{what}: output {i} holds NaN where eager does not")
        worst = max(worst, diff)
    return worst


@contextmanager
def seeded(seed: int, model: nn.Module) -> Iterator[None]:
    """Draw from ``seed`` inside the block, leaving the caller's random state as it was
    (the CPU's, and the model's GPU's when it is on one)."""
    ref = next(model.parameters(), None)
    devices = [ref.device] if ref is not None and ref.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def quiet() -> Iterator[None]:
    """Keep torch's exporters from printing graphs, log lines and warnings while they work."""
    logging.disable(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            redirect_stderr(io.StringIO()),
            redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)
