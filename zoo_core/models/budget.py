"""A budget on the work of building a model on ``meta`` from a config zoo did not write.

Building on ``meta`` allocates no memory for tensors, but a constructor still
runs: a ``config.json`` of 500 bytes asking a plugin for ``num_layers=200000``
made ``zoo info`` run for 287 s and take 8.6 GB before anything was read. Every
build on ``meta`` (``zoo info``, ``hf://`` descriptions, every load) runs under
:func:`meta_budget`: it counts the tensors the constructor creates and stops it
once they pass ``ZOO_MAX_TENSORS`` (a model with more tensors than zoo reads
from files could not be loaded anyway), or once it has run ``ZOO_MAX_BUILD_SECONDS``.

>>> with meta_budget("tiny_transformer"), torch.device("meta"):      # doctest: +SKIP
...     model = TinyTransformer(config)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch.overrides import TorchFunctionMode

from zoo_core.errors import ZooError
from zoo_core.storage import limits

__all__ = ["BuildBudgetExceeded", "meta_budget"]

# The torch functions that make a new tensor (a parameter's torch.empty, deepcopy's clone).
_CREATORS = frozenset(
    {
        "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like",
        "full", "full_like", "rand", "rand_like", "randn", "randn_like", "randint", "tensor",
        "arange", "linspace", "clone", "new_empty", "new_zeros", "new_ones", "new_full",
        "new_tensor",
    }
)  # fmt: skip


class BuildBudgetExceeded(ZooError):
    """Building a model on ``meta`` went past the tensor or time budget (see the module)."""


class _Budget(TorchFunctionMode):
    def __init__(self, max_tensors: int, deadline: float) -> None:
        super().__init__()
        self.max_tensors = max_tensors
        self.deadline = deadline
        self.created = 0
        self.over: str | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in _CREATORS:
            self.created += 1
            if self.created > self.max_tensors:
                self.over = "tensors"
        if self.over is None and time.monotonic() > self.deadline:
            self.over = "seconds"
        if self.over is not None:
            raise BuildBudgetExceeded(self.over)  # raised again if the constructor swallows it
        return out


@contextmanager
def meta_budget(name: str, where: object = None) -> Iterator[None]:
    """Stop a ``meta`` build of ``name`` past the tensor or time budget.

    ``where`` names the file the config came from, for the message.

    Raises:
        BuildBudgetExceeded: with a message naming the limit and how to raise it.
    """
    tensors = limits.LIMITS["tensors"]
    seconds = limits.LIMITS["build_seconds"]
    budget = _Budget(int(tensors()), time.monotonic() + seconds())
    try:
        with budget:
            yield
    except BuildBudgetExceeded:
        if budget.over is None:
            raise
    if budget.over is None:
        return
    source = f"{where}: " if where is not None else ""
    if budget.over == "tensors":
        what = f"made over {int(tensors())} tensors ({tensors.env})"
        env = tensors.env
    else:
        what = f"took over {seconds():g} s ({seconds.env})"
        env = seconds.env
    raise BuildBudgetExceeded(
        f"{source}building {name} from its config {what}; zoo stopped it",
        hint=f"the config asks for an absurd size; if it is genuine, raise {env} (see SECURITY.md)",
    )
