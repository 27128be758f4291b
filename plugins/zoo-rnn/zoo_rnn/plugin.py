"""Registers ``simple_rnn`` with zoo. Imports no torch: ``zoo list`` reads this.

``simple_rnn.digits`` ships as package data (``zoo_rnn/weights/digits``); retrain it with
``python -m zoo_rnn.training.train_digits`` and paste the sha256 it prints below.
"""

from zoo_core import ModelSpec, WeightsSpec, hookimpl

# The zoo plugin API this module targets; zoo reports a mismatch instead of failing later.
ZOO_PLUGIN_API = 1


@hookimpl
def zoo_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="simple_rnn",
            target="zoo_rnn.model:SimpleRNN",
            summary="Sequence model: RNN, LSTM or GRU, last time step into a linear head.",
            tags=("sequence", "classification", "seed"),
            # Not "compile": torch.compile(fullgraph=True) cannot trace nn.RNN/LSTM/GRU
            # (TorchDynamo stops at them); `zoo check` would report it if that changed.
            supports=("export", "onnx", "fsdp"),
        )
    ]


@hookimpl
def zoo_register_weights() -> list[WeightsSpec]:
    return [
        WeightsSpec(
            model="simple_rnn",
            tag="digits",
            source="package://zoo_rnn/weights/digits",
            sha256="32c22e0be2f2ea55b90ea21d1e1e84e0a3de24f2f0bb56df2880c915e8de66eb",
            summary="8x8 handwritten digits read row by row, 10 classes",
            default=True,
        )
    ]
