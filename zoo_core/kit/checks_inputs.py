"""Checks of inputs and sizes: wrong shapes, dtypes, devices, size variants, scalars."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from zoo_core.errors import ConfigError, PluginCodeError, ZooError
from zoo_core.kit.framework import (
    Failed,
    Skipped,
    Subject,
    check,
    describe_error,
    few_names,
    forward_tensors,
    input_shapes,
    not_finite,
)
from zoo_core.kit.scaffold import PLACEHOLDER_MODEL_TEXT, PLACEHOLDER_SUMMARY
from zoo_core.models.model import call_model, input_tensors


@check(
    "wrong-shape-error",
    reason="a user's wrong input must say what shape was expected, not fail deep in a matmul",
    hint="begin forward with self.check_input(x, ('batch', ...)), which raises InputShapeError",
    needs=("forward-finite",),
)
def _check_wrong_shape(s: Subject) -> str:
    model = s.build().eval()
    x = s.example(model)
    bad = _with_first(x, lambda t: t.unsqueeze(-1))  # one trailing dimension too many
    # A class one cannot edit gets its shape declared in its spec; zoo checks it.
    hint = None if s.arch.native else _DECLARE_SHAPE
    try:
        with torch.no_grad():
            call_model(model, bad)
    except ZooError as err:
        return f"{input_shapes(bad)} -> {type(err).__name__}: {err}"
    except Exception as err:
        raise Failed(
            f"input {input_shapes(bad)} raised {describe_error(err)}, not a zoo error", hint=hint
        ) from err
    raise Failed(
        f"input {input_shapes(bad)} was accepted (example_input is {input_shapes(x)})", hint=hint
    )


_DECLARE_SHAPE = (
    "declare the input's shape in the ModelSpec and zoo checks it before forward, with no "
    "change to the class: input_shape=('batch', 'seq') for the first argument, or "
    "input_shape={'input': ('seq', 'batch')} by forward's parameter names (a field name "
    "stands for its value, any other name for a free size)"
)


def _with_first(inputs: Any, change: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``inputs`` with its first tensor changed (the others as they are)."""
    first = input_tensors(inputs)[0][0]
    if isinstance(inputs, torch.Tensor):
        return change(inputs)
    if isinstance(inputs, tuple):
        return tuple(change(t) if str(i) == first else t for i, t in enumerate(inputs))
    return {k: change(t) if k == first else t for k, t in inputs.items()}


