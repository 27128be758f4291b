"""Registers ``linear_regression`` with zoo. Imports no torch: ``zoo list`` reads this.

``linear_regression.diabetes`` ships as package data (``zoo_linear/weights/diabetes``);
refit it with ``python -m zoo_linear.training.train_diabetes`` and paste the sha256 it
prints below.
"""

from zoo_core import ModelSpec, WeightsSpec, hookimpl

# The zoo plugin API this module targets; zoo reports a mismatch instead of failing later.
ZOO_PLUGIN_API = 1


@hookimpl
def zoo_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="linear_regression",
            target="zoo_linear.model:LinearRegression",
            summary="Linear regression: one nn.Linear layer, y = xW^T + b.",
            tags=("regression", "tabular", "seed"),
            # Verified by `zoo check`; `zoo list --supports export` finds it.
            supports=("export", "onnx", "compile", "fsdp"),
        )
    ]


@hookimpl
def zoo_register_weights() -> list[WeightsSpec]:
    return [
        WeightsSpec(
            model="linear_regression",
            tag="diabetes",
            source="package://zoo_linear/weights/diabetes",
            sha256="0bfdb87f104d9d68c7c319f9c4f95095c57f010e1c79e30acf9bedfbccaaa0fc",
            summary="Diabetes progression from 10 features (scikit-learn)",
            default=True,
        )
    ]
