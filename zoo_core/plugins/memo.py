"""What the plugin cache keeps of a plugin: its hooks' results as plain data, and back.

A plugin whose files are unchanged since the cache stored it is not imported:
its ``ModelSpec``/``WeightsSpec`` items are rebuilt from the stored fields.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from zoo_core.plugins.cache import PluginCache
from zoo_core.plugins.contract import ModelSpec, WeightsSpec

__all__ = ["CACHED_HOOKS", "encode_results", "plugin_identity", "remembered"]

#: The hooks whose results the cache stores, and the class of their items.
CACHED_HOOKS = {"zoo_register_models": ModelSpec, "zoo_register_weights": WeightsSpec}
_FIELDS = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in CACHED_HOOKS.values()}


def encode_results(results: list[Any], cls: type) -> list[dict[str, Any]] | None:
    """The items of every result as field dicts (not asdict: it deep-copies, slowly);
    None unless each result is a list or tuple of exactly ``cls``."""
    if not all(isinstance(r, (list, tuple)) and all(type(i) is cls for i in r) for r in results):
        return None
    return [{f: getattr(i, f) for f in _FIELDS[cls]} for r in results for i in r]


def plugin_identity(info: Any) -> tuple[Any, ...]:
    """What the cache files a plugin (a registry ``PluginInfo``) under: where it came from,
    its name and version."""
    return (info.source, info.name, info.distribution, info.version, info.entry_point)


def remembered(cache: PluginCache, info: Any) -> tuple[str, Any, float] | None:
    """What the plugin's hooks returned last time, if its files are unchanged (an "ok" outcome
    of :func:`run_guarded`, with the other cached hooks' results); else None."""
    started = time.perf_counter()
    record = cache.lookup(plugin_identity(info), info.module)
    if record is None:
        return None
    try:
        hooks = {h: [cls(**d) for d in record["hooks"][h]] for h, cls in CACHED_HOOKS.items()}
        api_version = record["api_version"]
        if api_version is None or type(api_version) is int:
            specs = hooks.pop("zoo_register_models")
            others = {hook: [items] for hook, items in hooks.items()}
            return "ok", (specs, api_version, others), time.perf_counter() - started
    except (KeyError, TypeError, ValueError):
        pass  # not what this zoo-core stores: ask the plugin
    return None
