"""Conformance checks: the plugin contract, executable.

A plugin that passes these checks works in zoo: it lists without importing
torch, builds on the ``meta`` device (how weights are loaded), trains (every
parameter gets a gradient), saves and loads bit-exactly, and fails with a zoo
error on bad input. Each check has a name, a one-line reason and a fix hint.

Three ways to run them:

>>> from zoo_core.testing import check_model
>>> check_model("simple_cnn")                       # doctest: +SKIP
<ModelReport simple_cnn: 16 passed, 1 skipped>

In a plugin's own tests, one test per check (in the spirit of scikit-learn's
``parametrize_with_checks``)::

    from zoo_core.testing import parametrize_with_checks

    @parametrize_with_checks(["my_model"])
    def test_zoo_conformance(model, check):
        check(model)

And from the shell: ``zoo check [NAME...] [--plugin DIST] [--json]``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from zoo_core.distributed.sharding import plan_problems
from zoo_core.errors import ConfigError, PluginError, ZooError
from zoo_core.kit.scaffold import PLACEHOLDER_MODEL_TEXT, PLACEHOLDER_SUMMARY
from zoo_core.models.build import Architecture, config_of
from zoo_core.models.config import config_from_dict, config_to_dict
from zoo_core.models.model import ZooModel, call_model, input_tensors
from zoo_core.plugins.registry import ModelEntry, get_registry
from zoo_core.progress import ProgressCallback

__all__ = [
    "CHECKS",
    "HEAVY_MODULES",
    "HOOK_IMPORT_BUDGET_SECONDS",
    "Check",
    "CheckResult",
    "ConformanceError",
    "ModelReport",
    "ZooCheckWarning",
    "check",
    "check_model",
    "parametrize_with_checks",
    "run_checks",
]

Status = Literal["pass", "fail", "warn", "skip", "xfail"]

#: What importing a hook module may cost on top of ``import zoo_core``. The
#: bundled plugins take about a millisecond; torch alone takes about a second.
HOOK_IMPORT_BUDGET_SECONDS = 0.5
#: Modules a hook module must not import: any of them makes ``zoo list`` slow.
HEAVY_MODULES = frozenset(
    {"torch", "numpy", "safetensors", "huggingface_hub", "scipy", "pandas", "jax", "tensorflow"}
)
_UNKNOWN_FIELD = "zoo_check_no_such_field"
_SEED = 0


class ConformanceError(ZooError, AssertionError):
    """A model failed one or more conformance checks; ``report`` holds every result."""

    def __init__(self, report: ModelReport) -> None:
        failures = report.failures
        lines = [f"{report.label} failed {len(failures)} of {len(report.results)} zoo checks:"]
        for r in failures:
            lines.append(f"  {r.check}: {r.message}")
            lines.append(f"    why: {r.reason}")
            lines.append(f"    fix: {r.hint}")
        super().__init__(
            "\n".join(lines),
            hint="the plugin author's guide explains each check (zoo docs shows where it is)",
        )
        self.report = report


class ZooCheckWarning(UserWarning):
    """A warning-level check did not pass (for example, ``torch.export`` failed)."""


class _Failed(Exception):
    """Raised by a check function: the check failed, with this message."""


class _Skipped(Exception):
    """Raised by a check function: the check does not apply here."""


@dataclass(frozen=True)
class Check:
    """One contract check.

    ``level`` is ``"error"`` (a failure fails the model) or ``"warning"`` (it is
    reported, but the model still passes). ``needs`` names checks that must
    pass first; when one fails, this check is skipped.
    """

    name: str
    reason: str
    hint: str
    run: Callable[[_Subject], str]
    level: Literal["error", "warning"] = "error"
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one model."""

    check: str
    status: Status
    message: str
    reason: str
    hint: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelReport:
    """Every check result for one model. ``passed`` is true when no check failed."""

    label: str
    plugin: str | None
    results: tuple[CheckResult, ...]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "warn": 0, "skip": 0, "xfail": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def summary(self) -> str:
        words = {
            "pass": "passed",
            "fail": "failed",
            "warn": "warned",
            "skip": "skipped",
            "xfail": "failed as expected",
        }
        return ", ".join(f"{n} {words[s]}" for s, n in self.counts().items() if n)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.label,
            "plugin": self.plugin,
            "passed": self.passed,
            "counts": self.counts(),
            "checks": [r.as_dict() for r in self.results],
        }

    def __repr__(self) -> str:
        return f"<ModelReport {self.label}: {self.summary()}>"


