"""SimpleCNN from the seed text, as a zoo model.

The seed hard-codes ``nn.Linear(16 * 14 * 14, 10)`` for 3x28x28 images; here
the flattened size is computed from ``channels`` and ``image_size``, and the
defaults reproduce the seed exactly (same layers, same parameter names).

>>> import torch
>>> SimpleCNN()(torch.randn(1, 3, 28, 28)).shape
torch.Size([1, 10])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from zoo_core import ZooModel

# The largest value of each size field that SimpleCNNConfig accepts, and of the classifier.
_MAXIMA = {"in_channels": 4_096, "image_size": 16_384, "channels": 4_096, "num_classes": 1_000_000}
_MAX_WEIGHTS = 2**31


@dataclass
class SimpleCNNConfig:
    in_channels: int = field(default=3, metadata={"help": "channels of the input image"})
    image_size: int = field(default=28, metadata={"help": "height and width of the input image"})
    channels: int = field(default=16, metadata={"help": "feature maps of the convolution"})
    num_classes: int = field(default=10, metadata={"help": "number of output classes"})

    def __post_init__(self) -> None:
        # The maxima are far beyond any honest model of this kind: a config.json asking
        # for more is a mistake or an attack.
        for name, most in _MAXIMA.items():
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be at least 1")
            if value > most:
                raise ValueError(f"{name} must be at most {most:,}, not {value:,}")
        if self.image_size < 2:
            raise ValueError("image_size must be at least 2 (the 2x2 pooling halves it)")
        features = self.channels * (self.image_size // 2) ** 2
        if features * self.num_classes > _MAX_WEIGHTS:
            raise ValueError(
                f"the classifier would hold {features * self.num_classes:,} weights "
                f"(at most {_MAX_WEIGHTS:,}); use fewer channels, a smaller image_size or "
                "fewer classes"
            )


class SimpleCNN(ZooModel):
    """Conv 3x3 (padding 1) -> ReLU -> max-pool 2x2 -> flatten -> linear classifier."""

    Config = SimpleCNNConfig

    def __init__(self, config: SimpleCNNConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.conv1 = nn.Conv2d(c.in_channels, c.channels, kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        pooled = c.image_size // 2
        self.fc = nn.Linear(c.channels * pooled * pooled, c.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        self.check_input(x, ("batch", c.in_channels, c.image_size, c.image_size))
        x = self.pool(self.relu(self.conv1(x)))
        x = torch.flatten(x, 1)
        return self.fc(x)

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        c = self.config
        return self.randn_like_input(batch_size, c.in_channels, c.image_size, c.image_size)
