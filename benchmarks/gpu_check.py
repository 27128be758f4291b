"""GPU check for zoo's weight path: correctness on CUDA, and load time against safetensors.

Run on a machine with a CUDA build of torch, from the repository root, after
``pip install -e . -e plugins/zoo-linear -e plugins/zoo-cnn -e plugins/zoo-rnn``:

    python benchmarks/gpu_check.py                 # about a minute; installs nothing
    python benchmarks/gpu_check.py --device cpu    # dry run of the same steps, no GPU needed

It checks (a) a bit-exact save/load round trip with ``device="cuda"`` for the
three bundled models, defaults and one overridden config each, and ``zoo load
--device cuda --json`` in a subprocess; and (b) times ``load_model(...,
device="cuda")`` of a ~1 GiB linear_regression against
``safetensors.torch.load_file(..., device="cuda")`` in this one process,
alternating, with ``torch.cuda.synchronize()``, reporting medians and the ratio
(target: at most 1.2x). It prints a compact table and exits 1 if a check fails.
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

CASES = [
    ("linear_regression", {}),
    ("linear_regression", {"input_dim": 7, "output_dim": 3}),
    ("simple_cnn", {}),
    ("simple_cnn", {"in_channels": 1, "image_size": 16, "channels": 4, "num_classes": 2}),
    ("simple_rnn", {}),
    ("simple_rnn", {"cell": "lstm", "num_layers": 2, "hidden_size": 8}),
]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def check_round_trips(device: str, work: Path) -> list[tuple[str, str, str]]:
    import torch

    import zoo_core

    rows = []
    for name, overrides in CASES:
        label = name + ("(" + ",".join(f"{k}={v}" for k, v in overrides.items()) + ")")
        try:
            model = zoo_core.create_model(name, seed=0, device=device, **overrides).eval()
            path = zoo_core.save_model(model, work / f"{name}-{len(overrides)}")
            loaded = zoo_core.load_model(path, device=device)
            a, b = model.state_dict(), loaded.state_dict()
            assert list(a) == list(b), "keys differ"
            for key in a:
                assert b[key].device == a[key].device, f"{key} on {b[key].device}"
                assert b[key].dtype == a[key].dtype and torch.equal(a[key], b[key]), key
            x = model.example_input(2)
            with torch.no_grad():
                same = torch.equal(zoo_core.call_model(model, x), zoo_core.call_model(loaded, x))
                assert same, "forward differs"
            on_cpu = zoo_core.load_model(path, device="cpu")
            assert all(torch.equal(a[k].cpu(), v) for k, v in on_cpu.state_dict().items())
            rows.append((label, "ok", f"{len(a)} tensors on {b[next(iter(b))].device}"))
        except Exception as err:  # report every case, not just the first failure
            rows.append((label, "FAIL", f"{type(err).__name__}: {err}"[:100]))
    return rows


def check_cli(device: str, work: Path) -> tuple[str, str, str]:
    path = work / "linear_regression-0"
    cmd = [sys.executable, "-m", "zoo_core", "load", str(path), "--device", device, "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return ("zoo load --device --json", "FAIL", result.stderr.strip()[-100:])
    data = json.loads(result.stdout)
    ok = data["device"].startswith(device.split(":")[0]) and data["output_shape"] == [1, 1]
    return ("zoo load --device --json", "ok" if ok else "FAIL", f"device={data['device']}")


def time_loads(device: str, work: Path, mib: int, reps: int) -> list[tuple[str, str, str]]:
    import torch
    from safetensors.torch import load_file

    import zoo_core

    side = int((mib * 2**20 // 4) ** 0.5)
    model = zoo_core.create_model(
        "linear_regression", input_dim=side, output_dim=side, seed=0, device=device
    )
    path = zoo_core.save_model(model, work / "big")
    nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    del model
    file = path / "model.safetensors"

    def bare() -> object:
        return load_file(file, device=device)

    def zoo() -> object:
        return zoo_core.load_model(path, device=device)

    times: dict[str, list[float]] = {"safetensors.load_file": [], "zoo.load_model": []}
    peaks: dict[str, int] = {}
    fns = {"safetensors.load_file": bare, "zoo.load_model": zoo}
    for fn in fns.values():  # warm up: CUDA context, page cache, registry
        fn()
        _sync(device)
    for rep in range(reps):
        order = list(fns) if rep % 2 == 0 else list(reversed(fns))
        for label in order:
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            _sync(device)
            started = time.perf_counter()
            result = fns[label]()
            _sync(device)
            times[label].append(time.perf_counter() - started)
            if device.startswith("cuda"):
                peaks[label] = torch.cuda.max_memory_allocated()
            del result
    base = statistics.median(times["safetensors.load_file"])
    rows = []
    for label, values in times.items():
        med = statistics.median(values)
        peak = f", GPU peak {peaks[label] / 2**20:,.0f} MiB" if label in peaks else ""
        rows.append((label, f"{med:.3f} s", f"{med / base:.2f}x ({len(values)} reps{peak})"))
    ratio = statistics.median(times["zoo.load_model"]) / base
    verdict = "met" if ratio <= 1.2 else "NOT met"
    rows.append((f"target <= 1.2x ({nbytes / 2**30:.2f} GiB)", verdict, f"{ratio:.2f}x"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description="zoo GPU check")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (dry)")
    parser.add_argument("--mib", type=int, default=1024, help="size of the timed model")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA device; use --device cpu for a dry run")
        return 1
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"# zoo gpu_check: torch {torch.__version__}, {where}, device={args.device}")
    work = Path(tempfile.mkdtemp(prefix="zoo-gpu-"))
    try:
        rows = check_round_trips(args.device, work)
        rows.append(check_cli(args.device, work))
        rows += time_loads(args.device, work, args.mib, args.reps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    for name, status, detail in rows:
        print(f"{name.ljust(width)}  {status:<8} {detail}")
    failed = [r for r in rows if r[1] in ("FAIL", "NOT met")]
    print(f"# {'FAILED: ' + str(len(failed)) if failed else 'all checks passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    sys.exit(main())
