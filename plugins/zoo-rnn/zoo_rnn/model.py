"""SimpleRNN from the seed text, as a zoo model.

The defaults reproduce the seed's ``SimpleRNN(input_size=10, hidden_size=20,
output_size=5)`` with the same parameter names (``rnn.weight_ih_l0``, ...,
``fc.bias``); ``cell`` and ``num_layers`` generalise it.

>>> import torch
>>> SimpleRNN()(torch.randn(32, 20, 10)).shape
torch.Size([32, 5])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from zoo_core import ZooModel

_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


# The largest value of each size field that SimpleRNNConfig accepts.
_MAXIMA = {
    "input_size": 1_048_576,
    "hidden_size": 65_536,
    "output_size": 1_000_000,
    "num_layers": 1_024,
    "seq_len": 1_048_576,
}


@dataclass
class SimpleRNNConfig:
    input_size: int = field(default=10, metadata={"help": "features per time step"})
    hidden_size: int = field(default=20, metadata={"help": "size of the hidden state"})
    output_size: int = field(default=5, metadata={"help": "outputs of the linear head"})
    cell: Literal["rnn", "lstm", "gru"] = field(
        default="rnn", metadata={"help": "recurrent cell type"}
    )
    num_layers: int = field(default=1, metadata={"help": "stacked recurrent layers"})
    seq_len: int = field(default=20, metadata={"help": "time steps in example_input"})

    def __post_init__(self) -> None:
        # The maxima are far beyond any honest model of this kind: a config.json asking
        # for more is a mistake or an attack.
        for name, most in _MAXIMA.items():
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be at least 1")
            if value > most:
                raise ValueError(f"{name} must be at most {most:,}, not {value:,}")


class SimpleRNN(ZooModel):
    """A batch-first recurrent layer whose last time step feeds a linear head.

    Input: ``(batch, time, input_size)``; output: ``(batch, output_size)``.
    """

    Config = SimpleRNNConfig

    def __init__(self, config: SimpleRNNConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.rnn = _CELLS[c.cell](
            c.input_size, c.hidden_size, num_layers=c.num_layers, batch_first=True
        )
        self.fc = nn.Linear(c.hidden_size, c.output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x, ("batch", "time", self.config.input_size))
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        c = self.config
        return self.randn_like_input(batch_size, c.seq_len, c.input_size)