class _Subject:
    """The model under test: its architecture (target, and entry if registered) and config."""

    def __init__(self, target: str | Any, config: Any) -> None:
        self.entry: ModelEntry | None = None
        self._arch: Architecture | None = None
        self.arch_error: ZooError | None = None
        if isinstance(target, str):
            self.entry = get_registry().resolve(target)
            self.label = self.entry.display_name
        elif callable(target):
            self.label = getattr(target, "__qualname__", repr(target))
            try:
                self.entry = get_registry().entry_for_class(target)
            except PluginError:
                self.entry = None  # checked as a bare class; plugin checks are skipped
            try:
                self._arch = Architecture(target, self.entry)
            except ZooError as err:
                self.arch_error = err
        else:
            raise TypeError(f"expected a model name or a model class, got {target!r}")
        self.config_arg = config

    @property
    def arch(self) -> Architecture:
        if self.arch_error is not None:
            raise self.arch_error
        if self._arch is None:
            assert self.entry is not None
            self._arch = Architecture.of(self.entry)
        return self._arch

    @property
    def cls(self) -> Any:
        return self.arch.cls

    def config(self) -> Any:
        if self.config_arg is None or isinstance(self.config_arg, Mapping):
            return self.arch.config(self.config_arg)
        return self.config_arg

    def build(self, *, seed: int = _SEED, device: str = "cpu", config: Any = None) -> nn.Module:
        # Built the way create_model builds: a local seed that leaves the
        # caller's random state alone, under a default-device context.
        return self.arch.build(config or self.config(), seed=seed, device=device)

    def example(self, model: nn.Module, batch_size: int = 2) -> Any:
        """The model's example input; a failure to make one is the check's finding."""
        try:
            inputs = self.arch.example_input(model, batch_size)
        except ZooError as err:
            raise _Failed(f"example_input raised {err}") from err
        if not input_tensors(inputs):
            raise _Failed(
                f"example_input returned {type(inputs).__name__}, not a tensor, "
                "a tuple of tensors or a dict of tensors"
            )
        return inputs


# --- helpers -----------------------------------------------------------------


def _tensors(output: Any) -> Iterator[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, (list, tuple)):
        for item in output:
            yield from _tensors(item)
    elif isinstance(output, Mapping):
        for item in output.values():
            yield from _tensors(item)


def _shape(x: torch.Tensor) -> str:
    return str(tuple(x.shape))


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first[:200]}"


