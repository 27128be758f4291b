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
        )
    ]


@hookimpl
def zoo_register_weights() -> list[WeightsSpec]:
    return [
        WeightsSpec(
            model="simple_rnn",
            tag="digits",
            source="package://zoo_rnn/weights/digits",
            sha256="da2d5d01f703ddbd750af73f75a10a8617cbc406efb4f3c4ad22a7f9150c7ce7",
            summary="8x8 handwritten digits read row by row, 10 classes",
            default=True,
        )
    ]
