"""Turning the words users type for devices and dtypes into torch objects.

>>> parse_dtype("bf16")
torch.bfloat16
>>> parse_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import torch

from zoo_core.errors import DeviceError, UsageError

__all__ = ["DTYPE_NAMES", "parse_device", "parse_dtype"]

DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
    "fp64": torch.float64,
    "double": torch.float64,
}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A floating dtype from a ``torch.dtype`` or a word (``float32``, ``bf16``, ``torch.half``).

    Raises:
        UsageError: the word names no floating dtype zoo can cast weights to.
    """
    if dtype is None or isinstance(dtype, torch.dtype):
        if isinstance(dtype, torch.dtype) and not dtype.is_floating_point:
            raise UsageError(f"dtype {dtype} is not a floating-point dtype")
        return dtype
    word = str(dtype).strip().lower().removeprefix("torch.")
    try:
        return DTYPE_NAMES[word]
    except KeyError:
        raise UsageError(
            f"unknown dtype {dtype!r}",
            hint="use one of float32, float16, bfloat16, float64 (or fp32, fp16, bf16, fp64)",
        ) from None


def parse_device(device: str | torch.device | None) -> torch.device | None:
    """A device that exists here, from a ``torch.device`` or a word (``cpu``, ``cuda:1``).

    Raises:
        UsageError: the word is not a device name.
        DeviceError: the device does not exist on this machine.
    """
    if device is None:
        return None
    if not isinstance(device, torch.device):
        try:
            device = torch.device(str(device).strip())
        except (RuntimeError, ValueError):
            raise UsageError(
                f"unknown device {device!r}", hint="use cpu, cuda, cuda:N or mps"
            ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(device)!r} was asked for, but CUDA is not available here "
                f"(torch {torch.__version__})",
                hint="use --device cpu, or install a CUDA build of torch on a machine with a GPU",
            )
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device cuda:{index} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        device = torch.device("cuda", index)
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' was asked for, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps", "meta"):
        raise DeviceError(f"device type {device.type!r} is not supported by zoo")
    return device
