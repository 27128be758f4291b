"""How long `zoo list` takes, whole process, next to the floors it cannot beat.

Runs each command several times, alternating, and prints the medians and the
ratio to a bare `python -c pass`. Usage: python benchmarks/list_startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    zoo = shutil.which("zoo") or str(Path(sys.executable).with_name("zoo"))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "zoo --help": [zoo, "--help"],
        "zoo list": [zoo, "list"],
        "zoo list --json": [zoo, "list", "--json"],
        "zoo plugins": [zoo, "plugins"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():  # alternate, so load spikes hit every row alike
            started = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':28} {'median s':>9} {'min s':>7} {'x python':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:28} {median:9.3f} {min(values):7.3f} {median / floor:9.2f}")


if __name__ == "__main__":
    main()
