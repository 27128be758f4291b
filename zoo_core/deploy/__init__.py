"""From zoo to production: export, capability verification and benchmarks.

These need a loaded model, so they sit above :mod:`zoo_core.api` and below
the kit (which verifies declared capabilities with them) and the command line
(``zoo export``, ``zoo bench``):

- :mod:`~zoo_core.deploy.programs`: inputs, dynamic batch dimensions, output comparison;
- :mod:`~zoo_core.deploy.diagnose`: exporter errors as zoo errors naming the failing operation;
- :mod:`~zoo_core.deploy.exporting`: ``torch.export`` (``.pt2``) and ONNX, verified;
- :mod:`~zoo_core.deploy.capabilities`: checking ``export``, ``onnx``, ``compile``,
  ``fsdp`` and ``tp`` on one model;
- :mod:`~zoo_core.deploy.bench`: eager, compiled and exported side by side.
"""
