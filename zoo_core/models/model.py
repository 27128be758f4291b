"""The model contract: :class:`ZooModel`, an ``nn.Module`` with a typed config.

A zoo model builds its layers in ``__init__(self, config)`` and moves data only
in ``forward`` (work done outside ``forward`` is invisible to autograd). Its
``Config`` is a dataclass of typed fields with defaults, and ``example_input``
returns what ``forward`` accepts: a tensor, a tuple (positional arguments) or a
dict (keyword arguments); :func:`call_model` calls a model with either.

>>> from dataclasses import dataclass
>>> import torch
>>> from torch import nn
>>> from zoo_core import ZooModel
>>> @dataclass
... class LinearConfig:
...     input_dim: int = 1
...     output_dim: int = 1
>>> class Linear(ZooModel):
...     Config = LinearConfig
...     def __init__(self, config=None):
...         super().__init__(config)
...         self.linear = nn.Linear(self.config.input_dim, self.config.output_dim)
...     def forward(self, x):
...         self.check_input(x, ("batch", self.config.input_dim))
...         return self.linear(x)
...     def example_input(self, batch_size=1):
...         return self.randn_like_input(batch_size, self.config.input_dim)
>>> Linear(LinearConfig(input_dim=3))(torch.ones(2, 3)).shape
torch.Size([2, 1])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from zoo_core.errors import InputShapeError
from zoo_core.models.config import build_config, config_from_dict

__all__ = ["ZooModel", "call_model", "input_tensors", "output_tensors"]

#: What ``example_input`` returns: one tensor, positional arguments or keyword arguments.
Inputs = Any


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """Call ``model`` with ``inputs`` as ``example_input`` gives them.

    A tensor is the one argument, a tuple the positional arguments, a dict the
    keyword arguments.

    >>> call_model(model, model.example_input(2))          # doctest: +SKIP
    >>> call_model(model, {"ids": ids, "mask": mask})      # doctest: +SKIP
    """
    if isinstance(inputs, tuple):
        return model(*inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def input_tensors(inputs: Inputs) -> list[tuple[str, torch.Tensor]]:
    """The tensors of a model's inputs with their names (``"0"``, ``"1"`` or the keywords)."""
    if isinstance(inputs, torch.Tensor):
        return [("input", inputs)]
    if isinstance(inputs, tuple):
        return [(str(i), t) for i, t in enumerate(inputs) if isinstance(t, torch.Tensor)]
    if isinstance(inputs, Mapping):
        return [(str(k), t) for k, t in inputs.items() if isinstance(t, torch.Tensor)]
    return []


def output_tensors(output: Any) -> list[torch.Tensor]:
    """The tensors of a model's output, in ``torch.utils._pytree``'s order (what exporters use):
    a tensor, or tensors in (nested) tuples, lists and dicts."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in output_tensors(item)]
    if isinstance(output, Mapping):
        return [t for item in output.values() for t in output_tensors(item)]
    return []


class ZooModel(nn.Module):
    """Base class of every zoo architecture.

    Subclasses set ``Config`` to a dataclass and implement ``forward`` and
    ``example_input``. ``__init__`` accepts a ``Config`` instance, a mapping of
    field values (checked against the field types) or nothing (the defaults).
    """

    Config: ClassVar[type[Any]]
    #: The keyword argument of ``forward`` that holds a padding mask (True where a
    #: position is real), when the model takes one; the kit then checks that
    #: padded positions do not change the output for the others.
    padding_mask_input: ClassVar[str | None] = None
    config: Any
    #: The ``weights`` section (tag, metrics, labels, preprocessing, license) of the
    #: variant or saved model this model was loaded from; None for a fresh model.
    #: ``save_model`` writes it back (see :mod:`zoo_core.pretrained.carry`).
    weights_info: dict[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("Config")
        if own is not None and not dataclasses.is_dataclass(own):
            raise TypeError(f"{cls.__qualname__}.Config must be a dataclass")

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        cls = type(self)
        if not hasattr(cls, "Config"):
            raise TypeError(f"{cls.__qualname__} must define a Config dataclass")
        if config is None:
            config = build_config(cls.Config)
        elif isinstance(config, Mapping):
            config = config_from_dict(cls.Config, config)
        elif not isinstance(config, cls.Config):
            raise TypeError(
                f"{cls.__qualname__} expects a {cls.Config.__qualname__}, "
                f"got {type(config).__name__}"
            )
        self.config = config

    def example_input(self, batch_size: int = 1) -> Inputs:
        """A batch that ``forward`` accepts, on the model's device (for smoke tests).

        A tensor, a tuple of positional arguments or a dict of keyword arguments.
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement example_input")

    # Helpers for subclasses -------------------------------------------------

    def _reference_tensor(self) -> torch.Tensor | None:
        ref = next(self.parameters(), None)
        return ref if ref is not None else next(self.buffers(), None)

    @property
    def device(self) -> torch.device:
        """Where the model's weights live (``cpu`` for a model with none)."""
        ref = self._reference_tensor()
        return ref.device if ref is not None else torch.device("cpu")

    def randn_like_input(self, *shape: int) -> torch.Tensor:
        """Random normal input of ``shape`` on the model's device, in its floating dtype."""
        ref = self._reference_tensor()
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        return torch.randn(*shape, device=self.device, dtype=dtype)

    def randint_like_input(self, high: int, *shape: int) -> torch.Tensor:
        """Random integers in ``[0, high)`` (token ids, class labels) on the model's device.

        >>> model.randint_like_input(vocab_size, batch_size, seq_len)   # doctest: +SKIP
        """
        return torch.randint(0, high, shape, device=self.device)

    def check_input(
        self, x: Any, expected: Sequence[int | str | None], *, name: str = "input"
    ) -> None:
        """Raise :class:`~zoo_core.errors.InputShapeError` unless ``x`` has shape ``expected``.

        ``expected`` lists each dimension: an int must match exactly; a string
        (``"batch"``) or ``None`` matches any size and only names the dimension.
        """
        if not isinstance(x, torch.Tensor):
            raise InputShapeError(
                f"{type(self).__qualname__} expects a tensor as {name}, got {type(x).__name__}"
            )
        shape = tuple(x.shape)
        ok = len(shape) == len(expected) and all(
            not isinstance(want, int) or got == want
            for got, want in zip(shape, expected, strict=False)
        )
        if not ok:
            want_text = ", ".join("*" if d is None else str(d) for d in expected)
            raise InputShapeError(
                f"{type(self).__qualname__} expects {name} of shape ({want_text}), "
                f"got {tuple(shape)}"
            )

    @property
    def num_parameters(self) -> int:
        """Number of parameter elements (works on the ``meta`` device too)."""
        return sum(p.numel() for p in self.parameters())
