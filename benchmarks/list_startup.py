"""How long `zoo list` takes, whole process, next to the floors it cannot beat.

Runs each command several times, in a new random order each round, and prints the medians and the
ratio to a bare `python -c pass` (and to `python -c "import torch"`).

    python benchmarks/list_startup.py [--runs 21]
    python benchmarks/list_startup.py --plugins 100 [--runs 15] [--before DIR]

``--plugins N`` builds N throwaway plugin wheels (5 models each), installs them
with pip into a temporary site directory, and times `zoo list` with the 4
bundled plugins and with 4+N, each with a warm plugin cache (left from the run
before) and cold (cache directory emptied before every run), side by side with
``import torch``. The 4-plugin rows run with an empty site directory on
``PYTHONPATH``, so both environments have the same ``sys.path`` shape.
``--before DIR`` adds rows for another checkout's ``zoo_core`` (a directory
that holds the package, e.g. from ``git archive main``) in the same
environments, to compare cold listing with the code before the cache.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

MODELS_PER_PLUGIN = 5


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def plugin_wheel(index: int, dest: Path) -> Path:
    """Write the wheel of throwaway plugin ``index`` (5 models, never built) into ``dest``."""
    package = f"zoo_bench_p{index:03d}"
    dist = package.replace("_", "-")
    specs = "\n".join(
        f"        ModelSpec('{package}_m{m}', '{package}.model:M{m}', 'model {m}', ('bench',)),"
        for m in range(MODELS_PER_PLUGIN)
    )
    files = {
        f"{package}/__init__.py": b"",
        f"{package}/plugin.py": (
            "from zoo_core import ModelSpec, hookimpl\n\n"
            "ZOO_PLUGIN_API = 1\n\n\n"
            "@hookimpl\n"
            "def zoo_register_models():\n"
            f"    return [\n{specs}\n    ]\n"
        ).encode(),
        f"{package}-0.1.0.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\nSummary: bench plugin\n"
        ).encode(),
        f"{package}-0.1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: zoo-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{package}-0.1.0.dist-info/entry_points.txt": (
            f"[zoo]\nbench = {package}.plugin\n".encode()
        ),
    }
    record = f"{package}-0.1.0.dist-info/RECORD"
    lines = [_record_line(name, data) for name, data in files.items()] + [f"{record},,"]
    path = dest / f"{package}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(record, "\n".join(lines) + "\n")
    return path


def install_plugins(count: int, site: Path, work: Path) -> None:
    """Build ``count`` plugin wheels and install them with pip into the directory ``site``."""
    wheels = [plugin_wheel(i, work) for i in range(count)]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-index", "--target", str(site), *map(str, wheels)],
        check=True,
    )  # fmt: skip


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(
    runs: int, commands: dict[str, tuple[list[str], dict[str, str], Path | None]]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU (user + system) seconds of each command, ``runs`` times, alternating."""
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    order = list(commands.items())
    shuffle = random.Random(0).shuffle
    for _ in range(runs):
        shuffle(order)  # a new order each round: load spikes and position effects hit all rows
        for name, (cmd, env, cold_cache) in order:
            if cold_cache is not None:
                shutil.rmtree(cold_cache, ignore_errors=True)
            cpu_before, started = _cpu_seconds(), time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(_cpu_seconds() - cpu_before)
    return wall, cpu


def _table(
    times: dict[str, list[float]], references: dict[str, str], cpu: dict | None = None
) -> None:
    """Medians (and CPU medians), with the ratio to each reference row (name: column label)."""
    medians = {name: statistics.median(values) for name, values in times.items()}
    header = f"{'command':36} {'median s':>9} {'min s':>7}"
    header += f" {'cpu s':>7}" if cpu else ""
    for label in references.values():
        header += f" {'x ' + label:>10}"
    print(header)
    for name, values in times.items():
        line = f"{name:36} {medians[name]:9.3f} {min(values):7.3f}"
        line += f" {statistics.median(cpu[name]):7.3f}" if cpu else ""
        for ref in references:
            line += f" {medians[name] / medians[ref]:10.3f}"
        print(line)


