"""The conformance kit's public face: check a plugin's models from pytest or Python.

>>> from zoo_core.testing import parametrize_with_checks
>>> @parametrize_with_checks(["mlp"])                 # doctest: +SKIP
... def test_zoo_conformance(model, check):
...     check(model)

The checks themselves live in :mod:`zoo_core.kit`.
"""

from zoo_core.kit.checks import (
    CHECKS,
    Check,
    CheckResult,
    ConformanceError,
    ModelReport,
    ZooCheckWarning,
    check_model,
    parametrize_with_checks,
    run_checks,
)
from zoo_core.models.build import config_of

__all__ = [
    "CHECKS",
    "Check",
    "CheckResult",
    "ConformanceError",
    "ModelReport",
    "ZooCheckWarning",
    "check_model",
    "config_of",
    "parametrize_with_checks",
    "run_checks",
]