def _names(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _shapes(inputs: Any) -> str:
    """The shapes of a model's inputs: ``(2, 8)``, ``((2, 8), (2, 8))`` or ``{x: (2, 8)}``."""
    pairs = input_tensors(inputs)
    if isinstance(inputs, torch.Tensor):
        return _shape(inputs)
    if isinstance(inputs, Mapping):
        return "{" + ", ".join(f"{k}: {_shape(t)}" for k, t in pairs) + "}"
    return "(" + ", ".join(_shape(t) for _, t in pairs) + ")"


def _forward(model: nn.Module, x: Any) -> list[torch.Tensor]:
    try:
        out = call_model(model, x)
    except Exception as err:
        raise _Failed(f"forward on example_input {_shapes(x)} raised {_describe(err)}") from err
    tensors = list(_tensors(out))
    if not tensors:
        raise _Failed(f"forward returned {type(out).__name__}, which holds no tensor")
    return tensors


def _not_finite(tensors: Sequence[torch.Tensor]) -> bool:
    return any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch's own warnings and log lines while a check provokes them."""
    logging.disable(logging.CRITICAL)
    try:
        # torch.export prints the graph it gave up on to stderr; the check's
        # message already says what failed.
        with warnings.catch_warnings(), redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


# --- the checks ----------------------------------------------------------------

_REGISTERED: list[Check] = []


def check(
    name: str,
    *,
    reason: str,
    hint: str,
    level: Literal["error", "warning"] = "error",
    needs: Sequence[str] = (),
) -> Callable[[Callable[[_Subject], str]], Callable[[_Subject], str]]:
    """Declare a check: its metadata sits beside the function that runs it.

    The function takes the model under test and returns a one-line finding; it
    raises to fail. Checks run in the order they are declared, so ``needs`` may
    name only checks declared before.
    """

    def register(func: Callable[[_Subject], str]) -> Callable[[_Subject], str]:
        known = {c.name for c in _REGISTERED}
        unknown = [n for n in needs if n not in known]
        if name in known or unknown:
            raise ValueError(f"check {name!r}: duplicate name or unknown needs {unknown}")
        _REGISTERED.append(Check(name, reason, hint, func, level, tuple(needs)))
        return func

    return register


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
            raise _Failed(f"importing {module} in a fresh interpreter failed: {last}")
        _hook_cache[key] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _hook_cache[key]


@check(
    "hook-light",
    reason="zoo list imports every hook module and must stay instant: no torch, no model code",
    hint="import only zoo_core's ModelSpec/hookimpl in the hook module; name the model class "
    "as a 'package.module:Class' string and keep the package's __init__.py empty",
)
def _check_hook_light(s: _Subject) -> str:
    if s.entry is None:
        raise _Skipped("checked as a bare class, not through a plugin")
    module = s.entry.plugin.module.partition(":")[0]
    probe = _probe_hook_module(module)
    loaded = probe["modules"]
    heavy = sorted({m.split(".")[0] for m in loaded} & HEAVY_MODULES)
    if heavy:
        raise _Failed(f"importing {module} and calling its hook imports {', '.join(heavy)}")
    target_module = s.entry.spec.target.partition(":")[0]
    if target_module in loaded and target_module != module:
        raise _Failed(f"importing {module} imports the model code ({target_module})")
    seconds = probe["seconds"]
    if seconds > HOOK_IMPORT_BUDGET_SECONDS:
        raise _Failed(
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
def _check_plugin_api(s: _Subject) -> str:
    if s.entry is None:
        raise _Skipped("checked as a bare class, not through a plugin")
    declared = s.entry.plugin.api_version
    if declared is None:
        raise _Failed(f"{s.entry.plugin.module} does not declare ZOO_PLUGIN_API; assumed 1")
    return f"targets plugin API {declared}"


@check(
    "target-class",
    reason="the ModelSpec's target is what create_model and load_model build",
    hint="make the target 'package.module:Name' name a ZooModel subclass (or an nn.Module "
    "class or factory whose ModelSpec gives defaults and example_input) that imports cleanly",
)
def _check_target_class(s: _Subject) -> str:
    try:
        arch = s.arch
    except PluginError as err:
        raise _Failed(err.message) from err
    target = arch.cls
    where = f"{target.__module__}:{target.__qualname__}"
    if arch.native:
        return where
    if isinstance(target, type) and issubclass(target, ZooModel):
        raise _Failed(f"{target.__qualname__} has no Config dataclass")
    if arch.entry is None or arch.entry.spec.example_input is None:
        raise _Failed(f"{where} is an nn.Module, and no ModelSpec says how to make its input")
    return f"{where} (an nn.Module; config from its signature)"


@check(
    "config-defaults",
    reason="create_model(name) and zoo load NAME build a model from the defaults alone",
    hint="make Config a @dataclass whose every field has a type and a default",
    needs=("target-class",),
)
def _check_config_defaults(s: _Subject) -> str:
    config_cls = s.arch.Config
    if not dataclasses.is_dataclass(config_cls):
        raise _Failed(f"{config_cls!r} is not a dataclass")
    try:
        typing.get_type_hints(config_cls)
    except Exception as err:
        raise _Failed(f"the field annotations do not resolve: {_describe(err)}") from err
    fields = [f for f in dataclasses.fields(config_cls) if f.init]
    missing = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise _Failed(f"field(s) without a default: {', '.join(missing)}")
    try:
        s.config()
    except ConfigError as err:
        raise _Failed(f"the config does not build: {err}") from err
    return f"{len(fields)} typed fields, all with defaults"


@check(
    "config-json",
    reason="config.json stores the config; a value JSON cannot hold cannot be saved or shared",
    hint="use JSON types in the Config (int, float, bool, str, Literal, tuples and lists of them)",
    needs=("config-defaults",),
)
def _check_config_json(s: _Subject) -> str:
    config = s.config()
    try:
        text = json.dumps(config_to_dict(config))
    except (TypeError, ValueError) as err:
        raise _Failed(f"the config is not JSON: {_describe(err)}") from err
    try:
        back = config_from_dict(s.arch.Config, json.loads(text))
    except ZooError as err:
        raise _Failed(f"the config's own JSON does not load back: {err}") from err
    if back != config:
        raise _Failed(f"the config came back from JSON as {back!r}, not {config!r}")
    return f"{len(text)} bytes of JSON, round-trips equal"


@check(
    "config-rejects-unknown",
    reason="a misspelt --set key must be an error, not a silently ignored setting",
    hint="pass the config straight to ZooModel.__init__ (super().__init__(config)) "
    "and do not filter it first",
    needs=("config-defaults",),
)
def _check_config_rejects_unknown(s: _Subject) -> str:
    overrides = {_UNKNOWN_FIELD: 1}
    try:
        with torch.device("meta"):
            if s.arch.native:
                s.cls(overrides)  # the constructor itself must refuse it, not only zoo
            else:
                s.arch.config(overrides)
    except ConfigError:
        return f"an unknown field ({_UNKNOWN_FIELD}) is a ConfigError"
    except Exception as err:
        raise _Failed(f"an unknown field raised {_describe(err)}, not a ConfigError") from err
    raise _Failed(f"an unknown config field ({_UNKNOWN_FIELD}) was accepted silently")


@check(
    "build-meta",
    reason="load_model builds on the meta device and then assigns the saved tensors",
    hint="do not read tensor values in __init__ (.item(), .tolist(), numpy, data-dependent "
    "shapes); compute sizes from the config",
    needs=("config-defaults",),
)
def _check_build_meta(s: _Subject) -> str:
    try:
        model = s.arch.build_meta(s.config())
        with torch.device("meta"):
            x = s.arch.example_input(model, 1)
    except Exception as err:
        raise _Failed(f"building on meta raised {_describe(err)}") from err
    real = [n for n, t in model.state_dict().items() if not t.is_meta]
    if real:
        raise _Failed(f"built on meta, but {_names(real)} hold real data")
    count = sum(p.numel() for p in model.parameters())
    return f"{count:,} parameters, example input {_shapes(x)}"


@check(
    "tp-plan",
    reason="load_model(..., mesh=mesh, parallel='tp') shards the modules a declared tp_plan names",
    hint="map module name patterns ('layers.*.fc1', * matches one name part) of nn.Linear or "
    "nn.Embedding layers to 'colwise', 'rowwise' or 'replicate', with sizes even",
    needs=("build-meta",),
)
def _check_tp_plan(s: _Subject) -> str:
    plan = getattr(s.cls, "tp_plan", None)
    if plan is None:
        return "declares no tensor-parallel plan (parallel='tp' is not offered)"
    problems = plan_problems(s.arch.build_meta(s.config()), plan, mesh_size=2)
    if problems:
        raise _Failed("; ".join(problems))
    return f"{len(plan)} patterns fit a mesh of 2"


@check(
    "build-cpu",
    reason="create_model builds with real, finite initial weights",
    hint="make __init__ build every layer from the config and initialise it to finite values",
    needs=("config-defaults",),
)
def _check_build_cpu(s: _Subject) -> str:
    try:
        model = s.build()
    except Exception as err:
        raise _Failed(f"building raised {_describe(err)}") from err
    state = model.state_dict()
    off = [n for n, t in state.items() if t.device.type != "cpu"]
    if off:
        raise _Failed(f"{_names(off)} are not on the cpu device it was built on")
    bad = [n for n, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise _Failed(f"freshly initialised {_names(bad)} hold NaN or infinity")
    return f"{sum(p.numel() for p in model.parameters()):,} parameters"


@check(
    "forward-finite",
    reason="zoo load, summaries and these checks run forward on example_input",
    hint="return from example_input(batch_size) a tensor forward accepts, on the model's "
    "device and dtype (self.randn_like_input helps), and keep outputs finite",
    needs=("build-cpu",),
)
def _check_forward_finite(s: _Subject) -> str:
    model = s.build().eval()
    x = s.example(model)
    with torch.no_grad():
        outputs = _forward(model, x)
    if _not_finite(outputs):
        raise _Failed(f"forward on example_input {_shapes(x)} gave NaN or infinity")
    return f"{_shapes(x)} -> {', '.join(_shape(t) for t in outputs)}"


@check(
    "gradients",
    reason="a parameter with no gradient is a layer defined but unused, or work done outside "
    "forward, where autograd cannot see it",
    hint="use every layer in forward, or delete it; move computation from __init__ into forward; "
    "freeze on purpose with requires_grad_(False)",
    needs=("forward-finite",),
)
def _check_gradients(s: _Subject) -> str:
    model = s.build().train()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        return "no trainable parameters"
    outputs = [t for t in _forward(model, s.example(model)) if t.is_floating_point()]
    graph = [t for t in outputs if t.requires_grad]
    if not graph:
        raise _Failed("no output of forward depends on any parameter")
    # A random projection of every output: a plain sum would give exactly zero
    # gradient behind a softmax and hide nothing, but it would also prove nothing.
    generator = torch.Generator().manual_seed(_SEED)
    loss = sum(
        (t.float() * torch.randn(t.shape, generator=generator).to(t.device)).sum() for t in graph
    )
    loss.backward()  # type: ignore[union-attr]
    missing = [n for n, p in trainable if p.grad is None]
    if missing:
        raise _Failed(f"{len(missing)} trainable parameter(s) got no gradient: {_names(missing)}")
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]  # type: ignore[arg-type]
    if bad:
        raise _Failed(f"gradients of {_names(bad)} hold NaN or infinity")
    return f"all {len(trainable)} trainable parameters got a gradient"


@check(
    "state-dict-stable",
    reason="saved weights are matched to a fresh model by key name, shape and dtype",
    hint="name submodules from the config only (no counters, ids or random names) and build "
    "them in a fixed order",
    needs=("build-cpu",),
)
def _check_state_dict_stable(s: _Subject) -> str:
    first, second = s.build(seed=_SEED).state_dict(), s.build(seed=_SEED + 1).state_dict()
    if list(first) != list(second):
        only = sorted(set(first) ^ set(second))
        detail = f"keys differ: {_names(only)}" if only else "the key order differs"
        raise _Failed(f"two builds of the same config have different state dicts ({detail})")
    changed = [
        k for k in first if (first[k].shape, first[k].dtype) != (second[k].shape, second[k].dtype)
    ]
    if changed:
        raise _Failed(f"two builds give {_names(changed)} different shapes or dtypes")
    return f"{len(first)} keys, same names, shapes and dtypes"


@check(
    "seed-deterministic",
    reason="create_model(seed=N) and zoo save --seed N promise reproducible weights",
    hint="initialise only with torch's random functions (torch.nn.init, torch.randn), "
    "never Python's random, numpy or the clock",
    needs=("build-cpu",),
)
def _check_seed_deterministic(s: _Subject) -> str:
    first, second = s.build().state_dict(), s.build().state_dict()
    if list(first) != list(second):
        raise _Failed("two builds with the same seed have different state-dict keys")
    differ = [k for k in first if not torch.equal(first[k], second[k])]
    if differ:
        raise _Failed(f"two builds with seed {_SEED} differ in {_names(differ)}")
    return f"two builds with seed {_SEED} are bit-identical"


@check(
    "save-load-exact",
    reason="weights shared through zoo save / zoo push must come back bit-exact",
    hint="register every tensor forward uses as a parameter or a buffer (not a plain "
    "attribute) and keep state_dict() untouched",
    needs=("build-cpu", "forward-finite", "config-json", "build-meta"),
)
def _check_save_load(s: _Subject) -> str:
    if s.entry is None:
        raise _Skipped("the class is not registered by a plugin, so it cannot be saved")
    from zoo_core.api import load_model, save_model

    model = s.build().eval()
    with tempfile.TemporaryDirectory(prefix="zoo-check-") as tmp:
        try:
            save_model(model, Path(tmp) / "model")
            loaded = load_model(Path(tmp) / "model")
        except Exception as err:
            raise _Failed(f"save_model -> load_model raised {_describe(err)}") from err
        if type(loaded) is not type(model):
            raise _Failed(f"loaded a {type(loaded).__qualname__}, not a {type(model).__qualname__}")
        if config_of(loaded) != config_of(model):
            raise _Failed(f"the config came back as {config_of(loaded)!r}")
        saved, back = model.state_dict(), loaded.state_dict()
        if list(saved) != list(back):
            raise _Failed(f"keys differ after loading: {_names(sorted(set(saved) ^ set(back)))}")
        differ = [
            k
            for k in saved
            if saved[k].dtype != back[k].dtype or not torch.equal(saved[k], back[k])
        ]
        if differ:
            raise _Failed(f"{_names(differ)} changed between save and load")
        x = s.example(model)
        with torch.no_grad():
            before = _forward(model, x)
            try:
                after = _forward(loaded, x)
            except _Failed as err:
                raise _Failed(f"the loaded model fails: {err}") from err
    if len(before) != len(after) or not all(
        a.shape == b.shape and torch.equal(a, b) for a, b in zip(before, after, strict=False)
    ):
        raise _Failed("the loaded model's outputs differ from the saved model's")
    return f"{len(saved)} tensors and the outputs are bit-identical after loading"


@check(
    "wrong-shape-error",
    reason="a user's wrong input must say what shape was expected, not fail deep in a matmul",
    hint="begin forward with self.check_input(x, ('batch', ...)), which raises InputShapeError",
    needs=("forward-finite",),
)
def _check_wrong_shape(s: _Subject) -> str:
    model = s.build().eval()
    x = s.example(model)
    bad = _with_first(x, lambda t: t.unsqueeze(-1))  # one trailing dimension too many
    try:
        with torch.no_grad():
            call_model(model, bad)
    except ZooError as err:
        return f"{_shapes(bad)} -> {type(err).__name__}: {err}"
    except Exception as err:
        raise _Failed(f"input {_shapes(bad)} raised {_describe(err)}, not a zoo error") from err
    raise _Failed(f"input {_shapes(bad)} was accepted (example_input is {_shapes(x)})")


def _with_first(inputs: Any, change: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``inputs`` with its first tensor changed (the others as they are)."""
    first = input_tensors(inputs)[0][0]
    if isinstance(inputs, torch.Tensor):
        return change(inputs)
    if isinstance(inputs, tuple):
        return tuple(change(t) if str(i) == first else t for i, t in enumerate(inputs))
    return {k: change(t) if k == first else t for k, t in inputs.items()}


@check(
    "dtype-casts",
    reason="zoo load --dtype float64 / bfloat16 casts the weights; forward must follow",
    hint="do not hard-code dtypes in forward (x.float(), dtype=torch.float32); keep tensors as "
    "parameters or buffers so .to() casts them; build inputs with self.randn_like_input",
    needs=("forward-finite",),
)
def _check_dtypes(s: _Subject) -> str:
    if not any(t.is_floating_point() for t in s.build().state_dict().values()):
        raise _Skipped("no floating-point weights to cast")
    done = []
    for dtype in (torch.float64, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        model = s.build().to(dtype).eval()
        x = s.example(model)
        for label, t in input_tensors(x):
            if t.is_floating_point() and t.dtype != dtype:
                raise _Failed(f"after .to({name}), example_input {label} is {t.dtype}")
        try:
            with torch.no_grad():
                outputs = _forward(model, x)
        except _Failed as err:
            raise _Failed(f"after .to({name}): {err}") from err
        wrong = [t.dtype for t in outputs if t.is_floating_point() and t.dtype != dtype]
        if wrong:
            raise _Failed(f"after .to({name}), forward returned {wrong[0]}")
        if _not_finite(outputs):
            raise _Failed(f"after .to({name}), forward gave NaN or infinity")
        done.append(name)
    return " and ".join(done) + " work"


def _accelerator() -> str | None:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


@check(
    "device-move",
    reason="zoo load --device cuda moves the weights; forward must run where they are",
    hint="do not hard-code devices in forward; create new tensors with device=x.device",
    needs=("forward-finite",),
)
def _check_device_move(s: _Subject) -> str:
    device = _accelerator()
    if device is None:
        raise _Skipped("no GPU here")
    model = s.build().to(device).eval()
    x = s.example(model)
    for label, t in input_tensors(x):
        if t.device.type != device:
            raise _Failed(f"after .to({device!r}), example_input {label} is on {t.device}")
    with torch.no_grad():
        outputs = _forward(model, x)
    off = [t.device for t in outputs if t.device.type != device]
    if off:
        raise _Failed(f"after .to({device!r}), forward returned a tensor on {off[0]}")
    if _not_finite(outputs):
        raise _Failed(f"on {device}, forward gave NaN or infinity")
    return f"builds, moves and runs on {device}"


@check(
    "export",
    reason="an exportable model can be deployed with torch.export (a warning, not a failure)",
    hint="avoid Python control flow on tensor values in forward (if x.sum() > 0: ...)",
    level="warning",
    needs=("forward-finite",),
)
def _check_export(s: _Subject) -> str:
    model = s.build().eval()
    x = s.example(model)
    with _quiet():
        try:
            if isinstance(x, Mapping):
                torch.export.export(model, (), dict(x))
            else:
                torch.export.export(model, x if isinstance(x, tuple) else (x,))
            return "torch.export succeeds"
        except Exception as err:
            export_error = err
        try:
            torch.jit.script(model)
            return f"torch.export failed ({_describe(export_error)}); torch.jit.script succeeds"
        except Exception:
            pass
    raise _Failed(f"torch.export failed: {_describe(export_error)}")


# --- contract v2: the seed's classic mistakes ------------------------------------

#: How far the size-variants check moves each integer field: the first of these
#: that the config accepts is used.
_SIZE_STEPS = (1, 2, -1)


def _size_variants(s: _Subject) -> Iterator[tuple[str, int, int, Any]]:
    """(field, default, new value, config) for each integer field the config lets vary."""
    base = s.config()
    for f in dataclasses.fields(base):
        value = getattr(base, f.name)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        for step in _SIZE_STEPS:
            new = value + step if value > 0 else value + abs(step)
            try:
                config = s.arch.config({f.name: new}, base=base)
            except ConfigError:
                continue
            yield f.name, value, new, config
            break


@check(
    "size-variants",
    reason="users change sizes with --set; a size written as a number instead of read from "
    "the config breaks every config but the default",
    hint="compute every layer size and input shape from self.config (nn.Linear(c.in_features, "
    "...), not nn.Linear(8, ...)); the message names the field whose change broke the model",
    needs=("forward-finite", "build-meta"),
)
def _check_size_variants(s: _Subject) -> str:
    tried = []
    for name, old, new, config in _size_variants(s):
        where = f"with {name}={new} (default {old})"
        try:
            model = s.build(config=config).eval()
        except Exception as err:
            raise _Failed(f"{where}, building raised {_describe(err)}") from err
        try:
            s.arch.build_meta(config)
        except Exception as err:
            raise _Failed(f"{where}, building on meta raised {_describe(err)}") from err
        x = s.example(model)
        with torch.no_grad():
            try:
                outputs = _forward(model, x)
            except _Failed as err:
                raise _Failed(
                    f"{where}: {err}; is a size hard-coded instead of read from {name!r}?"
                ) from err
        if _not_finite(outputs):
            raise _Failed(f"{where}, forward gave NaN or infinity")
        tried.append(name)
    if not tried:
        return "no integer fields to vary"
    return f"builds and runs with each of {_names(tried, 6)} changed"


# Tensor methods that turn tensor values into Python values inside forward. A
# tensor's truth value (if x.sum() > 0) is left to the export check, which warns.
_SCALAR_METHODS = {
    "item": ".item()",
    "tolist": ".tolist()",
    "numpy": ".numpy()",
    "__array__": "numpy (np.asarray)",
    "__float__": "float(tensor)",
    "__int__": "int(tensor)",
    "__index__": "a tensor used as a Python index",
}
# Frames of torch's own dispatch between the caller and the mode.
_DISPATCH_FILES = ("overrides.py", "_tensor.py", "_device.py", "__init__.py")


class _ScalarSpy(torch.overrides.TorchFunctionMode):
    """Records each place the model's own code pulls a Python value out of a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._torch_dir = os.path.dirname(torch.__file__)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        what = _SCALAR_METHODS.get(getattr(func, "__name__", ""))
        if what is not None:
            caller = self._direct_caller()
            if caller is not None:
                self.found.append(f"{what} at {caller}")
        return func(*args, **(kwargs or {}))

    def _direct_caller(self) -> str | None:
        """``file:line`` of the code that called the method, unless torch itself did."""
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if path == __file__:
                frame = frame.f_back
                continue
            if not path.startswith(self._torch_dir):
                return f"{os.path.basename(path)}:{frame.f_lineno}"
            if not path.endswith(_DISPATCH_FILES):
                return None  # torch's own code asked for the value: not the model's doing
            frame = frame.f_back
        return None


@check(
    "no-python-scalars",
    reason="a value pulled out of a tensor in forward (.item(), .tolist(), numpy, float(t)) "
    "stops torch.export and torch.compile, waits for the GPU, and cuts autograd",
    hint="keep the value a tensor: x * scale, not x * scale.item(); use torch functions "
    "instead of numpy; branch on the config, not on tensor values",
    needs=("forward-finite",),
)
def _check_no_python_scalars(s: _Subject) -> str:
    model = s.build().eval()
    x = s.example(model)
    spy = _ScalarSpy()
    with torch.no_grad(), spy:
        call_model(model, x)
    if spy.found:
        unique = list(dict.fromkeys(spy.found))
        raise _Failed(f"forward reads tensor values into Python: {_names(unique, 3)}")
    return "forward keeps every value in tensors"


def _pad_inputs(inputs: Mapping[str, Any], key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two inputs that differ only at padded positions (the last half of each row)."""
    mask = inputs[key].clone().bool()
    steps = mask.shape[-1]
    mask[..., steps // 2 :] = False
    mask[..., 0] = True  # every row keeps a real position
    first = {**inputs, key: mask}
    second = dict(first)
    for name, t in inputs.items():
        if name == key or not isinstance(t, torch.Tensor) or t.shape[: mask.dim()] != mask.shape:
            continue
        changed = t.clone()
        if t.is_floating_point():
            changed[~mask] = t[~mask] + 1
        else:
            changed[~mask] = torch.where(t[~mask] == 0, 1, 0).to(t.dtype)
        second[name] = changed
    return first, second


@check(
    "padding-mask",
    reason="a model that takes a padding mask must ignore what sits at padded positions, "
    "or batches of different lengths give different answers",
    hint="pass the mask to every layer that mixes positions (attention: key_padding_mask) "
    "and leave padded positions out of pooling (a masked mean, not x.mean(1))",
    needs=("forward-finite",),
)
def _check_padding_mask(s: _Subject) -> str:
    key = getattr(s.cls, "padding_mask_input", None)
    if not key:
        raise _Skipped("the model declares no padding mask (ZooModel.padding_mask_input)")
    model = s.build().eval()
    x = s.example(model)
    if not isinstance(x, Mapping) or key not in x:
        raise _Failed(f"example_input is not a dict with the declared mask {key!r}")
    first, second = _pad_inputs(x, key)
    with torch.no_grad():
        a, b = _forward(model, first), _forward(model, second)
    mask = first[key]
    for out_a, out_b in zip(a, b, strict=True):
        if out_a.shape[: mask.dim()] == mask.shape:
            out_a, out_b = out_a[mask], out_b[mask]  # per-position outputs: the real ones
        if not torch.allclose(out_a.float(), out_b.float(), atol=1e-5, rtol=1e-4):
            raise _Failed("changing the inputs at padded positions changed the output")
    return f"values at padded positions (mask {key!r}) do not change the output"


@check(
    "scaffold-placeholders",
    reason="zoo new-plugin writes an example model and summary to be replaced; left as they "
    "are, zoo list describes the wrong model",
    hint="write your own summary in the hook module's ModelSpec and your own model "
    "(and its module docstring) in model.py",
    level="warning",
    needs=("target-class",),
)
def _check_scaffold_placeholders(s: _Subject) -> str:
    if s.entry is None:
        raise _Skipped("checked as a bare class, not through a plugin")
    left = []
    if PLACEHOLDER_SUMMARY in s.entry.spec.summary:
        left.append(f"the summary {s.entry.spec.summary!r}")
    module = sys.modules.get(getattr(s.cls, "__module__", ""))
    if PLACEHOLDER_MODEL_TEXT in (getattr(module, "__doc__", None) or ""):
        left.append(f"the example model's docstring in {module.__name__}")  # type: ignore[union-attr]
    if left:
        raise _Failed("the scaffold's placeholders are unchanged: " + " and ".join(left))
    return "summary and model are the plugin's own"


CHECKS: tuple[Check, ...] = tuple(_REGISTERED)
_BY_NAME = {c.name: c for c in CHECKS}


def _closure(names: Sequence[str]) -> list[Check]:
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in _BY_NAME:
            raise ValueError(f"no check named {name!r}; the checks are {', '.join(_BY_NAME)}")
        if name not in wanted:
            wanted.add(name)
            for need in _BY_NAME[name].needs:
                add(need)

    for name in names:
        add(name)
    return [c for c in CHECKS if c.name in wanted]


def _run_one(check: Check, subject: _Subject, done: dict[str, CheckResult]) -> CheckResult:
    started = time.perf_counter()

    def result(status: Status, message: str) -> CheckResult:
        return CheckResult(
            check.name, status, message, check.reason, check.hint, time.perf_counter() - started
        )

    blocked = [n for n in check.needs if done[n].status in ("fail", "skip", "xfail")]
    if blocked:
        return result("skip", f"needs {', '.join(blocked)}, which did not pass")
    try:
        return result("pass", check.run(subject))
    except _Skipped as err:
        return result("skip", str(err))
    except _Failed as err:
        return result("warn" if check.level == "warning" else "fail", str(err))
    except Exception as err:  # a plugin's code can fail in any way: that is a finding
        return result("warn" if check.level == "warning" else "fail", _describe(err))


def run_checks(
    model: str | Any,
    config: Any = None,
    *,
    only: Sequence[str] | None = None,
    expected_failures: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> ModelReport:
    """Run the conformance checks on a model and return every result (never raises on failure).

    Args:
        model: a model name (bare or ``DIST:NAME``) or a ZooModel subclass.
            A class that no installed plugin registers skips the plugin checks.
        config: a Config instance or a mapping of overrides; the defaults if None.
        only: run just these checks (and the checks they need, unreported).
        expected_failures: ``{check: reason}`` for checks known to fail: their
            failures are reported as ``xfail`` (with the reason) and do not fail
            the model.
        progress: called as ``progress(done, total)`` after each check.

    Raises:
        ModelNotFoundError, AmbiguousModelError: ``model`` names nothing, or several things.

    >>> report = run_checks("simple_cnn")                     # doctest: +SKIP
    >>> [r.check for r in report.results if r.status != "pass"]   # doctest: +SKIP
    ['device-move']
    """
    expected = dict(expected_failures or {})
    for name in expected:
        if name not in _BY_NAME:
            raise ValueError(f"no check named {name!r}; the checks are {', '.join(_BY_NAME)}")
    subject = _Subject(model, config)
    selected = _closure(only) if only is not None else list(CHECKS)
    done: dict[str, CheckResult] = {}
    for one in selected:
        result = _run_one(one, subject, done)
        if result.status == "fail" and one.name in expected:
            result = dataclasses.replace(
                result, status="xfail", message=f"{result.message} (expected: {expected[one.name]})"
            )
        done[one.name] = result
        if progress is not None:
            progress(len(done), len(selected))
    reported = [done[n] for n in (only if only is not None else list(done))]
    plugin = subject.entry.plugin.name if subject.entry is not None else None
    return ModelReport(subject.label, plugin, tuple(reported))


def check_model(
    model: str | Any, config: Any = None, *, expected_failures: Mapping[str, str] | None = None
) -> ModelReport:
    """Run every conformance check; raise one error listing each failure.

    Returns the report (warnings and skips included) when nothing failed.

    Raises:
        ConformanceError: one or more checks failed; the message lists each
            failure with its reason and a fix, and ``err.report`` holds them all.

    >>> check_model("simple_rnn")                             # doctest: +SKIP
    <ModelReport simple_rnn: 16 passed, 1 skipped>
    """
    report = run_checks(model, config, expected_failures=expected_failures)
    if not report.passed:
        raise ConformanceError(report)
    return report


class _CheckRunner:
    """The ``check`` argument of a test made by :func:`parametrize_with_checks`."""

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config

    def __call__(self, model: str | Any) -> CheckResult:
        import pytest

        result = run_checks(model, self.config, only=[self.name]).results[0]
        if result.status == "fail":
            raise AssertionError(
                f"zoo check {self.name}: {result.message}\n"
                f"  why: {result.reason}\n  fix: {result.hint}"
            )
        if result.status == "skip":
            pytest.skip(f"{self.name}: {result.message}")
        if result.status == "warn":
            warnings.warn(
                f"zoo check {self.name}: {result.message} (fix: {result.hint})",
                ZooCheckWarning,
                stacklevel=2,
            )
        return result

    def __repr__(self) -> str:
        return f"<zoo check {self.name}>"


def parametrize_with_checks(
    models: Sequence[str | Any] | str | Any,
    config: Any = None,
    *,
    expected_failures: Mapping[str, str] | None = None,
) -> Any:
    """A ``pytest.mark.parametrize`` giving one test per (model, check).

    The test receives ``model`` (a name or class, as given) and ``check`` (a
    callable that runs one check on it: a failure fails the test, a check that
    does not apply skips it, a warning-level failure warns).
    ``expected_failures={check: reason}`` marks those checks' tests as expected
    to fail (strict ``xfail``): the reason is shown, and a check that starts to
    pass is reported so that the entry can be removed.

    >>> @parametrize_with_checks(["my_model"],                 # doctest: +SKIP
    ...                          expected_failures={"export": "uses a Python loop"})
    ... def test_zoo_conformance(model, check):
    ...     check(model)

    >>> from zoo_core.testing import parametrize_with_checks
    >>> @parametrize_with_checks(["simple_cnn"])             # doctest: +SKIP
    ... def test_zoo_conformance(model, check):
    ...     check(model)
    """
    import pytest

    if isinstance(models, str) or callable(models):
        models = [models]
    expected = dict(expected_failures or {})
    for name in expected:
        if name not in _BY_NAME:
            raise ValueError(f"no check named {name!r}; the checks are {', '.join(_BY_NAME)}")
    params = []
    for model in models:
        label = model if isinstance(model, str) else model.__qualname__
        for one in CHECKS:
            marks = (
                [pytest.mark.xfail(reason=expected[one.name], strict=True)]
                if one.name in expected
                else []
            )
            params.append(
                pytest.param(
                    model, _CheckRunner(one.name, config), id=f"{label}-{one.name}", marks=marks
                )
            )
    return pytest.mark.parametrize(("model", "check"), params)
