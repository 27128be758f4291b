"""TinyTransformer, a zoo model: a small Transformer-encoder sequence classifier.

Tokens (or feature vectors) are embedded (or projected) to ``d_model``, given
sinusoidal positions, run through ``nn.TransformerEncoder`` and pooled over
time into a linear classification head.

>>> import torch
>>> TinyTransformer()(torch.randint(0, 1000, (4, 16))).shape
torch.Size([4, 2])

An optional padding ``mask`` (``(batch, time)``, True at real positions) keeps
padded positions out of attention and pooling:

>>> ids, mask = torch.randint(0, 1000, (2, 16)), torch.arange(16) < torch.tensor([[9], [16]])
>>> TinyTransformer().eval()(ids, mask=mask).shape
torch.Size([2, 2])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from zoo_core import InputShapeError, ZooModel

# The largest value of each size field that TinyTransformerConfig accepts.
_MAXIMA = {
    "vocab_size": 10_000_000,
    "in_features": 1_048_576,
    "d_model": 65_536,
    "num_heads": 1_024,
    "num_layers": 1_024,
    "dim_feedforward": 1_048_576,
    # The positional table a long max_len computes is bounded by zoo's own buffer limit.
    "max_len": 16_777_216,
    "num_classes": 1_000_000,
    "seq_len": 16_777_216,
}


@dataclass
class TinyTransformerConfig:
    """Every field has a type and a default; ``--set num_layers=4`` overrides one."""

    input_kind: Literal["tokens", "features"] = field(
        default="tokens", metadata={"help": "token ids (embedding) or feature vectors (linear)"}
    )
    vocab_size: int = field(default=1000, metadata={"help": "token ids are 0..vocab_size-1"})
    in_features: int = field(
        default=16, metadata={"help": "features per step (input_kind=features)"}
    )
    d_model: int = field(default=64, metadata={"help": "width of the encoder"})
    num_heads: int = field(default=4, metadata={"help": "attention heads; must divide d_model"})
    num_layers: int = field(default=2, metadata={"help": "encoder layers"})
    dim_feedforward: int = field(default=128, metadata={"help": "hidden size of each MLP block"})
    dropout: float = field(default=0.1, metadata={"help": "dropout probability while training"})
    max_len: int = field(default=128, metadata={"help": "longest sequence (positional table)"})
    pooling: Literal["mean", "max"] = field(default="mean", metadata={"help": "pool over time"})
    num_classes: int = field(default=2, metadata={"help": "number of output classes"})
    seq_len: int = field(default=16, metadata={"help": "time steps in example_input"})

    def __post_init__(self) -> None:
        # A ValueError here becomes a clear zoo ConfigError for the user (or, for a
        # config.json, an error naming the file). The maxima are far beyond any honest
        # model of this kind: a config.json asking for more is a mistake or an attack.
        for name, most in _MAXIMA.items():
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be at least 1")
            if value > most:
                raise ValueError(f"{name} must be at most {most:,}, not {value:,}")
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.seq_len > self.max_len:
            raise ValueError(f"seq_len ({self.seq_len}) must not exceed max_len ({self.max_len})")


def sinusoidal_positions(max_len: int, d_model: int) -> torch.Tensor:
    """The fixed positional table of "Attention Is All You Need", ``(max_len, d_model)``."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


class TinyTransformer(ZooModel):
    """Input ``(batch, time)`` token ids, or ``(batch, time, in_features)`` features
    -> logits ``(batch, num_classes)``."""

    Config = TinyTransformerConfig
    padding_mask_input = "mask"  # the kit checks that padded positions change nothing
    # Tensor parallelism (zoo_core.load_model(..., mesh=mesh, parallel="tp")): each MLP
    # block splits its hidden units, linear1 by output and linear2 by input, so the
    # pair needs one all-reduce. Attention stays replicated: nn.MultiheadAttention
    # packs q, k and v into one parameter that it uses directly, not through a Linear.
    tp_plan: ClassVar[dict[str, str]] = {
        "encoder.layers.*.linear1": "colwise",
        "encoder.layers.*.linear2": "rowwise",
    }

    def __init__(self, config: TinyTransformerConfig | None = None) -> None:
        super().__init__(config)  # checks the config; self.config is a TinyTransformerConfig
        c = self.config
        if c.input_kind == "tokens":
            self.embed: nn.Module = nn.Embedding(c.vocab_size, c.d_model)
        else:
            self.embed = nn.Linear(c.in_features, c.d_model)
        # Computed from the config, not stored in weights files: persistent=False.
        self.register_buffer(
            "positions", sinusoidal_positions(c.max_len, c.d_model), persistent=False
        )
        self.dropout = nn.Dropout(c.dropout)
        layer = nn.TransformerEncoderLayer(
            c.d_model, c.num_heads, c.dim_feedforward, c.dropout,
            batch_first=True, norm_first=True,
        )  # fmt: skip
        # Pre-norm layers cannot use nested tensors; saying so keeps torch quiet.
        self.encoder = nn.TransformerEncoder(layer, c.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if c.input_kind == "tokens":
            self.check_input(x, ("batch", "time"))
            if x.is_floating_point():
                raise InputShapeError(f"TinyTransformer expects integer token ids, got {x.dtype}")
            h = self.embed(x) * math.sqrt(c.d_model)
        else:
            self.check_input(x, ("batch", "time", c.in_features))
            h = self.embed(x)
        steps = x.shape[1]
        if steps > c.max_len:
            raise InputShapeError(f"TinyTransformer takes at most {c.max_len} steps, got {steps}")
        h = self.dropout(h + self.positions[:steps].to(h.dtype))
        if mask is None:
            h = self.encoder(h)
            pooled = h.mean(dim=1) if c.pooling == "mean" else h.amax(dim=1)
            return self.head(self.norm(pooled))
        self.check_input(mask, (x.shape[0], steps), name="mask")
        if mask.dtype != torch.bool:
            raise InputShapeError(f"TinyTransformer expects a bool mask, got {mask.dtype}")
        h = self.encoder(h, src_key_padding_mask=~mask)
        keep = mask.unsqueeze(-1)
        if c.pooling == "mean":
            count = keep.sum(dim=1).clamp(min=1).to(h.dtype)
            pooled = h.masked_fill(~keep, 0).sum(dim=1) / count
        else:
            pooled = h.masked_fill(~keep, torch.finfo(h.dtype).min).amax(dim=1)
        return self.head(self.norm(pooled))

    def example_input(self, batch_size: int = 1) -> dict[str, torch.Tensor]:
        # On the model's device (and, for features, in its dtype); rows of random
        # lengths, padded at the end, as a batch of real sequences would be.
        c = self.config
        if c.input_kind == "features":
            x = self.randn_like_input(batch_size, c.seq_len, c.in_features)
        else:
            x = self.randint_like_input(c.vocab_size, batch_size, c.seq_len)
        lengths = self.randint_like_input(c.seq_len, batch_size, 1) + 1
        mask = torch.arange(c.seq_len, device=self.device) < lengths
        return {"x": x, "mask": mask}
