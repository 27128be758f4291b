"""Every public name of ``zoo_core`` is what it says, in whatever order it is reached.

A submodule named like a public function shadows it: importing ``zoo_core.predict`` (the
module) sets the package attribute ``predict`` to the module, and ``zoo_core.predict(...)``
then raises ``TypeError: 'module' object is not callable`` in one import order and not in
another. So no submodule may carry a public name, and every name is checked after the
names and the submodules are reached in many orders, each in a fresh import of zoo_core.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import zoo_core

ORDERS = 10

_SCRIPT = textwrap.dedent(
    """
    import importlib, inspect, json, pkgutil, random, sys, types
    import torch  # imported once: each order re-imports zoo_core, not torch

    def purge():
        for name in list(sys.modules):
            if name == "zoo_core" or name.startswith(("zoo_core.", "zoo_cnn", "zoo_rnn",
                                                      "zoo_linear", "zoo_transformer")):
                del sys.modules[name]

    def submodules(package):
        return sorted(
            m.name for m in pkgutil.walk_packages(package.__path__, "zoo_core.")
            if not m.name.endswith("__main__")
        )

    import zoo_core
    names = sorted(zoo_core.__all__)
    modules = submodules(zoo_core)
    problems = []
    for seed in range(ORDERS):
        purge()
        zoo_core = importlib.import_module("zoo_core")
        order = list(names)
        if seed == 1:
            order.reverse()
        elif seed > 1:
            random.Random(seed).shuffle(order)
        # Every submodule is imported at some point of the walk: before, between or after.
        cut = 0 if seed == 0 else len(order) if seed == 1 else random.Random(-seed).randrange(
            len(order) + 1
        )
        for i, name in enumerate(order + [None]):
            if i == cut:
                for module in modules:
                    importlib.import_module(module)
            if name is None:
                break
            via_from = getattr(importlib.import_module("zoo_core"), name)
            namespace = {}
            exec(f"from zoo_core import {name} as value", namespace)
            for value in (via_from, namespace["value"]):
                if isinstance(value, types.ModuleType):
                    problems.append(f"order {seed}: zoo_core.{name} is a module")
                elif name[0].islower() and not name.startswith("__") and not callable(value):
                    problems.append(f"order {seed}: zoo_core.{name} is not callable")
        # After the walk, once more: the first lookups may have been cached before the imports.
        for name in names:
            value = getattr(zoo_core, name)
            if isinstance(value, types.ModuleType):
                problems.append(f"order {seed}, afterwards: zoo_core.{name} is a module")
    print(json.dumps({"problems": problems, "names": names, "orders": ORDERS}))
    """
)


def test_no_submodule_is_named_like_a_public_name() -> None:
    modules = {m.name for m in pkgutil.iter_modules(zoo_core.__path__)}
    assert not modules & set(zoo_core.__all__)
    assert {"predict", "preprocess", "pull", "search", "list_models"}.isdisjoint(modules)


@pytest.mark.slow
def test_every_public_name_is_itself_in_every_order_of_imports() -> None:
    script = f"ORDERS = {ORDERS}\n" + _SCRIPT
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["problems"] == []
    assert report["orders"] == ORDERS and set(report["names"]) == set(zoo_core.__all__)
    for name in ("predict", "preprocess", "get_pretrained", "list_models", "create_model"):
        assert name in report["names"]


def test_the_readme_order_works_in_process() -> None:
    """The README's order that failed once: predict, then preprocess, then predict again."""
    import numpy as np

    from zoo_core import predict, preprocess

    model = zoo_core.load_model("simple_cnn.digits")
    raw = np.zeros((2, 8, 8))
    first = zoo_core.predict(model, raw)
    tensor = zoo_core.preprocess(model, raw)
    assert tensor.shape == (2, 1, 8, 8)
    assert predict is zoo_core.predict and preprocess is zoo_core.preprocess
    assert (predict(model, raw).outputs == first.outputs).all()
