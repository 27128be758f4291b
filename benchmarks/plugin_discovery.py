"""What guarding plugin discovery costs, and how discovery scales with the number of models.

Each plugin's hook module is imported and its hook called in a worker thread
(``zoo_core.plugins.registry`` explains why). Part 1 times discovering the installed
plugins with that guard and, side by side in the same run, with the hook called
directly; part 2 times discovery of one synthetic plugin registering N models,
to show the cost per model stays flat (building the registry was quadratic).

Usage: python benchmarks/plugin_discovery.py [--runs 21] [--sizes 5000,10000,20000,40000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from zoo_core.plugins import registry

HOOK = """
from zoo_core import ModelSpec, hookimpl

ZOO_PLUGIN_API = 1


@hookimpl
def zoo_register_models():
    return [ModelSpec(f"m_{{i:06d}}", "nowhere:Model") for i in range({count})]
"""


def _time_discovery(runs: int) -> float:
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            registry.get_registry(refresh=True)
        values.append(time.perf_counter() - started)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--sizes", default="5000,10000,20000,40000")
    args = parser.parse_args()
    # The plugin cache would answer without calling any hook (and so without the guard).
    os.environ["ZOO_NO_CACHE"] = "1"

    guarded = registry.run_guarded  # the benchmark compares it with a direct call

    def direct(calls, timeout):
        out = []
        for call in calls:
            started = time.perf_counter()
            try:
                out.append(("ok", call(), time.perf_counter() - started))
            except BaseException as err:
                out.append(("raised", err, time.perf_counter() - started))
        return out

    _time_discovery(3)  # warm up: imports and metadata caches
    rows = []
    for _ in range(args.runs):  # alternate, so load spikes hit both rows alike
        registry.run_guarded = guarded
        rows.append(("guarded", _time_discovery(1)))
        registry.run_guarded = direct
        rows.append(("direct", _time_discovery(1)))
    registry.run_guarded = guarded
    medians = {
        name: statistics.median(t for n, t in rows if n == name) for name in ("direct", "guarded")
    }
    print(f"**Discovering the installed plugins ({args.runs} runs, medians)**\n")
    print("| discovery | median ms | x direct |")
    print("|---|---:|---:|")
    for name, value in medians.items():
        print(f"| {name} | {value * 1000:.2f} | {value / medians['direct']:.2f} |")

    sizes = [int(s) for s in args.sizes.split(",") if s]
    print("\n**One plugin registering N models (3 runs each, medians)**\n")
    print("| models | median s | us per model | x smallest per model |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        first = None
        for count in sizes:
            module = f"zoo_bench_many_{count}"
            Path(tmp, f"{module}.py").write_text(HOOK.format(count=count))
            os.environ["ZOO_PLUGINS"] = module
            seconds = _time_discovery(3)
            per_model = seconds / count
            first = first or per_model
            print(f"| {count} | {seconds:.3f} | {per_model * 1e6:.1f} | {per_model / first:.2f} |")
        os.environ.pop("ZOO_PLUGINS", None)


if __name__ == "__main__":
    main()
