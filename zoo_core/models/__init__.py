"""Models: ``ZooModel``, typed configs, building (meta, assign, tie) and placement.

The one place that turns a registered architecture and a config into an
``nn.Module``. Uses :mod:`zoo_core.plugins` and :mod:`zoo_core.storage`.
"""
