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

from zoo_core.build import Architecture
from zoo_core.config import config_from_dict, config_to_dict
from zoo_core.distributed import plan_problems
from zoo_core.errors import ConfigError, PluginError, ZooError
from zoo_core.model import ZooModel
from zoo_core.progress import ProgressCallback
from zoo_core.registry import ModelEntry, get_registry

__all__ = [
    "CHECKS",
    "HEAVY_MODULES",
    "HOOK_IMPORT_BUDGET_SECONDS",
    "Check",
    "CheckResult",
    "ConformanceError",
    "ModelReport",
    "ZooCheckWarning",
    "check_model",
    "parametrize_with_checks",
    "run_checks",
]

Status = Literal["pass", "fail", "warn", "skip"]

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
        super().__init__("\n".join(lines), hint="docs/plugin-authors.md explains each check")
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
        out = {"pass": 0, "fail": 0, "warn": 0, "skip": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def summary(self) -> str:
        words = {"pass": "passed", "fail": "failed", "warn": "warned", "skip": "skipped"}
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
    """The model under test: its architecture (class, and entry if registered) and config."""

    def __init__(self, target: str | type, config: Any) -> None:
        self.entry: ModelEntry | None = None
        self._arch: Architecture | None = None
        if isinstance(target, str):
            self.entry = get_registry().resolve(target)
            self.label = self.entry.display_name
        elif isinstance(target, type):
            self.label = target.__qualname__
            try:
                self.entry = get_registry().entry_for_class(target)
            except PluginError:
                self.entry = None  # checked as a bare class; plugin checks are skipped
            self._arch = Architecture(target, self.entry)
        else:
            raise TypeError(f"expected a model name or a ZooModel class, got {target!r}")
        self.config_arg = config

    @property
    def arch(self) -> Architecture:
        if self._arch is None:
            assert self.entry is not None
            self._arch = Architecture.of(self.entry)
        return self._arch

    @property
    def cls(self) -> type:
        return self.arch.cls

    def config(self) -> Any:
        if self.config_arg is None or isinstance(self.config_arg, Mapping):
            return self.arch.config(self.config_arg)
        return self.config_arg

    def build(self, *, seed: int = _SEED, device: str = "cpu") -> ZooModel:
        # Built the way create_model builds: a local seed that leaves the
        # caller's random state alone, under a default-device context.
        return self.arch.build(self.config(), seed=seed, device=device)


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


def _example(model: ZooModel, batch_size: int = 2) -> torch.Tensor:
    x = model.example_input(batch_size)
    if not isinstance(x, torch.Tensor):
        raise _Failed(f"example_input returned {type(x).__name__}, not a tensor")
    return x


def _forward(model: ZooModel, x: torch.Tensor) -> list[torch.Tensor]:
    try:
        out = model(x)
    except Exception as err:
        raise _Failed(f"forward on example_input {_shape(x)} raised {_describe(err)}") from err
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

_HOOK_PROBE = textwrap.dedent(
    """
    import importlib, json, sys, time
    import zoo_core  # paid by every plugin anyway; not the hook module's cost
    before = set(sys.modules)
    started = time.perf_counter()
    importlib.import_module(sys.argv[1])
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "modules": sorted(set(sys.modules) - before)}))
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


def _check_hook_light(s: _Subject) -> str:
    if s.entry is None:
        raise _Skipped("checked as a bare class, not through a plugin")
    module = s.entry.plugin.module.partition(":")[0]
    probe = _probe_hook_module(module)
    loaded = probe["modules"]
    heavy = sorted({m.split(".")[0] for m in loaded} & HEAVY_MODULES)
    if heavy:
        raise _Failed(f"importing {module} imports {', '.join(heavy)}")
    target_module = s.entry.spec.target.partition(":")[0]
    if target_module in loaded and target_module != module:
        raise _Failed(f"importing {module} imports the model code ({target_module})")
    seconds = probe["seconds"]
    if seconds > HOOK_IMPORT_BUDGET_SECONDS:
        raise _Failed(
            f"importing {module} takes {seconds:.2f} s (budget {HOOK_IMPORT_BUDGET_SECONDS:.1f} s)"
        )
    return f"{module} imports in {seconds * 1000:.1f} ms without torch"


def _check_plugin_api(s: _Subject) -> str:
    if s.entry is None:
        raise _Skipped("checked as a bare class, not through a plugin")
    declared = s.entry.plugin.api_version
    if declared is None:
        raise _Failed(f"{s.entry.plugin.module} does not declare ZOO_PLUGIN_API; assumed 1")
    return f"targets plugin API {declared}"


def _check_target_class(s: _Subject) -> str:
    if s.entry is not None:
        try:
            s.arch  # noqa: B018 (imports the class: the thing being checked)
        except PluginError as err:
            raise _Failed(err.message) from err
    cls = s.cls
    if not (isinstance(cls, type) and issubclass(cls, ZooModel)):
        raise _Failed(f"{cls!r} is not a ZooModel subclass")
    if not hasattr(cls, "Config"):
        raise _Failed(f"{cls.__qualname__} has no Config dataclass")
    return f"{cls.__module__}:{cls.__qualname__}"


def _check_config_defaults(s: _Subject) -> str:
    config_cls = s.cls.Config
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


def _check_config_json(s: _Subject) -> str:
    config = s.config()
    try:
        text = json.dumps(config_to_dict(config))
    except (TypeError, ValueError) as err:
        raise _Failed(f"the config is not JSON: {_describe(err)}") from err
    try:
        back = config_from_dict(s.cls.Config, json.loads(text))
    except ZooError as err:
        raise _Failed(f"the config's own JSON does not load back: {err}") from err
    if back != config:
        raise _Failed(f"the config came back from JSON as {back!r}, not {config!r}")
    return f"{len(text)} bytes of JSON, round-trips equal"


def _check_config_rejects_unknown(s: _Subject) -> str:
    overrides = {_UNKNOWN_FIELD: 1}
    try:
        with torch.device("meta"):
            s.cls(overrides)
    except ConfigError:
        return f"an unknown field ({_UNKNOWN_FIELD}) is a ConfigError"
    except Exception as err:
        raise _Failed(f"an unknown field raised {_describe(err)}, not a ConfigError") from err
    raise _Failed(f"an unknown config field ({_UNKNOWN_FIELD}) was accepted silently")


def _check_build_meta(s: _Subject) -> str:
    try:
        model = s.arch.build_meta(s.config())
        with torch.device("meta"):
            x = model.example_input(1)
    except Exception as err:
        raise _Failed(f"building on meta raised {_describe(err)}") from err
    real = [n for n, t in model.state_dict().items() if not t.is_meta]
    if real:
        raise _Failed(f"built on meta, but {_names(real)} hold real data")
    return f"{model.num_parameters:,} parameters, example input {_shape(x)}"


def _check_tp_plan(s: _Subject) -> str:
    plan = getattr(s.cls, "tp_plan", None)
    if plan is None:
        return "declares no tensor-parallel plan (parallel='tp' is not offered)"
    problems = plan_problems(s.arch.build_meta(s.config()), plan, mesh_size=2)
    if problems:
        raise _Failed("; ".join(problems))
    return f"{len(plan)} patterns fit a mesh of 2"


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
    return f"{model.num_parameters:,} parameters"


def _check_forward_finite(s: _Subject) -> str:
    model = s.build().eval()
    x = _example(model)
    with torch.no_grad():
        outputs = _forward(model, x)
    if _not_finite(outputs):
        raise _Failed(f"forward on example_input {_shape(x)} gave NaN or infinity")
    return f"{_shape(x)} -> {', '.join(_shape(t) for t in outputs)}"


def _check_gradients(s: _Subject) -> str:
    model = s.build().train()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        return "no trainable parameters"
    outputs = [t for t in _forward(model, _example(model)) if t.is_floating_point()]
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


def _check_seed_deterministic(s: _Subject) -> str:
    first, second = s.build().state_dict(), s.build().state_dict()
    if list(first) != list(second):
        raise _Failed("two builds with the same seed have different state-dict keys")
    differ = [k for k in first if not torch.equal(first[k], second[k])]
    if differ:
        raise _Failed(f"two builds with seed {_SEED} differ in {_names(differ)}")
    return f"two builds with seed {_SEED} are bit-identical"


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
        if loaded.config != model.config:
            raise _Failed(f"the config came back as {loaded.config!r}")
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
        x = _example(model)
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


def _check_wrong_shape(s: _Subject) -> str:
    model = s.build().eval()
    x = _example(model)
    bad = x.unsqueeze(-1)  # one trailing dimension more than forward was written for
    try:
        with torch.no_grad():
            model(bad)
    except ZooError as err:
        return f"{_shape(bad)} -> {type(err).__name__}: {err}"
    except Exception as err:
        raise _Failed(f"input {_shape(bad)} raised {_describe(err)}, not a zoo error") from err
    raise _Failed(f"input {_shape(bad)} was accepted (example_input is {_shape(x)})")


def _check_dtypes(s: _Subject) -> str:
    done = []
    for dtype in (torch.float64, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        model = s.build().to(dtype).eval()
        x = _example(model)
        if x.is_floating_point() and x.dtype != dtype:
            raise _Failed(f"after .to({name}), example_input is {x.dtype}")
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


def _check_device_move(s: _Subject) -> str:
    device = _accelerator()
    if device is None:
        raise _Skipped("no GPU here")
    model = s.build().to(device).eval()
    x = _example(model)
    if x.device.type != device:
        raise _Failed(f"after .to({device!r}), example_input is on {x.device}")
    with torch.no_grad():
        outputs = _forward(model, x)
    off = [t.device for t in outputs if t.device.type != device]
    if off:
        raise _Failed(f"after .to({device!r}), forward returned a tensor on {off[0]}")
    if _not_finite(outputs):
        raise _Failed(f"on {device}, forward gave NaN or infinity")
    return f"builds, moves and runs on {device}"


def _check_export(s: _Subject) -> str:
    model = s.build().eval()
    x = _example(model)
    with _quiet():
        try:
            torch.export.export(model, (x,))
            return "torch.export succeeds"
        except Exception as err:
            export_error = err
        try:
            torch.jit.script(model)
            return f"torch.export failed ({_describe(export_error)}); torch.jit.script succeeds"
        except Exception:
            pass
    raise _Failed(f"torch.export failed: {_describe(export_error)}")


CHECKS: tuple[Check, ...] = (
    Check(
        "hook-light",
        "zoo list imports every hook module and must stay instant: no torch, no model code",
        "import only zoo_core's ModelSpec/hookimpl in the hook module; name the model class "
        "as a 'package.module:Class' string and keep the package's __init__.py empty",
        _check_hook_light,
    ),
    Check(
        "plugin-api",
        "a declared plugin API lets zoo report an incompatible plugin instead of crashing later",
        "add ZOO_PLUGIN_API = 1 to the hook module (the version in zoo_core.PLUGIN_API_VERSION)",
        _check_plugin_api,
        level="warning",
    ),
    Check(
        "target-class",
        "the ModelSpec's target is what create_model and load_model build",
        "make the target 'package.module:Class' name a ZooModel subclass that imports cleanly",
        _check_target_class,
    ),
    Check(
        "config-defaults",
        "create_model(name) and zoo load NAME build a model from the defaults alone",
        "make Config a @dataclass whose every field has a type and a default",
        _check_config_defaults,
        needs=("target-class",),
    ),
    Check(
        "config-json",
        "config.json stores the config; a value JSON cannot hold cannot be saved or shared",
        "use JSON types in the Config (int, float, bool, str, Literal, tuples and lists of them)",
        _check_config_json,
        needs=("config-defaults",),
    ),
    Check(
        "config-rejects-unknown",
        "a misspelt --set key must be an error, not a silently ignored setting",
        "pass the config straight to ZooModel.__init__ (super().__init__(config)) "
        "and do not filter it first",
        _check_config_rejects_unknown,
        needs=("config-defaults",),
    ),
    Check(
        "build-meta",
        "load_model builds on the meta device and then assigns the saved tensors",
        "do not read tensor values in __init__ (.item(), .tolist(), numpy, data-dependent "
        "shapes); compute sizes from the config",
        _check_build_meta,
        needs=("config-defaults",),
    ),
    Check(
        "tp-plan",
        "load_model(..., mesh=mesh, parallel='tp') shards the modules a declared tp_plan names",
        "map module name patterns ('layers.*.fc1', * matches one name part) of nn.Linear or "
        "nn.Embedding layers to 'colwise', 'rowwise' or 'replicate', with sizes even",
        _check_tp_plan,
        needs=("build-meta",),
    ),
    Check(
        "build-cpu",
        "create_model builds with real, finite initial weights",
        "make __init__ build every layer from the config and initialise it to finite values",
        _check_build_cpu,
        needs=("config-defaults",),
    ),
    Check(
        "forward-finite",
        "zoo load, summaries and these checks run forward on example_input",
        "return from example_input(batch_size) a tensor forward accepts, on the model's "
        "device and dtype (self.randn_like_input helps), and keep outputs finite",
        _check_forward_finite,
        needs=("build-cpu",),
    ),
    Check(
        "gradients",
        "a parameter with no gradient is a layer defined but unused, or work done outside "
        "forward, where autograd cannot see it",
        "use every layer in forward, or delete it; move computation from __init__ into forward; "
        "freeze on purpose with requires_grad_(False)",
        _check_gradients,
        needs=("forward-finite",),
    ),
    Check(
        "state-dict-stable",
        "saved weights are matched to a fresh model by key name, shape and dtype",
        "name submodules from the config only (no counters, ids or random names) and build "
        "them in a fixed order",
        _check_state_dict_stable,
        needs=("build-cpu",),
    ),
    Check(
        "seed-deterministic",
        "create_model(seed=N) and zoo save --seed N promise reproducible weights",
        "initialise only with torch's random functions (torch.nn.init, torch.randn), "
        "never Python's random, numpy or the clock",
        _check_seed_deterministic,
        needs=("build-cpu",),
    ),
    Check(
        "save-load-exact",
        "weights shared through zoo save / zoo push must come back bit-exact",
        "register every tensor forward uses as a parameter or a buffer (not a plain "
        "attribute) and keep state_dict() untouched",
        _check_save_load,
        needs=("build-cpu", "forward-finite", "config-json", "build-meta"),
    ),
    Check(
        "wrong-shape-error",
        "a user's wrong input must say what shape was expected, not fail deep in a matmul",
        "begin forward with self.check_input(x, ('batch', ...)), which raises InputShapeError",
        _check_wrong_shape,
        needs=("forward-finite",),
    ),
    Check(
        "dtype-casts",
        "zoo load --dtype float64 / bfloat16 casts the weights; forward must follow",
        "do not hard-code dtypes in forward (x.float(), dtype=torch.float32); keep tensors as "
        "parameters or buffers so .to() casts them; build inputs with self.randn_like_input",
        _check_dtypes,
        needs=("forward-finite",),
    ),
    Check(
        "device-move",
        "zoo load --device cuda moves the weights; forward must run where they are",
        "do not hard-code devices in forward; create new tensors with device=x.device",
        _check_device_move,
        needs=("forward-finite",),
    ),
    Check(
        "export",
        "an exportable model can be deployed with torch.export (a warning, not a failure)",
        "avoid Python control flow on tensor values in forward (if x.sum() > 0: ...)",
        _check_export,
        level="warning",
        needs=("forward-finite",),
    ),
)
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

    blocked = [n for n in check.needs if done[n].status in ("fail", "skip")]
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
    model: str | type,
    config: Any = None,
    *,
    only: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> ModelReport:
    """Run the conformance checks on a model and return every result (never raises on failure).

    Args:
        model: a model name (bare or ``DIST:NAME``) or a ZooModel subclass.
            A class that no installed plugin registers skips the plugin checks.
        config: a Config instance or a mapping of overrides; the defaults if None.
        only: run just these checks (and the checks they need, unreported).
        progress: called as ``progress(done, total)`` after each check.

    Raises:
        ModelNotFoundError, AmbiguousModelError: ``model`` names nothing, or several things.

    >>> report = run_checks("simple_cnn")                     # doctest: +SKIP
    >>> [r.check for r in report.results if r.status != "pass"]   # doctest: +SKIP
    ['device-move']
    """
    subject = _Subject(model, config)
    selected = _closure(only) if only is not None else list(CHECKS)
    done: dict[str, CheckResult] = {}
    for check in selected:
        done[check.name] = _run_one(check, subject, done)
        if progress is not None:
            progress(len(done), len(selected))
    reported = [done[n] for n in (only if only is not None else list(done))]
    plugin = subject.entry.plugin.name if subject.entry is not None else None
    return ModelReport(subject.label, plugin, tuple(reported))


def check_model(model: str | type, config: Any = None) -> ModelReport:
    """Run every conformance check; raise one error listing each failure.

    Returns the report (warnings and skips included) when nothing failed.

    Raises:
        ConformanceError: one or more checks failed; the message lists each
            failure with its reason and a fix, and ``err.report`` holds them all.

    >>> check_model("simple_rnn")                             # doctest: +SKIP
    <ModelReport simple_rnn: 16 passed, 1 skipped>
    """
    report = run_checks(model, config)
    if not report.passed:
        raise ConformanceError(report)
    return report


class _CheckRunner:
    """The ``check`` argument of a test made by :func:`parametrize_with_checks`."""

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config

    def __call__(self, model: str | type) -> CheckResult:
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


def parametrize_with_checks(models: Sequence[str | type], config: Any = None) -> Any:
    """A ``pytest.mark.parametrize`` giving one test per (model, check).

    The test receives ``model`` (a name or class, as given) and ``check`` (a
    callable that runs one check on it: a failure fails the test, a check that
    does not apply skips it, a warning-level failure warns).

    >>> from zoo_core.testing import parametrize_with_checks
    >>> @parametrize_with_checks(["simple_cnn"])             # doctest: +SKIP
    ... def test_zoo_conformance(model, check):
    ...     check(model)
    """
    import pytest

    if isinstance(models, (str, type)):
        models = [models]
    params = []
    for model in models:
        label = model if isinstance(model, str) else model.__qualname__
        for check in CHECKS:
            params.append(
                pytest.param(model, _CheckRunner(check.name, config), id=f"{label}-{check.name}")
            )
    return pytest.mark.parametrize(("model", "check"), params)
