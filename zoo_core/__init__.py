"""zoo: a plugin-based model zoo for PyTorch.

>>> import zoo_core
>>> zoo_core.list_models("simple_*")                           # doctest: +SKIP
['simple_cnn', 'simple_rnn']
>>> model = zoo_core.create_model("simple_cnn", num_classes=5)  # doctest: +SKIP
>>> zoo_core.save_model(model, "cnn/")                          # doctest: +SKIP
>>> model = zoo_core.load_model("cnn/", device="cpu")           # doctest: +SKIP

Importing this package is cheap: torch-backed names (``ZooModel``,
``create_model``, ...) are imported on first use, so ``zoo list`` and plugin
hook modules never pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zoo_core.errors import (
    AmbiguousModelError,
    ConfigError,
    DeviceError,
    DistributedError,
    ExportError,
    HubError,
    InputShapeError,
    MissingDependencyError,
    ModelNotFoundError,
    PluginCodeError,
    PluginError,
    PluginNotInstalledError,
    SourceNotFoundError,
    UsageError,
    WeightsError,
    ZooError,
    ZooWarning,
)
from zoo_core.plugins.contract import PLUGIN_API_VERSION, ModelSpec, WeightsSpec, hookimpl
from zoo_core.plugins.registry import get_registry
from zoo_core.pretrained.catalogue import list_models
from zoo_core.version import __version__

# Public names that need torch, and the module each lives in.
_LAZY = {
    "ZooModel": "zoo_core.models.model",
    "call_model": "zoo_core.models.model",
    "create_model": "zoo_core.api",
    "save_model": "zoo_core.api",
    "load_model": "zoo_core.api",
    "push_to_hub": "zoo_core.api",
    "pull": "zoo_core.hub.download",
    "predict": "zoo_core.api",
    "preprocess": "zoo_core.pretrained.prediction",
    "Transforms": "zoo_core.pretrained.transforms",
    # Not torch-backed either: reading a variant's record needs JSON and headers only.
    "get_pretrained": "zoo_core.sources.variant",
    "PretrainedInfo": "zoo_core.pretrained.info",
    # Not torch-backed, but huggingface_hub's listing is only needed when searching.
    "search": "zoo_core.hub.search",
    "SearchResult": "zoo_core.hub.search",
    "export_model": "zoo_core.deploy.exporting",
    "benchmark": "zoo_core.deploy.bench",
}

if TYPE_CHECKING:
    from zoo_core.api import create_model, load_model, predict, push_to_hub, save_model
    from zoo_core.deploy.bench import benchmark
    from zoo_core.deploy.exporting import export_model
    from zoo_core.hub.download import pull
    from zoo_core.hub.search import SearchResult, search
    from zoo_core.models.model import ZooModel, call_model
    from zoo_core.pretrained.info import PretrainedInfo
    from zoo_core.pretrained.prediction import preprocess
    from zoo_core.pretrained.transforms import Transforms
    from zoo_core.sources.variant import get_pretrained

__all__ = [
    "PLUGIN_API_VERSION",
    "AmbiguousModelError",
    "ConfigError",
    "DeviceError",
    "DistributedError",
    "ExportError",
    "HubError",
    "InputShapeError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "ModelSpec",
    "PluginCodeError",
    "PluginError",
    "PluginNotInstalledError",
    "PretrainedInfo",
    "SearchResult",
    "SourceNotFoundError",
    "Transforms",
    "UsageError",
    "WeightsError",
    "WeightsSpec",
    "ZooError",
    "ZooModel",
    "ZooWarning",
    "__version__",
    "benchmark",
    "call_model",
    "create_model",
    "export_model",
    "get_pretrained",
    "get_registry",
    "hookimpl",
    "list_models",
    "load_model",
    "predict",
    "preprocess",
    "pull",
    "push_to_hub",
    "save_model",
    "search",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
