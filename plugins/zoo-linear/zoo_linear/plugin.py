"""Registers ``linear_regression`` with zoo. Imports no torch: ``zoo list`` reads this."""

from zoo_core import ModelSpec, hookimpl

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
