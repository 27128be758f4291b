"""``zoo bench`` (issue 20 item 4): eager, compiled and exported side by side in one run.

Only the shape of the results is asserted (every mode measured, ratios to eager, the
table): times on a shared machine are for people to read, never for tests to compare.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import run_zoo
from tests.terminal import run_zoo_on_terminal
from zoo_core.deploy.bench import MODES, benchmark
from zoo_core.errors import UsageError

# aot_eager: the inductor backend compiles C++, tens of seconds per model on a CPU.
QUICK = {"warmup": 1, "iterations": 5, "backend": "aot_eager"}


def test_every_mode_is_measured_at_every_batch_size() -> None:
    calls = []
    report = benchmark(
        "linear_regression",
        batch_sizes=[1, 4],
        progress=lambda done, total: calls.append((done, total)),
        **QUICK,
    )
    assert [(r.batch_size, r.mode) for r in report.results] == [
        (b, m) for b in (1, 4) for m in MODES
    ]
    for r in report.results:
        assert r.error is None, r
        assert 0 < r.median_ms <= r.p90_ms
        assert r.samples_per_second == pytest.approx(r.batch_size / (r.median_ms / 1e3))
        assert r.prepare_seconds is not None and r.prepare_seconds >= 0
        assert r.peak_memory_bytes is None or r.peak_memory_bytes >= 0
    eager = {r.batch_size: r for r in report.results if r.mode == "eager"}
    for r in report.results:
        assert r.speedup == pytest.approx(eager[r.batch_size].median_ms / r.median_ms)
    assert eager[1].speedup == 1.0
    # The progress callback counted every call, up to the total.
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)
    lines = report.table().splitlines()
    assert lines[0].startswith("linear_regression (built fresh, random weights): float32 on cpu")
    assert lines[1].split() == [
        "BATCH", "MODE", "MEDIAN", "P90", "SAMPLES/S", "PEAK", "MEM", "VS", "EAGER", "PREPARE",
    ]  # fmt: skip
    assert re.match(r"1 +eager +[\d.]+ ms +[\d.]+ ms .* 1\.00x ", lines[2])
    assert lines[-1].startswith("VS EAGER: eager's median / this mode's median")


def test_a_mode_that_fails_is_reported_and_the_others_still_run(fixture_plugins) -> None:
    fixture_plugins("deploy_plugin")
    report = benchmark("branchy_export", modes=["export"], **QUICK)
    eager, export = report.results
    assert eager.mode == "eager" and eager.median_ms is not None  # always the yardstick
    assert export.median_ms is None and export.speedup is None
    assert export.error.startswith("cannot export branchy_export with torch.export")
    assert "failed: cannot export" in report.table()


def test_bad_modes_and_sizes_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown mode 'jit'"):
        benchmark("linear_regression", modes=["eager", "jit"])
    with pytest.raises(UsageError, match="batch sizes must be at least 1"):
        benchmark("linear_regression", batch_sizes=[0])


@pytest.mark.slow
def test_zoo_bench_json_table_and_progress() -> None:
    args = ("--warmup", "1", "--iterations", "3", "--backend", "aot_eager")
    result = run_zoo("bench", "simple_cnn.digits", "--batch-size", "1,2", *args, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["model"], data["source"], data["device"]) == (
        "simple_cnn",
        "simple_cnn.digits",
        "cpu",
    )
    assert [(r["batch_size"], r["mode"]) for r in data["results"]] == [
        (b, m) for b in (1, 2) for m in MODES
    ]
    assert set(data["results"][0]) == {
        "mode", "batch_size", "median_ms", "p90_ms", "samples_per_second",
        "peak_memory_bytes", "prepare_seconds", "speedup", "error",
    }  # fmt: skip
    code, output = run_zoo_on_terminal(
        "bench", "linear_regression", "--modes", "eager,export", *args, TQDM_DELAY="0"
    )
    assert code == 0, output
    assert re.search(r"benchmarking linear_regression.*\d+%\|", output), output
    assert "VS EAGER" in output
    bad = run_zoo("bench", "linear_regression", "--modes", "eager,jit")
    assert bad.returncode == 2 and "unknown mode 'jit'" in bad.stderr
    assert "Traceback" not in bad.stderr
