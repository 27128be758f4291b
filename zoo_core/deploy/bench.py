"""``zoo bench``: one model run eagerly, compiled and exported, side by side.

Times are only comparable within one run on one machine (these machines are
shared and their speed drifts), so every mode is measured in the same run and
reported with its ratio to eager. The method, after timm's ``benchmark.py``:

1. each mode is prepared (``torch.compile``; ``torch.export`` with a dynamic
   batch, run as ``program.module()``) and warmed up; the first call's time is
   reported as ``prepare_seconds`` (compilation happens there);
2. peak memory is read over a few calls of each mode alone (on CUDA the
   allocator's peak; on a CPU how far the process's peak resident memory,
   which Linux lets a process reset, rose above what it held before them);
3. the timed calls are interleaved (eager, compile, export, eager, ...), so a
   slow moment of the machine hits every mode alike; each call is timed alone
   (after ``torch.cuda.synchronize`` on a GPU). Latency is the median and the
   90th percentile; throughput is batch size / median.

>>> report = benchmark("simple_cnn", batch_sizes=[1, 8])          # doctest: +SKIP
>>> print(report.table())                                        # doctest: +SKIP
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from zoo_core.api import open_model
from zoo_core.deploy.exporting import trace
from zoo_core.deploy.programs import quiet, seeded
from zoo_core.errors import UsageError, ZooError
from zoo_core.models.build import Architecture
from zoo_core.models.model import call_model
from zoo_core.progress import ProgressCallback
from zoo_core.units import human_bytes

__all__ = ["MODES", "BenchReport", "ModeResult", "benchmark"]

MODES = ("eager", "compile", "export")
#: Calls of each mode alone, after warm-up, over which peak memory is read.
MEMORY_CALLS = 3


@dataclass
class ModeResult:
    """One mode at one batch size. Times in milliseconds; None where the mode failed."""

    mode: str
    batch_size: int
    median_ms: float | None = None
    p90_ms: float | None = None
    samples_per_second: float | None = None
    peak_memory_bytes: int | None = None
    prepare_seconds: float | None = None
    speedup: float | None = None
    error: str | None = None


@dataclass
class BenchReport:
    """Every mode at every batch size, with how they were measured."""

    model: str
    source: str
    device: str
    dtype: str
    warmup: int
    iterations: int
    memory: str
    results: list[ModeResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The stable ``zoo bench --json`` keys."""
        data = {k: v for k, v in asdict(self).items() if k != "results"}
        return {**data, "results": [asdict(r) for r in self.results]}

    def table(self) -> str:
        """The side-by-side table ``zoo bench`` prints."""
        header = ("BATCH", "MODE", "MEDIAN", "P90", "SAMPLES/S", "PEAK MEM", "VS EAGER", "PREPARE")
        rows = []
        for r in self.results:
            if r.error is not None:
                rows.append((str(r.batch_size), r.mode, f"failed: {r.error}", "", "", "", "", ""))
                continue
            rows.append(
                (
                    str(r.batch_size),
                    r.mode,
                    _ms(r.median_ms),
                    _ms(r.p90_ms),
                    f"{r.samples_per_second:,.0f}" if r.samples_per_second else "-",
                    human_bytes(r.peak_memory_bytes) if r.peak_memory_bytes is not None else "-",
                    f"{r.speedup:.2f}x" if r.speedup else "-",
                    f"{r.prepare_seconds:.2f} s" if r.prepare_seconds is not None else "-",
                )
            )
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
        lines = [
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in (header, *rows)
        ]
        title = (
            f"{self.model} ({self.source}): {self.dtype} on {self.device}; {self.warmup} warm-up "
            f"and {self.iterations} timed calls per mode, interleaved; peak memory: {self.memory}"
        )
        note = "VS EAGER: eager's median / this mode's median (above 1.00x is faster)"
        return "\n".join([title, *lines, note])


def _ms(value: float | None) -> str:
    return f"{value:.3f} ms" if value is not None else "-"


# --- memory --------------------------------------------------------------------------


