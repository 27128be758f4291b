"""Sharded loading on two ranks against a full single-process load, side by side.

A model of about 1 GiB (float32) is saved once: ``linear_regression`` (one
big weight) or, with ``--model transformer``, a ``tiny_transformer`` of 197
tensors. Then, each in fresh processes and taking turns within every
repetition:

- ``full``: one process, ``zoo_core.load_model(dir)``;
- ``pread``, ``slice``, ``dcp``: ``torchrun --nproc-per-node 2`` (gloo, CPU),
  ``parallel="fsdp"``, filling each rank's shard with zoo's ``pread`` of the
  owned byte ranges, with ``safe_open(...).get_slice(name)[rows]``, or with
  ``torch.distributed.checkpoint.load`` and its ``HuggingFaceStorageReader``;
- ``tp`` (transformer only): ``parallel="tp"`` with zoo's reads.

Columns: ``load`` is the load call alone (build on meta, shard, allocate,
read; median over repetitions, the slower rank for sharded loads; the ratio
is to the ``pread`` row); ``RSS growth`` is the resident high-water mark
(``VmHWM``, reset just before the load) minus the resident set before it, per
rank (the larger of the two); ``bytes read`` is what the rank read from the
files. Every load ends by touching each 4 KiB page of its tensors, so a lazy
memory map pays for what it defers. Files are in the page cache (warm).

    python benchmarks/bench_distributed.py                      # 1 GiB, 3 repetitions
    python benchmarks/bench_distributed.py --model transformer  # many tensors
    python benchmarks/bench_distributed.py --mib 64 --reps 1 --dir /tmp/zoo-dist
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Sharded methods: (reader, parallel).
METHODS = {"pread": ("pread", "fsdp"), "slice": ("slice", "fsdp"), "dcp": ("dcp", "fsdp")}
METHODS["tp"] = ("pread", "tp")
LABELS = {
    "full": "load_model, 1 process (full)",
    "pread": "fsdp, zoo pread of owned ranges",
    "slice": "fsdp, safe_open get_slice[rows]",
    "dcp": "fsdp, DCP HuggingFaceStorageReader",
    "tp": "tp, zoo pread of owned ranges",
}
TARGET = 0.6  # each rank's memory growth, as a fraction of the full load's


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _touch(tensors: Any) -> float:
    total = 0.0
    for t in tensors:
        flat = t.detach().reshape(-1)
        step = max(1, 4096 // t.element_size())
        total += float(flat[::step].float().sum())
    return total


def _measure(load: Any) -> dict[str, float]:
    before = _status("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    tensors, bytes_read = load()
    _touch(tensors)
    seconds = time.perf_counter() - started
    return {"load": seconds, "growth": _status("VmHWM") - before, "bytes": bytes_read}


# Child side ----------------------------------------------------------------------------------


def child_full(directory: Path) -> dict[str, float]:
    import zoo_core

    def load(source: Path = directory) -> tuple[list[Any], int]:
        model = zoo_core.load_model(source)
        size = sum(p.stat().st_size for p in source.glob("*.safetensors"))
        return list(model.state_dict().values()), size

    load(directory.with_name("warm-up"))  # imports and plugin discovery, not measured
    return _measure(load)


def child_rank(directory: Path, reader: str, parallel: str) -> dict[str, float]:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from zoo_core.distributed import sharding as distributed
    from zoo_core.sources.resolve import saved_architecture
    from zoo_core.storage.weights import read_saved

    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))

    def opened(source: Path) -> tuple[Any, Any, Any]:
        saved = read_saved(source)
        arch, config = saved_architecture(saved)
        return saved, arch, config

    def load(source: Path = directory) -> tuple[list[Any], int]:
        saved, arch, config = opened(source)
        stats = distributed.LoadStats()
        model = distributed.load_sharded(
            arch, config, saved, mesh=mesh, parallel=parallel, reader=reader, stats=stats
        )
        local = [t.to_local() if isinstance(t, DTensor) else t for t in model.state_dict().values()]
        return local, stats.bytes_read

    load(directory.with_name("warm-up"))  # imports (FSDP, DCP) and plugin discovery
    dist.barrier()
    result = _measure(load)
    dist.destroy_process_group()
    return result


# Parent side ---------------------------------------------------------------------------------


def run_child(method: str, directory: Path, out: Path) -> list[dict[str, float]]:
    script = str(Path(__file__).resolve())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if method == "full":
        command = [sys.executable, script, "--child", "full", str(directory), str(out)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc-per-node", "2", script, "--child", method, str(directory), str(out)]
    for old in out.glob("result-*.json"):
        old.unlink()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr[-3000:]}")
    return [json.loads(p.read_text()) for p in sorted(out.glob("result-*.json"))]


def child_main(method: str, directory: Path, out: Path) -> None:
    rank = int(os.environ.get("RANK", "0"))
    if method == "full":
        result = child_full(directory)
    else:
        reader, parallel = METHODS[method]
        result = child_rank(directory, reader, parallel)
    (out / f"result-{rank}.json").write_text(json.dumps(result))


def model_config(kind: str, mib: int) -> tuple[str, dict[str, int], str]:
    """A model of about ``mib`` MiB of float32: its name, config and a description."""
    if kind == "linear":
        elements = mib * 2**20 // 4
        out = 1 << ((elements.bit_length() - 1) // 2)
        config = {"input_dim": elements // out, "output_dim": out}
        return "linear_regression", config, f"{elements // out}x{out}, 2 tensors"
    # A transformer of many tensors, as DCP's planning sees in real models: 16 layers of
    # width 1024 hold 201M parameters; the embedding table makes up the rest.
    width, layers, per_layer = 1024, 16, 12 * 1024 * 1024 + 6 * 1024 + 3 * 1024 + 4096
    vocab = max(2, (mib * 2**20 // 4 - layers * per_layer) // width)
    config = {
        "d_model": width,
        "num_heads": 8,
        "num_layers": layers,
        "dim_feedforward": 4 * width,
        "vocab_size": vocab,
    }
    return (
        "tiny_transformer",
        config,
        f"{layers} layers of width {width}, {12 * layers + 5} tensors",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="model size in MiB (float32)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (medians)")
    parser.add_argument(
        "--model", choices=["linear", "transformer"], default="linear", help="which model"
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    parser.add_argument(
        "--child", nargs=3, metavar=("METHOD", "DIR", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return

    import torch

    import zoo_core

    work = Path(args.dir or tempfile.mkdtemp(prefix="zoo-dist-"))
    work.mkdir(parents=True, exist_ok=True)
    name, config, shape = model_config(args.model, args.mib)
    model_dir = work / f"{args.model}-{args.mib}"
    try:
        if not (model_dir / "config.json").exists():
            zoo_core.save_model(zoo_core.create_model(name, seed=0, **config), model_dir)
        if not (work / "warm-up" / "config.json").exists():
            small = zoo_core.create_model("tiny_transformer", seed=0)
            zoo_core.save_model(small, work / "warm-up")
        methods = ["full", *(m for m in METHODS if args.model == "transformer" or m != "tp")]
        runs: dict[str, list[list[dict[str, float]]]] = {m: [] for m in methods}
        for rep in range(args.reps):
            # Rotate the starting method so a busy neighbour slows them all alike.
            order = methods[rep % len(methods) :] + methods[: rep % len(methods)]
            for method in order:
                runs[method].append(run_child(method, model_dir, work))
        title = f"{args.mib} MiB ({name}, {shape}, float32)"
        print_table(title, args.reps, runs, torch.__version__)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


def print_table(title: str, reps: int, runs: dict[str, Any], torch_version: str) -> None:
    def median(method: str, key: str) -> float:
        # Per repetition, the worst rank (the job waits for the slowest; memory per rank).
        return statistics.median(max(r[key] for r in ranks) for ranks in runs[method])

    base_load = median("pread", "load")
    full_growth, full_bytes = median("full", "growth"), median("full", "bytes")
    print(f"**Sharded load, {title}: 2 ranks, gloo/CPU, torch {torch_version}, ", end="")
    print(f"{reps} repetitions, medians**\n")
    print(
        "| method | load | vs pread | RSS growth / rank | vs full | bytes read / rank | vs full |"
    )
    print("|---|---|---|---|---|---|---|")
    for method in runs:
        load, growth = median(method, "load"), median(method, "growth")
        read = median(method, "bytes")
        print(
            f"| {LABELS[method]} | {load:.2f} s | {load / base_load:.2f}x "
            f"| {growth / 2**20:,.0f} MiB | {growth / full_growth:.2f}x "
            f"| {read / 2**20:,.0f} MiB | {read / full_bytes:.2f}x |"
        )
    ratio = median("pread", "growth") / full_growth
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"\ntarget: each rank's RSS growth <= {TARGET}x the full load's (fsdp, pread): ", end="")
    print(f"{ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
