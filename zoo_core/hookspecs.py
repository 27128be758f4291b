"""The hooks a zoo plugin implements. The whole plugin contract fits here.

A plugin is a module named by an entry point in the group ``zoo``; it implements
these hooks with :data:`zoo_core.hookimpl`. It must not import torch: the hooks
are called by ``zoo list``, which has to stay instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from zoo_core.spec import ModelSpec, WeightsSpec

PROJECT_NAME = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def zoo_register_models() -> list[ModelSpec]:
    """Return the :class:`~zoo_core.ModelSpec` of each model this plugin provides."""


@hookspec
def zoo_register_weights() -> list[WeightsSpec]:
    """Return the :class:`~zoo_core.WeightsSpec` of each weights variant this plugin publishes.

    Optional. A plugin may implement only this hook to publish weights for
    another plugin's architecture (``WeightsSpec(model="zoo-cnn:simple_cnn", ...)``).
    """
