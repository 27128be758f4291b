"""Loading and saving weights, side by side: zoo against safetensors, torch and huggingface_hub.

Every measurement runs in its own fresh Python process (so imports, page-table
set-up and peak memory are per method), the methods take turns within each
repetition (so a busy neighbour hurts them all alike), and the table reports
medians and ratios to the bare safetensors call. Files are in the page cache
(warm): this measures the software, not the disk.

    python benchmarks/bench_weights.py                 # 1 GiB and 100 MiB, 5 repetitions
    python benchmarks/bench_weights.py --sizes 100 --reps 3 --dir /tmp/zoo-bench

Columns: ``process`` is the wall time of the whole child process (interpreter
start, imports, the work); ``call`` is the work alone, timed inside the child;
``peak RSS`` is the child's maximum resident set (``ru_maxrss``). Loads finish
by touching every page of every tensor, so a lazy memory map is charged for
the reading it defers; saves of safetensors and torch run without fsync, zoo's
with fsync and a sha256 of every file (what ``save_model`` always does).
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

LOADS = ["safetensors", "zoo", "zoo_8byte", "zoo_bf16", "naive", "torch_load", "hub_mixin"]
SAVES = ["safetensors", "safetensors_fsync_sha256", "zoo", "torch_save"]
LABELS = {
    "safetensors": "safetensors.torch.load_file",
    "zoo": "zoo_core.load_model",
    "zoo_8byte": "zoo_core.load_model, file padded to 8 bytes (before issue 18)",
    "zoo_bf16": "zoo_core.load_model(dtype=bf16)",
    "naive": "build, then load_state_dict",
    "torch_load": "torch.load(weights_only=True)",
    "hub_mixin": "PyTorchModelHubMixin.from_pretrained",
}
SAVE_LABELS = {
    "safetensors": "safetensors.torch.save_file",
    "safetensors_fsync_sha256": "save_file + fsync + sha256 after",
    "zoo": "zoo_core.save_model (fsync, sha256)",
    "torch_save": "torch.save",
}


def _dims(mib: int) -> tuple[int, int]:
    """linear_regression dims whose weight is ``mib`` MiB of float32 (square-ish)."""
    elements = mib * 2**20 // 4
    out = 1 << ((elements.bit_length() - 1) // 2)
    return elements // out, out


# Child side: one method, one process -----------------------------------------------------------


def _touch(tensors: Any) -> float:
    """Read one element per 4 KiB page of every tensor: forces lazy maps to load."""
    total = 0.0
    for t in tensors:
        flat = t.detach().reshape(-1)
        step = max(1, 4096 // t.element_size())
        total += float(flat[::step].float().sum())
    return total


def _peak_rss() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _hub_class() -> type:
    from huggingface_hub import PyTorchModelHubMixin

    from zoo_linear.model import LinearRegression

    class HubLinear(LinearRegression, PyTorchModelHubMixin):
        pass

    return HubLinear


def child_load(method: str, work: Path, dims: tuple[int, int]) -> dict[str, float]:
    import torch
    from safetensors.torch import load_file

    started = time.perf_counter()
    if method == "safetensors":
        tensors = list(load_file(work / "zoo" / "model.safetensors").values())
    elif method in ("zoo", "zoo_bf16", "zoo_8byte"):
        import zoo_core

        dtype = "bfloat16" if method == "zoo_bf16" else None
        where = work / ("zoo8" if method == "zoo_8byte" else "zoo")
        tensors = list(zoo_core.load_model(where, dtype=dtype).state_dict().values())
    elif method == "naive":
        import zoo_core

        model = zoo_core.create_model("linear_regression", input_dim=dims[0], output_dim=dims[1])
        model.load_state_dict(load_file(work / "zoo" / "model.safetensors"))
        tensors = list(model.state_dict().values())
    elif method == "torch_load":
        tensors = list(torch.load(work / "weights.pt", weights_only=True).values())
    elif method == "hub_mixin":
        tensors = list(_hub_class().from_pretrained(work / "zoo").state_dict().values())
    else:
        raise SystemExit(f"unknown load method {method}")
    _touch(tensors)
    return {"call": time.perf_counter() - started}


def child_save(method: str, work: Path, dims: tuple[int, int]) -> dict[str, float]:
    import torch

    import zoo_core

    model = zoo_core.create_model("linear_regression", input_dim=dims[0], output_dim=dims[1])
    state = model.state_dict()
    out = work / "out"
    started = time.perf_counter()
    if method == "safetensors":
        from safetensors.torch import save_file

        save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    elif method == "safetensors_fsync_sha256":
        import hashlib

        from safetensors.torch import save_file

        path = out / "model.safetensors"
        save_file(state, path, metadata={"format": "pt"})
        with open(path, "rb", buffering=0) as f:
            os.fsync(f.fileno())
            digest, buf = hashlib.sha256(), bytearray(8 << 20)
            while n := f.readinto(buf):
                digest.update(memoryview(buf)[:n])
    elif method == "zoo":
        zoo_core.save_model(model, out / "zoo")
    elif method == "torch_save":
        torch.save(state, out / "weights.pt")
    else:
        raise SystemExit(f"unknown save method {method}")
    return {"call": time.perf_counter() - started}


# Parent side -----------------------------------------------------------------------------------


def _run_child(kind: str, method: str, work: Path, dims: tuple[int, int]) -> dict[str, float]:
    args = [
        sys.executable,
        __file__,
        "--child",
        kind,
        method,
        str(work),
        str(dims[0]),
        str(dims[1]),
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    _, status, _usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else b""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} {method} failed")
    result = json.loads(out.splitlines()[-1])  # the mixin prints to stdout too
    # ru_maxrss of a child counts the forked parent before exec; the child reports VmHWM.
    result["process"] = wall
    return result


def _prepare(work: Path, dims: tuple[int, int]) -> None:
    import torch

    import zoo_core

    model = zoo_core.create_model("linear_regression", input_dim=dims[0], output_dim=dims[1])
    zoo_core.save_model(model, work / "zoo")
    _eight_byte_copy(work / "zoo", work / "zoo8")
    torch.save(model.state_dict(), work / "weights.pt")
    os.sync()


def _eight_byte_copy(source: Path, target: Path) -> None:
    """The same model as safetensors' own writer lays it out (the header padded to 8 bytes,
    tensors by dtype then name), as zoo wrote it before aligning files: what alignment costs
    or saves on load, side by side."""
    import hashlib

    from safetensors import safe_open
    from safetensors.torch import save_file

    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    with safe_open(weights, "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, weights, metadata=metadata)
    config = json.loads((target / "config.json").read_text())
    data = weights.read_bytes()
    config["files"]["model.safetensors"] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _fmt_row(label: str, med: dict[str, float], base: dict[str, float]) -> str:
    return (
        f"| {label} | {med['process']:.2f} s | {med['process'] / base['process']:.2f}x "
        f"| {med['call']:.3f} s | {med['call'] / base['call']:.2f}x "
        f"| {med['rss'] / 2**20:,.0f} MiB | {med['rss'] / base['rss']:.2f}x |"
    )


def _table(title: str, results: dict[str, list[dict[str, float]]], labels: dict[str, str]) -> str:
    med = {
        m: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for m, runs in results.items()
    }
    base = med["safetensors"]
    lines = [
        f"**{title}**",
        "",
        "| method | process | ratio | call | ratio | peak RSS | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_fmt_row(labels[m], med[m], base) for m in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,100", help="model sizes in MiB, comma-separated")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dir", help="where to write the files (default: a temporary directory)")
    parser.add_argument("--only", choices=["load", "save"], help="run only loads or only saves")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="zoo-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"# torch {torch.__version__}, {os.cpu_count()} CPUs, {args.reps} repetitions, {root}\n")
    try:
        for mib in (int(s) for s in args.sizes.split(",")):
            dims = _dims(mib)
            work = root / f"{mib}MiB"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            _prepare(work, dims)
            name = f"{mib} MiB (linear_regression {dims[0]}x{dims[1]}, float32)"
            if args.only != "save":
                loads: dict[str, list[dict[str, float]]] = {m: [] for m in LOADS}
                for rep in range(args.reps):
                    order = LOADS[rep % len(LOADS) :] + LOADS[: rep % len(LOADS)]
                    for method in order:
                        loads[method].append(_run_child("load", method, work, dims))
                print(_table(f"Load, {name}", loads, LABELS) + "\n", flush=True)
            if args.only != "load":
                saves: dict[str, list[dict[str, float]]] = {m: [] for m in SAVES}
                for rep in range(args.reps):
                    order = SAVES[rep % len(SAVES) :] + SAVES[: rep % len(SAVES)]
                    for method in order:
                        out = work / "out"
                        shutil.rmtree(out, ignore_errors=True)
                        out.mkdir()
                        os.sync()  # each save starts with no dirty pages from the last one
                        saves[method].append(_run_child("save", method, work, dims))
                print(_table(f"Save, {name}", saves, SAVE_LABELS) + "\n", flush=True)
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, method, work, d0, d1 = sys.argv[2:7]
        run = child_load if kind == "load" else child_save
        result = run(method, Path(work), (int(d0), int(d1)))
        result["rss"] = _peak_rss()
        print(json.dumps(result))
    else:
        main()