def _reset_cpu_peak() -> bool:
    """Set the process's peak resident memory back to its current one (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status(field: str) -> int | None:
    """A memory line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class _Memory:
    """Peak memory of a few calls of one mode.

    On CUDA, the allocator's peak (tensors alive at once). On a CPU, how far the
    process's resident memory rose above what it held before the calls: the
    memory the calls themselves need, not the libraries a mode loaded earlier
    (inductor's compiler, say), which a process-wide peak would charge to every
    later mode.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.kind = "CUDA allocator peak" if self.cuda else "rise of the process's resident memory"
        self.before: int | None = None

    def reset(self) -> bool:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return True
        self.before = _status("VmRSS")
        return self.before is not None and _reset_cpu_peak()

    def peak(self) -> int | None:
        if self.cuda:
            return int(torch.cuda.max_memory_allocated())
        high = _status("VmHWM")
        if high is None or self.before is None:
            return None
        return max(high - self.before, 0)


# --- the runs ---------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _prepare(
    mode: str, model: nn.Module, arch: Architecture, batch: int, backend: str
) -> Callable[[Any], Any]:
    if mode == "eager":
        return lambda x: call_model(model, x)
    if mode == "compile":
        import torch._dynamo

        torch._dynamo.reset()  # a fresh cache for each batch size: no stale recompile limits
        compiled = torch.compile(model, backend=backend)
        return lambda x: call_model(compiled, x)
    if mode == "export":
        program = trace(model, arch, batch_size=batch).program.module()
        return lambda x: call_model(program, x)
    raise UsageError(f"unknown mode {mode!r}", hint=f"use some of {', '.join(MODES)}")


def _check(
    batch_sizes: Sequence[int], modes: Sequence[str], warmup: int, iterations: int
) -> list[str]:
    modes = list(dict.fromkeys(modes))
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(
            f"unknown mode {', '.join(map(repr, unknown)) or '(none)'}",
            hint=f"use one or more of {', '.join(MODES)}, separated by commas",
        )
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise UsageError("batch sizes must be at least 1")
    if warmup < 0 or iterations < 1:
        raise UsageError("warm-up must be 0 or more, and timed calls 1 or more")
    return ["eager", *[m for m in modes if m != "eager"]]  # eager first: the yardstick


def benchmark(
    source: str | os.PathLike[str],
    *,
    batch_sizes: Sequence[int] = (1,),
    modes: Sequence[str] = MODES,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    warmup: int = 5,
    iterations: int = 50,
    backend: str = "inductor",
    overrides: dict[str, Any] | None = None,
    from_strings: bool = False,
    progress: ProgressCallback | None = None,
) -> BenchReport:
    """Time a model eagerly, compiled (``torch.compile``) and exported (``torch.export``).

    Args:
        source: anything :func:`~zoo_core.load_model` takes.
        batch_sizes: each is measured on its own (the example input at that size).
        modes: some of ``eager``, ``compile``, ``export``; eager is always
            measured, as the yardstick of the ratios.
        dtype, device: where and how to run (``device="cuda"`` synchronises
            around each call and reports CUDA memory).
        warmup, iterations: untimed and timed calls per mode and batch size.
        backend: the ``torch.compile`` backend.
        progress: ``progress(done, total)`` over all calls.

    A mode that fails to prepare is reported with its error; the others still run.
    """
    modes = _check(batch_sizes, modes, warmup, iterations)
    loaded = open_model(
        source, device=device, dtype=dtype, overrides=overrides, from_strings=from_strings
    )
    model = loaded.model.eval()
    arch = Architecture.of(loaded.entry)
    ref = next(iter(model.state_dict().values()), None)
    where = ref.device if ref is not None else torch.device("cpu")
    dtypes = {str(p.dtype).removeprefix("torch.") for p in model.parameters()}
    memory = _Memory(where)
    report = BenchReport(
        loaded.entry.display_name,
        "built fresh, random weights" if loaded.source_kind == "name" else loaded.source,
        str(where),
        ",".join(sorted(dtypes)) or "-",
        warmup,
        iterations,
        memory.kind,
    )
    per_mode = warmup + MEMORY_CALLS + iterations
    total = len(batch_sizes) * len(modes) * per_mode
    done = 0

    def tick(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    for batch in batch_sizes:
        with seeded(batch, model):
            inputs = arch.example_input(model, batch)
        results = {m: ModeResult(m, batch) for m in modes}
        runners: dict[str, Callable[[Any], Any]] = {}
        with torch.no_grad():
            for mode in modes:
                result = results[mode]
                started = time.perf_counter()
                try:
                    with quiet():
                        run = _prepare(mode, model, arch, batch, backend)
                        run(inputs)  # the first call compiles
                        _sync(where)
                except ZooError as err:
                    result.error = err.message
                except Exception as err:
                    result.error = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
                if result.error is not None:
                    result.error = result.error[:200]
                    tick(per_mode)
                    continue
                result.prepare_seconds = time.perf_counter() - started
                for _ in range(warmup):
                    run(inputs)
                    tick()
                _sync(where)
                if memory.reset():
                    for _ in range(MEMORY_CALLS):
                        run(inputs)
                    _sync(where)
                    result.peak_memory_bytes = memory.peak()
                tick(MEMORY_CALLS)
                runners[mode] = run
            times: dict[str, list[float]] = {m: [] for m in runners}
            for _ in range(iterations):
                for mode, run in runners.items():
                    _sync(where)
                    started = time.perf_counter()
                    run(inputs)
                    _sync(where)
                    times[mode].append(time.perf_counter() - started)
                    tick()
        for mode, samples in times.items():
            result = results[mode]
            ordered = sorted(samples)
            result.median_ms = statistics.median(ordered) * 1e3
            result.p90_ms = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1e3
            result.samples_per_second = batch / (result.median_ms / 1e3)
        eager = results["eager"].median_ms
        for result in results.values():
            if eager and result.median_ms:
                result.speedup = eager / result.median_ms
        report.results.extend(results[m] for m in modes)
    return report
