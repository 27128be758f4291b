"""What exposing a family of existing models costs `zoo list`: with and without it.

The family (13 torch.nn classes, tests/fixtures/family_torch_nn.json) was written
out by zoo_core.models.families.write_family; its hook module only reads that file. The
target: `zoo list` with the family within 10% of `zoo list` without it, and no
torch imported. Runs alternate, so load spikes hit both alike; prints medians and
the ratio. Usage: python benchmarks/list_family.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
TORCH_PROBE = "import sys, zoo_core; zoo_core.list_models(); print('torch' in sys.modules)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    zoo = shutil.which("zoo") or str(Path(sys.executable).with_name("zoo"))
    base = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "PYTHONPATH")}
    family = {**base, "ZOO_PLUGINS": "family_plugin", "PYTHONPATH": str(FIXTURES)}
    rows = {"zoo list (bundled)": base, "zoo list (bundled + 13-model family)": family}
    times: dict[str, list[float]] = {name: [] for name in rows}
    listed: dict[str, int] = {}
    for _ in range(args.runs):
        for name, env in rows.items():
            started = time.perf_counter()
            out = subprocess.run([zoo, "list"], check=True, capture_output=True, env=env)
            times[name].append(time.perf_counter() - started)
            listed[name] = len(out.stdout.splitlines()) - 1
    torch_loaded = subprocess.run(
        [sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True, env=family
    ).stdout.strip()
    floor = statistics.median(times["zoo list (bundled)"])
    print(f"{'command':40} {'models':>6} {'median s':>9} {'min s':>7} {'ratio':>6}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:40} {listed[name]:6} {median:9.3f} {min(values):7.3f} {median / floor:6.2f}")
    ratio = statistics.median(times["zoo list (bundled + 13-model family)"]) / floor
    met = ratio <= 1.10 and torch_loaded == "False"
    print(f"torch imported by the listing: {torch_loaded}")
    print(f"target: ratio <= 1.10 and no torch: {'met' if met else 'NOT met'} ({ratio:.2f})")


if __name__ == "__main__":
    main()
