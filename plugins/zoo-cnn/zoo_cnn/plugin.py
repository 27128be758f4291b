"""Registers ``simple_cnn`` with zoo. Imports no torch: ``zoo list`` reads this.

``simple_cnn.digits`` ships as package data (``zoo_cnn/weights/digits``); retrain it with
``python -m zoo_cnn.training.train_digits`` and paste the sha256 it prints below.
"""

from zoo_core import ModelSpec, WeightsSpec, hookimpl

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


@hookimpl
def zoo_register_weights() -> list[WeightsSpec]:
    return [
        WeightsSpec(
            model="simple_cnn",
            tag="digits",
            source="package://zoo_cnn/weights/digits",
            sha256="7b141e0cde5d1c1ca95826b98ae3667b91019988d50a4c8b0c73a8c5e226658c",
            summary="8x8 handwritten digits, 10 classes (scikit-learn digits)",
            default=True,
        )
    ]
