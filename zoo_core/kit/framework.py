"""The conformance kit's machinery: what a check is, its result, the model under test.

Checks are declared with :func:`check` in :mod:`zoo_core.kit.checks_plugin`,
:mod:`zoo_core.kit.checks_build`, :mod:`zoo_core.kit.checks_inputs` and
:mod:`zoo_core.kit.checks_deploy` (run in that order); :mod:`zoo_core.kit.checks`
runs them. The public face is
:mod:`zoo_core.testing`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from zoo_core.errors import PluginError, ZooError, error_text
from zoo_core.models.build import Architecture
from zoo_core.models.model import call_model, input_tensors, output_tensors
from zoo_core.plugins.contract import CAPABILITIES
from zoo_core.plugins.registry import ModelEntry, get_registry

__all__ = [
    "HEAVY_MODULES",
    "HOOK_IMPORT_BUDGET_SECONDS",
    "SEED",
    "UNKNOWN_FIELD",
    "Check",
    "CheckResult",
    "ConformanceError",
    "Failed",
    "ModelReport",
    "Skipped",
    "Status",
    "Subject",
    "Undeclared",
    "ZooCheckWarning",
    "check",
]

Status = Literal["pass", "fail", "warn", "skip", "xfail"]

#: What importing a hook module may cost on top of ``import zoo_core``. The
#: bundled plugins take about a millisecond; torch alone takes about a second.
HOOK_IMPORT_BUDGET_SECONDS = 0.5
#: Modules a hook module must not import: any of them makes ``zoo list`` slow.
HEAVY_MODULES = frozenset(
    {"torch", "numpy", "safetensors", "huggingface_hub", "scipy", "pandas", "jax", "tensorflow"}
)
UNKNOWN_FIELD = "zoo_check_no_such_field"
SEED = 0


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


class Failed(Exception):
    """Raised by a check function: the check failed, with this message.

    ``hint`` replaces the check's own fix when this failure needs another one
    (a class one cannot edit is fixed in its spec, not in its code).
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Skipped(Exception):
    """Raised by a check function: the check does not apply here."""


class Undeclared(Exception):
    """Raised by a capability check: it works, but the spec does not declare it (a warning)."""


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
    run: Callable[[Subject], str]
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
    #: Distinct lines the model's own code printed while it was checked (kept off stdout).
    output: tuple[str, ...] = ()

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def undeclared(self) -> list[str]:
        """Capabilities that work but the model's spec does not declare (``supports=``)."""
        return [r.check for r in self.results if r.check in CAPABILITIES and r.status == "warn"]

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
            "undeclared": self.undeclared,
            "checks": [r.as_dict() for r in self.results],
            "output": list(self.output),
        }

    def __repr__(self) -> str:
        return f"<ModelReport {self.label}: {self.summary()}>"


class Subject:
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
        # What one check made and a later one reuses (the traced program, for ONNX).
        self.memo: dict[str, Any] = {}

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

    @property
    def expected_failures(self) -> dict[str, str]:
        """``{check: reason}`` the model's spec declares (``ModelSpec(expected_failures=...)``)."""
        return dict(self.entry.spec.expected_failures) if self.entry is not None else {}

    def config(self) -> Any:
        if self.config_arg is None or isinstance(self.config_arg, Mapping):
            return self.arch.config(self.config_arg)
        return self.config_arg

    def build(self, *, seed: int = SEED, device: str = "cpu", config: Any = None) -> nn.Module:
        # Built the way create_model builds: a local seed that leaves the
        # caller's random state alone, under a default-device context.
        return self.arch.build(config or self.config(), seed=seed, device=device)

    def example(self, model: nn.Module, batch_size: int = 2) -> Any:
        """The model's example input; a failure to make one is the check's finding."""
        try:
            inputs = self.arch.example_input(model, batch_size)
        except ZooError as err:
            raise Failed(f"example_input raised {err}") from err
        if not input_tensors(inputs):
            raise Failed(
                f"example_input returned {type(inputs).__name__}, not a tensor, "
                "a tuple of tensors or a dict of tensors"
            )
        return inputs


# --- helpers -----------------------------------------------------------------


def shape_text(x: torch.Tensor) -> str:
    return str(tuple(x.shape))


def describe_error(err: BaseException) -> str:
    """``TypeName: first line`` of an error, shortened between words for a one-line finding."""
    return error_text(err, lines=1, chars=200)


def few_names(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def input_shapes(inputs: Any) -> str:
    """The shapes of a model's inputs: ``(2, 8)``, ``((2, 8), (2, 8))`` or ``{x: (2, 8)}``."""
    pairs = input_tensors(inputs)
    if isinstance(inputs, torch.Tensor):
        return shape_text(inputs)
    if isinstance(inputs, Mapping):
        return "{" + ", ".join(f"{k}: {shape_text(t)}" for k, t in pairs) + "}"
    return "(" + ", ".join(shape_text(t) for _, t in pairs) + ")"


def forward_tensors(model: nn.Module, x: Any) -> list[torch.Tensor]:
    try:
        out = call_model(model, x)
    except Exception as err:
        raise Failed(
            f"forward on example_input {input_shapes(x)} raised {describe_error(err)}"
        ) from err
    tensors = list(output_tensors(out))
    if not tensors:
        raise Failed(f"forward returned {type(out).__name__}, which holds no tensor")
    return tensors


def not_finite(tensors: Sequence[torch.Tensor]) -> bool:
    return any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors)


# --- the checks ----------------------------------------------------------------

REGISTERED: list[Check] = []


def check(
    name: str,
    *,
    reason: str,
    hint: str,
    level: Literal["error", "warning"] = "error",
    needs: Sequence[str] = (),
) -> Callable[[Callable[[Subject], str]], Callable[[Subject], str]]:
    """Declare a check: its metadata sits beside the function that runs it.

    The function takes the model under test and returns a one-line finding; it
    raises to fail. Checks run in the order they are declared, so ``needs`` may
    name only checks declared before.
    """

    def register(func: Callable[[Subject], str]) -> Callable[[Subject], str]:
        known = {c.name for c in REGISTERED}
        unknown = [n for n in needs if n not in known]
        if name in known or unknown:
            raise ValueError(f"check {name!r}: duplicate name or unknown needs {unknown}")
        REGISTERED.append(Check(name, reason, hint, func, level, tuple(needs)))
        return func

    return register
