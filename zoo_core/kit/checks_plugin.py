"""Checks of the plugin itself: its hook module, its API, its target and its config."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import typing
from typing import Any

import torch

from zoo_core.errors import ConfigError, PluginError, ZooError
from zoo_core.kit.framework import (
    HEAVY_MODULES,
    HOOK_IMPORT_BUDGET_SECONDS,
    REGISTERED,
    UNKNOWN_FIELD,
    Failed,
    Skipped,
    Subject,
    check,
    describe_error,
)
from zoo_core.models.config import config_from_dict, config_to_dict
from zoo_core.models.model import ZooModel

_HOOK_PROBE = textwrap.dedent(
    """
    import importlib, json, sys, time
    import zoo_core  # paid by every plugin anyway; not the hook module's cost
    before = set(sys.modules)
    started = time.perf_counter()
    module = importlib.import_module(sys.argv[1])
    imported = time.perf_counter() - started
    # zoo list calls the hook too: time it, and see what it imports.
    hook = getattr(module, "zoo_register_models", None)
    started = time.perf_counter()
    if callable(hook):
        hook()
    called = time.perf_counter() - started
    print(json.dumps({"seconds": imported + called, "import_seconds": imported,
                      "hook_seconds": called, "modules": sorted(set(sys.modules) - before)}))
    """
)
_hook_cache: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}


def _probe_hook_module(module: str) -> dict[str, Any]:
    # A fresh interpreter: this process has torch loaded already, so only a new
    # one can tell what importing the hook module pulls in.
    key = (module, tuple(sys.path))
    if key not in _hook_cache:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.run(
            [sys.executable, "-c", _HOOK_PROBE, module],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise Failed(f"importing {module} in a fresh interpreter failed: {last}")
        _hook_cache[key] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _hook_cache[key]


@check(
    "hook-light",
    reason="zoo list imports every hook module and must stay instant: no torch, no model code",
    hint="import only zoo_core's ModelSpec/hookimpl in the hook module; name the model class "
    "as a 'package.module:Class' string and keep the package's __init__.py empty",
)
def _check_hook_light(s: Subject) -> str:
    if s.entry is None:
        raise Skipped("checked as a bare class, not through a plugin")
    module = s.entry.plugin.module.partition(":")[0]
    probe = _probe_hook_module(module)
    loaded = probe["modules"]
    heavy = sorted({m.split(".")[0] for m in loaded} & HEAVY_MODULES)
    if heavy:
        raise Failed(f"importing {module} and calling its hook imports {', '.join(heavy)}")
    target_module = s.entry.spec.target.partition(":")[0]
    if target_module in loaded and target_module != module:
        raise Failed(f"importing {module} imports the model code ({target_module})")
    seconds = probe["seconds"]
    if seconds > HOOK_IMPORT_BUDGET_SECONDS:
        raise Failed(
            f"importing {module} and calling its hook takes {seconds:.2f} s "
            f"(import {probe['import_seconds']:.2f} s, hook {probe['hook_seconds']:.2f} s; "
            f"budget {HOOK_IMPORT_BUDGET_SECONDS:.1f} s)"
        )
    return (
        f"{module} imports in {probe['import_seconds'] * 1000:.1f} ms and its hook runs in "
        f"{probe['hook_seconds'] * 1000:.1f} ms without torch"
    )


@check(
    "plugin-api",
    reason="a declared plugin API lets zoo report an incompatible plugin instead of crashing later",
    hint="add ZOO_PLUGIN_API = 2 to the hook module (the version in zoo_core.PLUGIN_API_VERSION)",
    level="warning",
)
def _check_plugin_api(s: Subject) -> str:
    if s.entry is None:
        raise Skipped("checked as a bare class, not through a plugin")
    declared = s.entry.plugin.api_version
    if declared is None:
        raise Failed(f"{s.entry.plugin.module} does not declare ZOO_PLUGIN_API; assumed 1")
    return f"targets plugin API {declared}"


@check(
    "expected-failures",
    reason="a ModelSpec may declare checks known to fail; each must name a real check and say why",
    hint="write ModelSpec(expected_failures={'check-name': 'why it fails'}) with names from "
    "'zoo check -v', or drop the entry",
)
def _check_expected_failures(s: Subject) -> str:
    declared = s.expected_failures
    if not declared:
        return "declares none"
    names = {c.name for c in REGISTERED}
    unknown = sorted(set(declared) - names)
    if unknown:
        raise Failed(f"expected_failures names no check: {', '.join(unknown)}")
    empty = sorted(k for k, why in declared.items() if not why.strip())
    if empty:
        raise Failed(f"expected_failures gives no reason for {', '.join(empty)}")
    return f"declares {', '.join(f'{k} ({why})' for k, why in declared.items())}"


@check(
    "target-class",
    reason="the ModelSpec's target is what create_model and load_model build",
    hint="make the target 'package.module:Name' name a ZooModel subclass (or an nn.Module "
    "class or factory whose ModelSpec gives defaults and example_input) that imports cleanly",
)
def _check_target_class(s: Subject) -> str:
    try:
        arch = s.arch
    except PluginError as err:
        raise Failed(err.message) from err
    target = arch.cls
    where = f"{target.__module__}:{target.__qualname__}"
    if arch.native:
        return where
    if isinstance(target, type) and issubclass(target, ZooModel):
        raise Failed(f"{target.__qualname__} has no Config dataclass")
    if arch.entry is None or arch.entry.spec.example_input is None:
        raise Failed(f"{where} is an nn.Module, and no ModelSpec says how to make its input")
    if arch.config_object is not None:
        return f"{where} (an nn.Module; config from {arch.config_object.__qualname__})"
    return f"{where} (an nn.Module; config from its signature)"


@check(
    "config-defaults",
    reason="create_model(name) and zoo load NAME build a model from the defaults alone",
    hint="make Config a @dataclass whose every field has a type and a default",
    needs=("target-class",),
)
def _check_config_defaults(s: Subject) -> str:
    config_cls = s.arch.Config
    if not dataclasses.is_dataclass(config_cls):
        raise Failed(f"{config_cls!r} is not a dataclass")
    try:
        typing.get_type_hints(config_cls)
    except Exception as err:
        raise Failed(f"the field annotations do not resolve: {describe_error(err)}") from err
    fields = [f for f in dataclasses.fields(config_cls) if f.init]
    missing = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise Failed(f"field(s) without a default: {', '.join(missing)}")
    try:
        s.config()
    except ConfigError as err:
        raise Failed(f"the config does not build: {err}") from err
    return f"{len(fields)} typed fields, all with defaults"


@check(
    "config-json",
    reason="config.json stores the config; a value JSON cannot hold cannot be saved or shared",
    hint="use JSON types in the Config (int, float, bool, str, Literal, tuples and lists of them)",
    needs=("config-defaults",),
)
def _check_config_json(s: Subject) -> str:
    config = s.config()
    try:
        text = json.dumps(config_to_dict(config))
    except (TypeError, ValueError) as err:
        raise Failed(f"the config is not JSON: {describe_error(err)}") from err
    try:
        back = config_from_dict(s.arch.Config, json.loads(text))
    except ZooError as err:
        raise Failed(f"the config's own JSON does not load back: {err}") from err
    if back != config:
        raise Failed(f"the config came back from JSON as {back!r}, not {config!r}")
    return f"{len(text)} bytes of JSON, round-trips equal"


@check(
    "config-rejects-unknown",
    reason="a misspelt --set key must be an error, not a silently ignored setting",
    hint="pass the config straight to ZooModel.__init__ (super().__init__(config)) "
    "and do not filter it first",
    needs=("config-defaults",),
)
def _check_config_rejects_unknown(s: Subject) -> str:
    overrides = {UNKNOWN_FIELD: 1}
    try:
        with torch.device("meta"):
            if s.arch.native:
                s.cls(overrides)  # the constructor itself must refuse it, not only zoo
            else:
                s.arch.config(overrides)
    except ConfigError:
        return f"an unknown field ({UNKNOWN_FIELD}) is a ConfigError"
    except Exception as err:
        raise Failed(f"an unknown field raised {describe_error(err)}, not a ConfigError") from err
    raise Failed(f"an unknown config field ({UNKNOWN_FIELD}) was accepted silently")
