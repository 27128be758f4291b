"""TinyTransformer, a zoo model. Replace the layers with your architecture.

>>> import torch
>>> TinyTransformer()(torch.randn(4, 8)).shape
torch.Size([4, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from zoo_core import ZooModel


@dataclass
class TinyTransformerConfig:
    """Every field has a type and a default; ``--set hidden=64`` overrides one."""

    in_features: int = field(default=8, metadata={"help": "features per input row"})
    hidden: int = field(default=32, metadata={"help": "width of the hidden layer"})
    num_classes: int = field(default=2, metadata={"help": "number of output classes"})

    def __post_init__(self) -> None:
        # A ValueError here becomes a clear zoo ConfigError for the user.
        for name in ("in_features", "hidden", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class TinyTransformer(ZooModel):
    """Input ``(batch, in_features)`` -> logits ``(batch, num_classes)``."""

    Config = TinyTransformerConfig

    def __init__(self, config: TinyTransformerConfig | None = None) -> None:
        super().__init__(config)  # checks the config; self.config is a TinyTransformerConfig
        c = self.config
        # Sizes come from the config alone: zoo builds this on the meta device to
        # load weights, where tensors have shapes but no values.
        self.fc1 = nn.Linear(c.in_features, c.hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(c.hidden, c.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A wrong shape becomes an InputShapeError that says what was expected.
        self.check_input(x, ("batch", self.config.in_features))
        return self.fc2(self.act(self.fc1(x)))

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        # On the model's device and in its dtype, so casts and moves keep working.
        return self.randn_like_input(batch_size, self.config.in_features)
