"""Loading saved weights into a model: build on ``meta``, check, read, assign (and fine-tune).

The step after a source is resolved (:mod:`zoo_core.sources.resolve`) and
before the model is placed: every load of saved weights, sharded loads
excepted (:mod:`zoo_core.distributed`), goes through :func:`load_weights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo_core.errors import WeightsError
from zoo_core.models.build import Architecture
from zoo_core.models.tying import assign_tensors
from zoo_core.progress import ProgressCallback
from zoo_core.storage import limits
from zoo_core.storage.weights import SavedModel, check_structure, read_tensors, structure_problems

__all__ = ["load_finetuned", "load_weights"]


def load_finetuned(
    arch: Architecture,
    config: Any,
    saved: SavedModel,
    head: Sequence[str],
    *,
    seed: int | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[nn.Module, list[str]]:
    """A model built from a changed config holding every pretrained tensor that still fits.

    Only tensors under the modules named in ``head`` (a variant's declared head,
    e.g. ``["fc"]``) may change shape; they are initialised afresh from ``seed``.
    Returns the model (eval mode) and the tensors it initialised afresh.

    Raises:
        WeightsError: the weights do not fit, or a tensor outside ``head`` changed shape.
    """
    model = arch.build(config, seed=seed, device=device)
    expected = model.state_dict()
    problems = [p for p in structure_problems(saved, expected) if not p.startswith("wrong shape")]
    if problems:
        raise WeightsError(
            f"the weights of {arch.name} in {saved.path} do not fit this config: "
            + "; ".join(problems)
        )
    changed = {}
    for key, tensor in expected.items():
        stored = saved.aliases.get(key, key)
        shape = saved.headers[saved.key_to_file[stored]].tensors[stored].shape
        if tuple(shape) != tuple(tensor.shape):
            changed[key] = f"{key} {list(shape)} -> {list(tensor.shape)}"
    head = list(head)
    outside = sorted(k for k in changed if not any(k == h or k.startswith(h + ".") for h in head))
    if outside:
        raise WeightsError(
            "these overrides change pretrained tensors outside the variant's head ("
            + (", ".join(head) or "none declared")
            + "): "
            + ", ".join(changed[k] for k in outside[:5])
            + (f" and {len(outside) - 5} more" if len(outside) > 5 else ""),
            hint="only a new class count may change a variant's shapes; to change the "
            "architecture, build the model by name without weights",
        )
    keep = [k for k in expected if k not in changed]
    tensors = read_tensors(saved, keep, device=device, dtype=dtype)
    assign_tensors(model, tensors, strict=False)
    if dtype is not None:
        model.to(dtype)  # the fresh head, in the dtype of the rest
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            module.flatten_parameters()  # assigned tensors are separate allocations
    return model.eval(), sorted(changed)


def load_weights(
    arch: Architecture,
    config: Any,
    saved: SavedModel,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: ProgressCallback | None = None,
) -> nn.Module:
    """Build on ``meta``, check the snapshot fits, read (or map) its tensors and assign them.

    No random initialisation is paid for and no second copy is made; floating
    tensors are cast to ``dtype`` one at a time. Returns the model in eval mode.

    Raises:
        WeightsError: keys, shapes or dtypes do not fit, or the config asks for
            buffers beyond the limits (see SECURITY.md).
    """
    model = arch.build_meta(config, where=saved.path)
    expected = model.state_dict()
    check_structure(saved, expected, cast=dtype is not None)
    # Measured on meta, before anything is allocated: a config read from a file must not
    # make zoo compute gigabytes that no file holds (tiny_transformer's max_len, say).
    problem = limits.buffer_problem(model, expected)
    if problem is not None:
        raise WeightsError(
            f"{saved.path}: {problem}",
            hint="the config was damaged or edited by hand; if it is genuine, raise "
            f"{limits.LIMITS['buffers'].env} (see SECURITY.md)",
        )
    tensors = read_tensors(saved, list(expected), device=device, dtype=dtype, progress=progress)
    return arch.fill(model, tensors, config, device=device, dtype=dtype)
