"""Registers ``simple_rnn`` with zoo. Imports no torch: ``zoo list`` reads this."""

from zoo_core import ModelSpec, hookimpl

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
