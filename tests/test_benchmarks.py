"""The benchmark scripts still run (tiny sizes, CPU): they are not timed here, only exercised.

Scripts whose own imports do not matter run in a fork of the suite's warm interpreter
(tests/forkserver.py); the processes they start themselves are real. The listing
benchmarks measure start-up, and run in a new interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_python_script

BENCH = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu() -> None:
    args = ["--device", "cpu", "--mib", "4", "--reps", "2"]
    result = run_python_script(BENCH / "gpu_check.py", *args, timeout=300)
    lines = result.stdout.splitlines()
    assert sum(" ok " in line for line in lines) == 7, result.stdout + result.stderr
    assert any(line.startswith("zoo.load_model ") for line in lines)
    assert "target <= 1.2x" in result.stdout
    # A 4 MiB model on CPU may miss the ratio; everything else must pass.
    assert result.returncode == (1 if "NOT met" in result.stdout else 0), result.stdout


@pytest.mark.slow
def test_weights_benchmark_prints_its_tables(tmp_path) -> None:
    args = ["--sizes", "2", "--reps", "1", "--dir", str(tmp_path)]
    result = run_python_script(BENCH / "bench_weights.py", *args, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "**Load, 2 MiB" in result.stdout and "**Save, 2 MiB" in result.stdout
    assert "| zoo_core.load_model | " in result.stdout
    assert "| zoo_core.save_model (fsync, sha256) | " in result.stdout


def test_list_family_benchmark_prints_the_ratio() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "list_family.py"), "--runs", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = next(x for x in result.stdout.splitlines() if "13-model family" in x)
    assert row.split(")")[1].split()[0] == "17"  # 4 bundled models and 13 from the family
    assert "torch imported by the listing: False" in result.stdout


def test_gpu_load_benchmark_smoke_test_on_cpu() -> None:
    args = ["--device", "cpu", "--gib", "0.002", "--reps", "1", "--threads", "1,3"]
    result = run_python_script(BENCH / "gpu_load.py", *args, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for row in ("| safetensors load_file |", "| zoo load_model (pipeline) |",
                "| zoo load_model (previous path) |", "| zoo pipeline, 3 threads |"):  # fmt: skip
        assert row in result.stdout
    assert "pipeline tensors equal safetensors': yes" in result.stdout


@pytest.mark.slow
def test_list_startup_with_throwaway_plugins() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "list_startup.py"), "--plugins", "3", "--runs", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed 3 plugins x 5 models" in result.stdout
    assert "zoo list, 4+3 plugins, warm" in result.stdout
    assert "warm 4+3 / warm 4 " in result.stdout and "warm 4 / import torch " in result.stdout


@pytest.mark.slow
def test_distributed_benchmark_prints_its_table(tmp_path) -> None:
    args = ["--mib", "4", "--reps", "1", "--dir", str(tmp_path)]
    result = run_python_script(BENCH / "bench_distributed.py", *args, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "**Sharded load, 4 MiB (linear_regression" in result.stdout
    for label in ("fsdp, zoo pread of owned ranges", "fsdp, DCP HuggingFaceStorageReader"):
        assert f"| {label} | " in result.stdout
    assert "target: each rank's RSS growth <= 0.6x" in result.stdout
