"""Crash safety: `zoo save` killed with SIGKILL at many points never leaves a mixed model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import zoo_core
from tests.conftest import ZOO
from zoo_core.verify import verify_directory

# 2048 x 8192 float32 = 64 MiB, in 16 MiB shards: several files, so a kill can land
# between shards, between the shards and the index, and around the swap.
SETS = ["--set", "input_dim=8192", "--set", "output_dim=2048", "--max-shard-size", "16MB"]


def _start_save(target: Path, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ZOO, "save", "linear_regression", str(target), *SETS, "--seed", str(seed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_temporary(parent: Path, proc: subprocess.Popen[bytes]) -> float:
    """Block until the save has created its temporary directory; return that moment."""
    while proc.poll() is None:
        if any(p.name.startswith(".m.zoo-tmp-") for p in parent.iterdir()):
            return time.monotonic()
        time.sleep(0.002)
    return time.monotonic()


def _hashes(target: Path) -> str:
    return json.dumps(json.loads((target / "config.json").read_text())["files"], sort_keys=True)


@pytest.mark.slow
def test_a_killed_save_leaves_the_old_model_or_the_new_one(tmp_path) -> None:
    parent = tmp_path
    target = parent / "m"
    first = _start_save(target, seed=0)
    began = _wait_for_temporary(parent, first)
    assert first.wait(timeout=120) == 0
    write_seconds = max(time.monotonic() - began, 0.2)
    known = {_hashes(target)}
    outcomes = {"old": 0, "new": 0}
    leftovers_seen = 0
    points = 15
    for i in range(points):
        proc = _start_save(target, seed=i + 1)
        started = _wait_for_temporary(parent, proc)
        # Spread the kills over the whole write, the swap and the cleanup (and a bit after).
        delay = write_seconds * 1.2 * (i / (points - 1)) ** 2  # denser early, in the writes
        time.sleep(max(0.0, started + delay - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        leftovers_seen += any(p.name != "m" for p in parent.iterdir())
        # The next load recovers or cleans what the crash left, then the model must be whole.
        model = zoo_core.load_model(target)
        assert model.config.input_dim == 8192
        assert sorted(os.listdir(parent)) == ["m"], f"kill {i} left {os.listdir(parent)}"
        assert verify_directory(target) == [], f"kill {i} after {delay:.2f}s left a mixed model"
        state = _hashes(target)
        outcomes["old" if state in known else "new"] += 1
        known.add(state)
    # The schedule must really have hit both sides of the swap, and mid-write states.
    assert outcomes["old"] >= 2 and outcomes["new"] >= 1, outcomes
    assert leftovers_seen >= 2
