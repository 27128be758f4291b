"""Registers ``tiny_transformer`` with zoo.

``zoo list`` imports this module, so it stays light: no torch, no model code.
The model class is named by a string and imported only when a model is built.
"""

from zoo_core import ModelSpec, hookimpl

# The zoo plugin API this module targets (zoo_core.PLUGIN_API_VERSION when it
# was written). zoo reports a mismatch clearly instead of failing later.
ZOO_PLUGIN_API = 2


@hookimpl
def zoo_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="tiny_transformer",
            target="zoo_transformer.model:TinyTransformer",
            summary="Transformer-encoder sequence classifier: embed, positions, encode, pool.",
            tags=("sequence", "classification", "transformer"),
            # Verified by `zoo check`; "tp" follows TinyTransformer.tp_plan.
            supports=("export", "onnx", "compile", "fsdp", "tp"),
        )
    ]
