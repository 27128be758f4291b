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
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import redirect_stdout
from typing import Any

# Importing these declares the checks; a check's ``needs`` name earlier ones, so order matters.
# isort: off
from zoo_core.kit import checks_plugin  # noqa: F401
from zoo_core.kit import checks_build  # noqa: F401
from zoo_core.kit import checks_inputs  # noqa: F401
from zoo_core.kit import checks_deploy  # noqa: F401
from zoo_core.kit import checks_limits  # noqa: F401

# isort: on
from zoo_core.kit.framework import (
    REGISTERED,
    Check,
    CheckResult,
    ConformanceError,
    Failed,
    ModelReport,
    Skipped,
    Status,
    Subject,
    Undeclared,
    ZooCheckWarning,
    describe_error,
)
from zoo_core.progress import ProgressCallback

__all__ = [
    "CHECKS",
    "Check",
    "CheckResult",
    "ConformanceError",
    "ModelReport",
    "ZooCheckWarning",
    "check_model",
    "parametrize_with_checks",
    "run_checks",
]

CHECKS: tuple[Check, ...] = tuple(REGISTERED)
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


def _run_one(check: Check, subject: Subject, done: dict[str, CheckResult]) -> CheckResult:
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
    except Skipped as err:
        return result("skip", str(err))
    except Undeclared as err:
        return result("warn", str(err))
    except Failed as err:
        found = result("warn" if check.level == "warning" else "fail", str(err))
        return found if err.hint is None else dataclasses.replace(found, hint=err.hint)
    except Exception as err:  # a plugin's code can fail in any way: that is a finding
        return result("warn" if check.level == "warning" else "fail", describe_error(err))


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
            the model. Those the model's ``ModelSpec(expected_failures=...)``
            declares count too (``zoo check`` honours them the same way).
        progress: called as ``progress(done, total)`` after each check.

    Whatever the model's own code prints while it is checked is kept off
    stdout; ``report.output`` has each distinct line once.

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
    subject = Subject(model, config)
    expected = {**subject.expected_failures, **expected}
    selected = _closure(only) if only is not None else list(CHECKS)
    done: dict[str, CheckResult] = {}
    printed = io.StringIO()
    for one in selected:
        # Capability checks try undeclared capabilities only on a model that passes so far.
        subject.memo["failed"] = [n for n, r in done.items() if r.status == "fail"]
        # A model that prints in __init__ or forward would print once per build.
        with redirect_stdout(printed):
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
    output = tuple(dict.fromkeys(line for line in printed.getvalue().splitlines() if line.strip()))
    return ModelReport(subject.label, plugin, tuple(reported), output)


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
        if result.status == "xfail":  # declared in the model's ModelSpec
            pytest.xfail(f"{self.name}: {result.message}")
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
    pass is reported so that the entry can be removed. Failures the model's
    ``ModelSpec(expected_failures=...)`` declares are reported as ``xfail`` too,
    as ``zoo check`` reports them.

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
