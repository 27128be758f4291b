"""Names for one tensor: how a state dict shows tied weights, and how a file records them.

A model that ties weights (an embedding shared with the output layer) has one
tensor under several state-dict names. safetensors refuses to store shared
memory twice, so a saved file holds each such tensor once, under its first
name, and records every other name in its header metadata as
``{"alias": "kept"}``: the convention of huggingface_hub's
``save_torch_state_dict``, which ``transformers`` and safetensors' own loaders
ignore (they tie from the model, as zoo does too).

>>> import torch
>>> w = torch.zeros(4, 2)
>>> same_tensor_groups({"a": w, "b": w, "c": w[1:]})
[['a', 'b']]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["same_tensor_groups", "tensor_bytes", "unique_tensors"]


def _identity(t: torch.Tensor) -> tuple[Any, ...]:
    """What makes two tensors one tensor: the same memory, seen the same way.

    The storage's identity (not its address) works on ``meta`` too, where
    every tensor's address is 0.
    """
    try:
        storage: object = t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, AttributeError):  # wrapper subclasses (DTensor)
        storage = ("object", id(t))
    return (str(t.device), storage, t.storage_offset(), t.dtype, tuple(t.shape), t.stride())


def same_tensor_groups(tensors: Mapping[str, torch.Tensor]) -> list[list[str]]:
    """The names that hold one and the same tensor, grouped, each group in the mapping's order.

    Tensors that merely share memory (a view of a part of another) are not the
    same tensor. Empty tensors are never grouped.
    """
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, t in tensors.items():
        if t.numel():
            groups.setdefault(_identity(t), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def unique_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` with each tied tensor once, under its first name."""
    repeated = {name for names in same_tensor_groups(tensors) for name in names[1:]}
    return {k: t for k, t in tensors.items() if k not in repeated}


def tensor_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """The bytes of ``tensors``, a tied tensor counted once (works on ``meta``)."""
    return sum(t.numel() * t.element_size() for t in unique_tensors(tensors).values())