@check(
    "dtype-casts",
    reason="zoo load --dtype float64 / bfloat16 casts the weights; forward must follow",
    hint="do not hard-code dtypes in forward (x.float(), dtype=torch.float32); keep tensors as "
    "parameters or buffers so .to() casts them; build inputs with self.randn_like_input",
    needs=("forward-finite",),
)
def _check_dtypes(s: Subject) -> str:
    if not any(t.is_floating_point() for t in s.build().state_dict().values()):
        raise Skipped("no floating-point weights to cast")
    done = []
    for dtype in (torch.float64, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        model = s.build().to(dtype).eval()
        x = s.example(model)
        for label, t in input_tensors(x):
            if t.is_floating_point() and t.dtype != dtype:
                raise Failed(f"after .to({name}), example_input {label} is {t.dtype}")
        try:
            with torch.no_grad():
                outputs = forward_tensors(model, x)
        except Failed as err:
            raise Failed(f"after .to({name}): {err}") from err
        wrong = [t.dtype for t in outputs if t.is_floating_point() and t.dtype != dtype]
        if wrong:
            raise Failed(f"after .to({name}), forward returned {wrong[0]}")
        if not_finite(outputs):
            raise Failed(f"after .to({name}), forward gave NaN or infinity")
        done.append(name)
    return " and ".join(done) + " work"


def _accelerator() -> str | None:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


@check(
    "device-move",
    reason="zoo load --device cuda moves the weights; forward must run where they are",
    hint="do not hard-code devices in forward; create new tensors with device=x.device",
    needs=("forward-finite",),
)
def _check_device_move(s: Subject) -> str:
    device = _accelerator()
    if device is None:
        raise Skipped("no GPU here")
    model = s.build().to(device).eval()
    x = s.example(model)
    for label, t in input_tensors(x):
        if t.device.type != device:
            raise Failed(f"after .to({device!r}), example_input {label} is on {t.device}")
    with torch.no_grad():
        outputs = forward_tensors(model, x)
    off = [t.device for t in outputs if t.device.type != device]
    if off:
        raise Failed(f"after .to({device!r}), forward returned a tensor on {off[0]}")
    if not_finite(outputs):
        raise Failed(f"on {device}, forward gave NaN or infinity")
    return f"builds, moves and runs on {device}"


# --- contract v2: the seed's classic mistakes ------------------------------------


def _candidates(value: int) -> list[int]:
    """Values to try for an integer field, in order: x2 and /2 keep divisibility constraints."""
    if value <= 0:
        return [value + 1, value + 2]
    steps = [value * 2, value // 2, value + 1, value - 1]
    return [v for v in dict.fromkeys(steps) if v != value and v > 0]


def _size_variants(
    s: Subject, refused: dict[str, list[str]]
) -> Iterator[tuple[str, int, int, Any, Any]]:
    """(field, default, new value, config, model) for each integer field's first value that builds.

    A value the config or the constructor refuses (an assert, a ValueError) is
    the model validating its sizes, not a bug: it is noted in ``refused`` and
    the next value is tried.
    """
    base = s.config()
    for f in dataclasses.fields(base):
        value = getattr(base, f.name)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        for new in _candidates(value):
            try:
                config = s.arch.config({f.name: new}, base=base)
                model = s.build(config=config).eval()
            except (ConfigError, PluginCodeError):
                refused.setdefault(f.name, []).append(str(new))
                continue
            yield f.name, value, new, config, model
            break


def _batch_dims(outputs: list[torch.Tensor], other: list[torch.Tensor]) -> list[tuple[bool, ...]]:
    """Per output, which dimensions change with the batch size (outputs at two batch sizes)."""
    return [
        tuple(a != b for a, b in zip(x.shape, y.shape, strict=False))
        for x, y in zip(outputs, other, strict=False)
    ]


def _shapes(outputs: list[torch.Tensor]) -> list[int]:
    return [t.dim() for t in outputs]


# Fields whose value is, by their name, an output width (a classifier's classes, a vocabulary).
_OUTPUT_FIELD = re.compile(
    r"(^|_)(n_?classes|num_classes|classes|n_?labels|num_labels|labels|vocab|vocab_size|"
    r"n_?tokens?|out_features|out_dim|output_dim|output_size|out_size|n_?outputs|num_outputs)$"
)


def _stuck_output(
    name: str, old: int, new: int, defaults: dict[str, int], before: Any, after: list[torch.Tensor]
) -> str | None:
    """The output shape if an output-width field changed and the output did not follow it.

    Only for fields named like an output width whose default value no other
    integer field shares (so the size in the output is surely theirs).
    """
    if before is None or not _OUTPUT_FIELD.search(name.lower()):
        return None
    if sum(v == old for v in defaults.values()) != 1:
        return None
    for was, now in zip(before, after, strict=False):
        if old in was and new not in now.shape and was == tuple(now.shape):
            return str(tuple(now.shape))
    return None


@check(
    "size-variants",
    reason="users change sizes with --set; a size written as a number instead of read from "
    "the config breaks every config but the default",
    hint="compute every layer size and output size from the config (nn.Linear(c.in_features, "
    "...), not a number written in the code); the message names the field whose change broke "
    "the model (sizes the constructor refuses with an assert or an error are not failures)",
    needs=("forward-finite", "build-meta"),
)
def _check_size_variants(s: Subject) -> str:
    refused: dict[str, list[str]] = {}
    tried = []
    reference = None
    base = s.config()
    defaults = {
        f.name: getattr(base, f.name)
        for f in dataclasses.fields(base)
        if isinstance(getattr(base, f.name), int) and not isinstance(getattr(base, f.name), bool)
    }
    for name, old, new, config, model in _size_variants(s, refused):
        where = f"with {name}={new} (default {old})"
        try:
            s.arch.build_meta(config)
        except Exception as err:
            raise Failed(f"{where}, building on meta raised {describe_error(err)}") from err
        with torch.no_grad():
            try:
                outputs = forward_tensors(model, s.example(model, 2))
                bigger = forward_tensors(model, s.example(model, 3))
            except Failed as err:
                raise Failed(
                    f"{where}: {err}; is a size hard-coded instead of read from {name!r}?"
                ) from err
        if not_finite(outputs):
            raise Failed(f"{where}, forward gave NaN or infinity")
        if reference is None:
            reference = _reference_batch_dims(s)
        stuck = _stuck_output(name, old, new, defaults, reference and reference[2], outputs)
        if stuck is not None:
            raise Failed(
                f"{where}, the output is still {stuck} (at batch size 2): is the output's "
                f"size hard-coded instead of read from {name!r}?"
            )
        same_ranks = reference is not None and _shapes(outputs) == reference[0]
        if same_ranks and _batch_dims(outputs, bigger) != reference[1]:  # type: ignore[index]
            raise Failed(
                f"{where}, the output's batch dimension moved (shapes "
                f"{', '.join(str(tuple(t.shape)) for t in outputs)} at batch size 2); "
                f"is a size hard-coded instead of read from {name!r}?"
            )
        tried.append(name)
    if not tried and not refused:
        return "no integer fields to vary"
    text = f"builds and runs with each of {few_names(tried, 6)} changed" if tried else ""
    fixed = [f"{k} ({', '.join(v)})" for k, v in refused.items() if k not in tried]
    if fixed:
        text += (
            ("; " if text else "") + "the model refuses every tried value of " + ", ".join(fixed)
        )
    return text


def _reference_batch_dims(
    s: Subject,
) -> tuple[list[int], list[tuple[bool, ...]], list[tuple[int, ...]]] | None:
    """For the default config: the output ranks, which output dimensions follow the batch
    size, and the output shapes at batch size 2."""
    model = s.build().eval()
    try:
        with torch.no_grad():
            two = forward_tensors(model, s.example(model, 2))
            three = forward_tensors(model, s.example(model, 3))
    except Failed:
        return None
    return _shapes(two), _batch_dims(two, three), [tuple(t.shape) for t in two]


# Tensor methods that turn tensor values into Python values inside forward. A
# tensor's truth value (if x.sum() > 0) is left to the export check, which warns.
_SCALAR_METHODS = {
    "item": ".item()",
    "tolist": ".tolist()",
    "numpy": ".numpy()",
    "__array__": "numpy (np.asarray)",
    "__float__": "float(tensor)",
    "__int__": "int(tensor)",
    "__index__": "a tensor used as a Python index",
}
# Frames of torch's own dispatch between the caller and the mode.
_DISPATCH_FILES = ("overrides.py", "_tensor.py", "_device.py", "__init__.py")


class _ScalarSpy(torch.overrides.TorchFunctionMode):
    """Records each place the model's own code pulls a Python value out of a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._torch_dir = os.path.dirname(torch.__file__)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        what = _SCALAR_METHODS.get(getattr(func, "__name__", ""))
        if what is not None:
            caller = self._direct_caller()
            if caller is not None:
                self.found.append(f"{what} at {caller}")
        return func(*args, **(kwargs or {}))

    def _direct_caller(self) -> str | None:
        """``file:line`` of the code that called the method, unless torch itself did."""
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if path == __file__:
                frame = frame.f_back
                continue
            if not path.startswith(self._torch_dir):
                return f"{os.path.basename(path)}:{frame.f_lineno}"
            if not path.endswith(_DISPATCH_FILES):
                return None  # torch's own code asked for the value: not the model's doing
            frame = frame.f_back
        return None


@check(
    "no-python-scalars",
    reason="a value pulled out of a tensor in forward (.item(), .tolist(), numpy, float(t)) "
    "stops torch.export and torch.compile, waits for the GPU, and cuts autograd",
    hint="keep the value a tensor: x * scale, not x * scale.item(); use torch functions "
    "instead of numpy; branch on the config, not on tensor values",
    needs=("forward-finite",),
)
def _check_no_python_scalars(s: Subject) -> str:
    model = s.build().eval()
    x = s.example(model)
    spy = _ScalarSpy()
    with torch.no_grad(), spy:
        call_model(model, x)
    if spy.found:
        unique = list(dict.fromkeys(spy.found))
        raise Failed(f"forward reads tensor values into Python: {few_names(unique, 3)}")
    return "forward keeps every value in tensors"


def _pad_inputs(inputs: Mapping[str, Any], key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two inputs that differ only at padded positions (the last half of each row)."""
    mask = inputs[key].clone().bool()
    steps = mask.shape[-1]
    mask[..., steps // 2 :] = False
    mask[..., 0] = True  # every row keeps a real position
    first = {**inputs, key: mask}
    second = dict(first)
    for name, t in inputs.items():
        if name == key or not isinstance(t, torch.Tensor) or t.shape[: mask.dim()] != mask.shape:
            continue
        changed = t.clone()
        if t.is_floating_point():
            changed[~mask] = t[~mask] + 1
        else:
            changed[~mask] = torch.where(t[~mask] == 0, 1, 0).to(t.dtype)
        second[name] = changed
    return first, second


@check(
    "padding-mask",
    reason="a model that takes a padding mask must ignore what sits at padded positions, "
    "or batches of different lengths give different answers",
    hint="pass the mask to every layer that mixes positions (attention: key_padding_mask) "
    "and leave padded positions out of pooling (a masked mean, not x.mean(1))",
    needs=("forward-finite",),
)
def _check_padding_mask(s: Subject) -> str:
    key = getattr(s.cls, "padding_mask_input", None)
    if not key:
        raise Skipped("the model declares no padding mask (ZooModel.padding_mask_input)")
    model = s.build().eval()
    x = s.example(model)
    if not isinstance(x, Mapping) or key not in x:
        raise Failed(f"example_input is not a dict with the declared mask {key!r}")
    first, second = _pad_inputs(x, key)
    with torch.no_grad():
        a, b = forward_tensors(model, first), forward_tensors(model, second)
    mask = first[key]
    for out_a, out_b in zip(a, b, strict=True):
        if out_a.shape[: mask.dim()] == mask.shape:
            out_a, out_b = out_a[mask], out_b[mask]  # per-position outputs: the real ones
        if not torch.allclose(out_a.float(), out_b.float(), atol=1e-5, rtol=1e-4):
            raise Failed("changing the inputs at padded positions changed the output")
    return f"values at padded positions (mask {key!r}) do not change the output"


@check(
    "scaffold-placeholders",
    reason="zoo new-plugin writes an example model and summary to be replaced; left as they "
    "are, zoo list describes the wrong model",
    hint="write your own summary in the hook module's ModelSpec and your own model "
    "(and its module docstring) in model.py",
    level="warning",
    needs=("target-class",),
)
def _check_scaffold_placeholders(s: Subject) -> str:
    if s.entry is None:
        raise Skipped("checked as a bare class, not through a plugin")
    left = []
    if PLACEHOLDER_SUMMARY in s.entry.spec.summary:
        left.append(f"the summary {s.entry.spec.summary!r}")
    module = sys.modules.get(getattr(s.cls, "__module__", ""))
    if PLACEHOLDER_MODEL_TEXT in (getattr(module, "__doc__", None) or ""):
        left.append(f"the example model's docstring in {module.__name__}")  # type: ignore[union-attr]
    if left:
        raise Failed("the scaffold's placeholders are unchanged: " + " and ".join(left))
    return "summary and model are the plugin's own"
