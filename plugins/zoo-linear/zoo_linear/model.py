"""LinearRegression from the seed text, as a zoo model.

Parameter names (``linear.weight``, ``linear.bias``) equal the seed class's, so
weights trained with ``LinearRegression(input_dim, output_dim)`` load unchanged.

>>> import torch
>>> model = LinearRegression(LinearRegressionConfig(input_dim=1, output_dim=1))
>>> model(torch.randn(10, 1)).shape
torch.Size([10, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from zoo_core import ZooModel

# The largest input or output size LinearRegressionConfig accepts, and weight count.
_MAX_DIM = 1_048_576
_MAX_WEIGHTS = 2**31


@dataclass
class LinearRegressionConfig:
    input_dim: int = field(default=1, metadata={"help": "number of input features"})
    output_dim: int = field(default=1, metadata={"help": "number of outputs"})

    def __post_init__(self) -> None:
        if self.input_dim < 1 or self.output_dim < 1:
            raise ValueError("input_dim and output_dim must be at least 1")
        # Far beyond any honest linear model: a config.json asking for more is a mistake.
        for name in ("input_dim", "output_dim"):
            if getattr(self, name) > _MAX_DIM:
                raise ValueError(f"{name} must be at most {_MAX_DIM:,}")
        if self.input_dim * self.output_dim > _MAX_WEIGHTS:
            raise ValueError(
                f"input_dim x output_dim is {self.input_dim * self.output_dim:,} weights "
                f"(at most {_MAX_WEIGHTS:,})"
            )


class LinearRegression(ZooModel):
    """``y = x W^T + b`` on inputs of shape ``(batch, input_dim)``."""

    Config = LinearRegressionConfig

    def __init__(self, config: LinearRegressionConfig | None = None) -> None:
        super().__init__(config)
        self.linear = nn.Linear(self.config.input_dim, self.config.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x, ("batch", self.config.input_dim))
        return self.linear(x)

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        return self.randn_like_input(batch_size, self.config.input_dim)
