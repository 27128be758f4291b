"""What a model costs to run: parameters and FLOPs per sample.

FLOPs are counted the way ``torch.utils.flop_counter.FlopCounterMode`` counts
them (a multiply-add is 2 FLOPs; matrix products and convolutions are counted,
element-wise work and operators without a formula are not) on the model's
example input of one sample. The count needs shapes only, so it runs on a
model built on the ``meta`` device: nothing is allocated or computed, and
large models cost nothing to describe. On ``meta``, attention runs as the
matrix products it is made of and is counted; on a CPU tensor
``scaled_dot_product_attention`` takes a fused kernel that ``FlopCounterMode``
has no formula for, so counting there misses attention.

>>> from zoo_core.models.build import Architecture
>>> from zoo_core.models.cost import model_cost
>>> arch = Architecture.named("simple_cnn")                  # doctest: +SKIP
>>> model_cost(arch, arch.config())                          # doctest: +SKIP
{'parameters': 31818, 'flops_per_sample': 740096}
"""

from __future__ import annotations

import io
import logging
from contextlib import redirect_stdout
from typing import Any

import torch
from torch import nn

from zoo_core.models.model import call_model

__all__ = ["count_flops", "model_cost"]


def count_flops(model: nn.Module, inputs: Any) -> int:
    """FLOPs of one forward pass of ``model`` on ``inputs``, as ``FlopCounterMode`` counts them.

    >>> count_flops(model, model.example_input(1))           # doctest: +SKIP
    1382400
    """
    from torch.utils.flop_counter import FlopCounterMode

    # display=False still logs nothing; the redirect keeps a model's prints off --json output.
    with redirect_stdout(io.StringIO()), torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            call_model(model, inputs)
    return int(counter.get_total_flops())


def model_cost(arch: Any, config: Any) -> dict[str, int | None]:
    """``{"parameters": ..., "flops_per_sample": ...}`` of ``arch`` built with ``config``.

    ``arch`` is an :class:`~zoo_core.models.build.Architecture`; the model is
    built on ``meta``. A value is None when it cannot be found that way (a
    model that reads tensor values cannot run on ``meta``).
    """
    try:
        model = arch.build_meta(config)
    except Exception:
        return {"parameters": None, "flops_per_sample": None}
    parameters = sum(p.numel() for p in model.parameters())
    try:
        with torch.device("meta"):
            inputs = arch.example_input(model, 1)
        flops: int | None = count_flops(model, inputs)
    except Exception:
        # Counting is information, never a reason to fail a save or an info.
        logging.getLogger(__name__).debug("cannot count FLOPs", exc_info=True)
        flops = None
    return {"parameters": parameters, "flops_per_sample": flops}
