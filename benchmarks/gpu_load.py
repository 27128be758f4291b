"""Loading a large model onto the GPU: zoo's read pipeline against bare safetensors.

Run on a machine with a CUDA build of torch, from the repository root, after
``pip install -e . -e plugins/zoo-linear``:

    python benchmarks/gpu_load.py                     # 4 GiB model, 5 repetitions
    python benchmarks/gpu_load.py --gib 1 --threads 4,8,16
    python benchmarks/gpu_load.py --device cpu        # smoke test of the same steps, no GPU

One process, after CUDA initialisation, with the weights file in the page
cache (it is read once before timing). Each repetition runs every method once,
the starting method rotating, each followed by ``torch.cuda.synchronize()``:

- ``safetensors load_file`` -- ``safetensors.torch.load_file(file, device=DEVICE)``,
  the baseline;
- ``zoo load_model (pipeline)`` -- ``zoo_core.load_model(dir, device=DEVICE)``: the
  model built on ``meta``, its tensors read by :mod:`zoo_core.storage.gpu_reader`;
- ``zoo load_model (previous path)`` -- the same with ``ZOO_GPU_PIPELINE=0``:
  safetensors' ``safe_open(device=DEVICE)``, tensor by tensor, as before the pipeline;
- ``zoo pipeline, N threads`` -- :func:`zoo_core.storage.gpu_reader.read_files` alone, per
  ``--threads`` value (the tensors without the model).

It prints medians, GiB/s and the ratio to the baseline (target for the
pipeline: at most 0.6x on a GPU), checks once that the pipeline's tensors equal
the baseline's, and exits 1 if they do not. With ``--device cpu`` the pipeline
fills CPU tensors through plain buffers; the baseline then is a memory map whose
pages are only touched later, so the ratios say nothing: it checks the steps run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GIB = 1024**3


def _make_model(directory: Path, gib: float) -> Path:
    import torch

    import zoo_core

    # linear_regression's weight is output_dim x input_dim float32: a square of this side.
    side = max(2, int((gib * GIB / 4) ** 0.5))
    with torch.device("meta"):
        model = zoo_core.create_model("linear_regression", input_dim=side, output_dim=side)
    g = torch.Generator().manual_seed(0)
    weight = torch.empty(side, side).uniform_(-1, 1, generator=g)
    model.load_state_dict({"linear.weight": weight, "linear.bias": torch.zeros(side)}, assign=True)
    path = zoo_core.save_model(model, directory / "model")
    del model, weight
    return path


def _warm_page_cache(path: Path) -> None:
    for file in path.glob("*.safetensors"):
        with open(file, "rb") as f:
            while f.read(64 * 1024 * 1024):
                pass


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--gib", type=float, default=None, help="model size (4, or 0.05 on CPU)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", default="8", help="comma-separated reader thread counts")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the model")
    args = parser.parse_args()

    import torch

    from zoo_core.storage import gpu_reader as gpu_load

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("no CUDA device here; run with --device cpu for a smoke test")
    gib = args.gib if args.gib is not None else (4.0 if cuda else 0.05)
    thread_counts = [int(t) for t in args.threads.split(",") if t]

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    with tempfile.TemporaryDirectory(prefix="zoo-gpu-bench-", dir=args.dir) as tmp:
        import safetensors.torch

        import zoo_core
        from zoo_core.storage.safetensors_io import read_header

        started = time.perf_counter()
        path = _make_model(Path(tmp), gib)
        file = path / "model.safetensors"
        size = file.stat().st_size
        took = time.perf_counter() - started
        print(f"model: {size / GIB:.2f} GiB in {file} (written in {took:.1f} s)")
        _warm_page_cache(path)
        if cuda:
            torch.cuda.init()
            torch.ones(1, device=device)
            sync()
        header = read_header(file)

        def bare() -> Any:
            return safetensors.torch.load_file(file, device=str(device))

        def zoo_pipeline() -> Any:
            os.environ.pop("ZOO_GPU_PIPELINE", None)
            return zoo_core.load_model(path, device=device)

        def zoo_previous() -> Any:
            os.environ["ZOO_GPU_PIPELINE"] = "0"
            try:
                return zoo_core.load_model(path, device=device)
            finally:
                os.environ.pop("ZOO_GPU_PIPELINE", None)

        def pipeline(threads: int) -> Callable[[], Any]:
            return lambda: gpu_load.read_files(
                {file: (header, list(header.tensors))}, device, threads=threads
            )

        methods: dict[str, Callable[[], Any]] = {
            "safetensors load_file": bare,
            "zoo load_model (pipeline)": zoo_pipeline,
            "zoo load_model (previous path)": zoo_previous,
        }
        for n in thread_counts:
            methods[f"zoo pipeline, {n} threads"] = pipeline(n)

        # Correctness once, and a warm-up of every method (allocator, pinned pool, threads).
        reference = bare()
        sync()
        model = zoo_pipeline()
        sync()
        loaded = model.state_dict()
        same = all(torch.equal(loaded[k], reference[k]) for k in reference)
        del model, loaded
        for run in methods.values():
            result = run()
            sync()
            del result
        del reference

        times: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for rep in range(args.reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                started = time.perf_counter()
                result = methods[name]()
                sync()
                times[name].append(time.perf_counter() - started)
                del result
    base = statistics.median(times["safetensors load_file"])
    print(
        f"\ndevice {device} ({torch.cuda.get_device_name(device) if cuda else 'cpu'}), "
        f"torch {torch.__version__}, {args.reps} repetitions, file in the page cache\n"
    )
    print("| method | median | GiB/s | x bare |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} s | {size / GIB / median:.2f} | {median / base:.2f}x |")
    ratio = statistics.median(times["zoo load_model (pipeline)"]) / base
    verdict = "met" if ratio <= 0.6 else "NOT met"
    print(f"\nzoo load_model (pipeline) / bare: {ratio:.2f}x (target <= 0.6x on a GPU: {verdict})")
    print(f"pipeline tensors equal safetensors': {'yes' if same else 'NO'}")
    if not cuda:
        print("(CPU smoke test: the baseline is a lazy memory map, so the ratios mean nothing)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
