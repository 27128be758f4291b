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
        )
    ]


@hookimpl
def zoo_register_weights() -> list[WeightsSpec]:
    return [
        WeightsSpec(
            model="linear_regression",
            tag="diabetes",
            source="package://zoo_linear/weights/diabetes",
            sha256="c8da30cfa004f7bad4f8b7558988c6689f889e98622a8783623c5806a80a2ece",
            summary="Diabetes progression from 10 features (scikit-learn)",
            default=True,
        )
    ]
