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
            # Verified by `zoo check`; `zoo list --supports export` finds it.
            supports=("export", "onnx", "compile", "fsdp"),
        )
    ]


@hookimpl
def zoo_register_weights() -> list[WeightsSpec]:
    return [
        WeightsSpec(
            model="simple_cnn",
            tag="digits",
            source="package://zoo_cnn/weights/digits",
            sha256="c01f9a026a3e45aac3a7a907bfd961625a0413775a35a5028beeb5e2f0f9ce2a",
            summary="8x8 handwritten digits, 10 classes (scikit-learn digits)",
            default=True,
        )
    ]
