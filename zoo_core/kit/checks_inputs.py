"""Checks of inputs and sizes: wrong shapes, dtypes, devices, size variants, scalars."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from zoo_core.errors import ConfigError, ZooError
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
    try:
        with torch.no_grad():
            call_model(model, bad)
    except ZooError as err:
        return f"{input_shapes(bad)} -> {type(err).__name__}: {err}"
    except Exception as err:
        raise Failed(
            f"input {input_shapes(bad)} raised {describe_error(err)}, not a zoo error"
        ) from err
    raise Failed(f"input {input_shapes(bad)} was accepted (example_input is {input_shapes(x)})")


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

#: How far the size-variants check moves each integer field: the first of these
#: that the config accepts is used.
_SIZE_STEPS = (1, 2, -1)


def _size_variants(s: Subject) -> Iterator[tuple[str, int, int, Any]]:
    """(field, default, new value, config) for each integer field the config lets vary."""
    base = s.config()
    for f in dataclasses.fields(base):
        value = getattr(base, f.name)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        for step in _SIZE_STEPS:
            new = value + step if value > 0 else value + abs(step)
            try:
                config = s.arch.config({f.name: new}, base=base)
            except ConfigError:
                continue
            yield f.name, value, new, config
            break


@check(
    "size-variants",
    reason="users change sizes with --set; a size written as a number instead of read from "
    "the config breaks every config but the default",
    hint="compute every layer size and input shape from self.config (nn.Linear(c.in_features, "
    "...), not nn.Linear(8, ...)); the message names the field whose change broke the model",
    needs=("forward-finite", "build-meta"),
)
def _check_size_variants(s: Subject) -> str:
    tried = []
    for name, old, new, config in _size_variants(s):
        where = f"with {name}={new} (default {old})"
        try:
            model = s.build(config=config).eval()
        except Exception as err:
            raise Failed(f"{where}, building raised {describe_error(err)}") from err
        try:
            s.arch.build_meta(config)
        except Exception as err:
            raise Failed(f"{where}, building on meta raised {describe_error(err)}") from err
        x = s.example(model)
        with torch.no_grad():
            try:
                outputs = forward_tensors(model, x)
            except Failed as err:
                raise Failed(
                    f"{where}: {err}; is a size hard-coded instead of read from {name!r}?"
                ) from err
        if not_finite(outputs):
            raise Failed(f"{where}, forward gave NaN or infinity")
        tried.append(name)
    if not tried:
        return "no integer fields to vary"
    return f"builds and runs with each of {few_names(tried, 6)} changed"


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