def startup(runs: int) -> None:
    zoo = shutil.which("zoo") or str(Path(sys.executable).with_name("zoo"))
    env = dict(os.environ)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "zoo --help": [zoo, "--help"],
        "zoo list": [zoo, "list"],
        "zoo list --json": [zoo, "list", "--json"],
        "zoo plugins": [zoo, "plugins"],
    }
    times, _ = _time(runs, {name: (cmd, env, None) for name, cmd in commands.items()})
    _table(times, {"python -c pass": "python"})


def plugin_count(runs: int, count: int, before: Path | None) -> None:
    zoo = [shutil.which("zoo") or str(Path(sys.executable).with_name("zoo")), "list"]
    with tempfile.TemporaryDirectory(prefix="zoo-list-bench-") as tmp:
        root = Path(tmp)
        empty, site, wheels = root / "site-4", root / f"site-4+{count}", root / "wheels"
        for d in (empty, site, wheels):
            d.mkdir()
        started = time.perf_counter()
        install_plugins(count, site, wheels)
        print(f"installed {count} plugins x {MODELS_PER_PLUGIN} models with pip in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        base = {k: v for k, v in os.environ.items() if k not in ("ZOO_PLUGINS", "ZOO_NO_CACHE")}

        def env(sitedir: Path, cache: Path, extra: Path | None = None) -> dict[str, str]:
            path = [str(extra)] if extra else []
            path.append(str(sitedir))
            return {**base, "PYTHONPATH": os.pathsep.join(path), "XDG_CACHE_HOME": str(cache)}

        listed = subprocess.run(zoo, env=env(site, root / "check"), capture_output=True, text=True)
        rows = len(listed.stdout.splitlines()) - 1
        expected = 4 + count * MODELS_PER_PLUGIN  # the bundled plugins register one model each
        if listed.returncode != 0 or rows < expected:
            sys.exit(f"zoo list shows {rows} models, expected {expected}:\n{listed.stderr}")
        n = f"4+{count}"
        commands: dict[str, tuple[list[str], dict[str, str], Path | None]] = {
            "python -c 'import torch'": ([sys.executable, "-c", "import torch"], dict(base), None),
            "zoo list, 4 plugins, warm": (zoo, env(empty, root / "warm4"), None),
            f"zoo list, {n} plugins, warm": (zoo, env(site, root / "warmN"), None),
            "zoo list, 4 plugins, cold": (zoo, env(empty, root / "cold4"), root / "cold4"),
            f"zoo list, {n} plugins, cold": (zoo, env(site, root / "coldN"), root / "coldN"),
        }
        if before is not None:
            commands["before: zoo list, 4 plugins"] = (zoo, env(empty, root / "b4", before), None)
            commands[f"before: zoo list, {n} plugins"] = (zoo, env(site, root / "bN", before), None)
        for _, cmd_env, _ in commands.values():  # fill the warm caches, compile bytecode
            subprocess.run(zoo, env=cmd_env, check=True, capture_output=True)
        wall, cpu = _time(runs, commands)
        print(f"{runs} runs each, shuffled every round; ratios of wall-clock medians")
        _table(
            wall, {"python -c 'import torch'": "torch", "zoo list, 4 plugins, warm": "warm 4"}, cpu
        )
        print("\nratio of medians: wall (cpu, user + system: steadier on a busy machine)")
        for what, num, den, target in [
            (f"warm {n} / warm 4", f"zoo list, {n} plugins, warm", "zoo list, 4 plugins, warm",
             "<= 1.15x"),
            ("warm 4 / import torch", "zoo list, 4 plugins, warm", "python -c 'import torch'",
             "<= 0.08x"),
            *[(f"cold {k} / before {k}", f"zoo list, {k} plugins, cold",
               f"before: zoo list, {k} plugins", "<= 1.0x") for k in ("4", n) if before],
        ]:  # fmt: skip
            ratios = [statistics.median(t[num]) / statistics.median(t[den]) for t in (wall, cpu)]
            print(f"{what:24} {ratios[0]:6.3f}x ({ratios[1]:.3f}x)  target {target}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=None, help="repetitions (21, or 15 with N)")
    parser.add_argument("--plugins", type=int, default=0, metavar="N", help="add N plugins")
    parser.add_argument("--before", type=Path, help="a directory holding an older zoo_core")
    args = parser.parse_args()
    if args.plugins:
        plugin_count(args.runs or 15, args.plugins, args.before)
    else:
        startup(args.runs or 21)


if __name__ == "__main__":
    main()
