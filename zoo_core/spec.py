"""What a plugin's hook module imports: :class:`ModelSpec` and :data:`hookimpl`.

This module must stay free of torch so that ``zoo list`` never pays for it.

>>> from zoo_core import ModelSpec, hookimpl
>>> @hookimpl
... def zoo_register_models():
...     return [ModelSpec("simple_cnn", "zoo_cnn.model:SimpleCNN", "A tiny CNN.", ("vision",))]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zoo_core.hookspecs import hookimpl

__all__ = ["ModelSpec", "hookimpl"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]*\Z")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")


@dataclass(frozen=True)
class ModelSpec:
    """How a plugin announces one model, without importing it.

    Args:
        name: the model's name, lower case (``"simple_cnn"``); users type it.
        target: where the :class:`~zoo_core.ZooModel` subclass lives, as
            ``"package.module:ClassName"``; imported only when the model is built.
        summary: one line for ``zoo list``.
        tags: free-form labels (``"vision"``, ``"classification"``).
    """

    name: str
    target: str
    summary: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Plugins are third-party code: check what they hand us here, so that a
        # bad spec marks its plugin broken instead of failing later in a command.
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"model name {self.name!r} must be lower case letters, digits, '_', '-' or '.'"
            )
        if not isinstance(self.target, str) or not _TARGET.match(self.target):
            raise ValueError(f"target {self.target!r} must look like 'package.module:ClassName'")
        if not isinstance(self.summary, str):
            raise ValueError(f"summary of {self.name!r} must be a string")
        if isinstance(self.tags, str) or not all(isinstance(t, str) for t in self.tags):
            raise ValueError(f"tags of {self.name!r} must be a sequence of strings")
        object.__setattr__(self, "tags", tuple(self.tags))
