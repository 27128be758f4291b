"""Registers ``simple_cnn`` with zoo. Imports no torch: ``zoo list`` reads this."""

from zoo_core import ModelSpec, hookimpl

# The zoo plugin API this module targets; zoo reports a mismatch instead of failing later.
ZOO_PLUGIN_API = 1


@hookimpl
def zoo_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="simple_cnn",
            target="zoo_cnn.model:SimpleCNN",
            summary="Image classifier: conv 3x3, ReLU, 2x2 max-pool, linear head.",
            tags=("vision", "classification", "seed"),
        )
    ]
