"""Registers ``simple_rnn`` with zoo. Imports no torch: ``zoo list`` reads this."""

from zoo_core import ModelSpec, hookimpl


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
