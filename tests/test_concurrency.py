"""Loads and verifies racing saves into the same directory see exactly one complete save.

Two processes keep saving ``tiny_transformer`` with different configs and
shapes into one directory while this process loads (and verifies) it hundreds
of times. Each load must return one save's config together with that same
save's weights: never a mixture, never an error.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import zoo_core
from zoo_core.sources.verify import verify_directory

CONFIGS = {
    "mean": {"pooling": "mean", "d_model": 32, "num_heads": 4, "max_len": 32, "seed": 1},
    "max": {"pooling": "max", "d_model": 48, "num_heads": 4, "max_len": 48, "seed": 2},
}

SAVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import zoo_core
    target, stop, pooling, d_model, max_len, seed = sys.argv[1:7]
    model = zoo_core.create_model(
        "tiny_transformer", pooling=pooling, d_model=int(d_model), num_heads=4,
        max_len=int(max_len), seed=int(seed),
    )
    saves = 0
    while not Path(stop).exists():
        zoo_core.save_model(model, target)
        saves += 1
        time.sleep(0.01)
    print(saves)
    """
)


def _start_saver(target: Path, stop: Path, name: str) -> subprocess.Popen[str]:
    c = CONFIGS[name]
    args = [str(target), str(stop), c["pooling"], str(c["d_model"]), str(c["max_len"])]
    return subprocess.Popen(
        [sys.executable, "-c", SAVER, *args, str(c["seed"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_loads_and_verifies_racing_saves_see_one_whole_save(tmp_path) -> None:
    expected = {
        name: zoo_core.create_model("tiny_transformer", **c).state_dict()
        for name, c in CONFIGS.items()
    }
    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("tiny_transformer", **CONFIGS["mean"]), target)
    stop = tmp_path / "stop"
    savers = [_start_saver(target, stop, name) for name in CONFIGS]
    seen = {"mean": 0, "max": 0}
    mixed, errors, verified = [], [], 0
    try:
        time.sleep(1.5)  # both savers have imported torch and are saving
        for i in range(300):
            try:
                model = zoo_core.load_model(target)
            except Exception as err:  # any error at all is a failure of the promise
                errors.append(f"load {i}: {type(err).__name__}: {err}")
                continue
            name = model.config.pooling
            seen[name] += 1
            got = model.state_dict()
            want = expected[name]
            if list(got) != list(want) or not all(torch.equal(got[k], want[k]) for k in want):
                mixed.append(i)
            if i % 10 == 0:
                problems = verify_directory(target)
                verified += 1
                if problems:
                    errors.append(f"verify at load {i}: {[str(p) for p in problems]}")
    finally:
        stop.touch()
        outputs = [p.communicate(timeout=60) for p in savers]
    saves = [int(out.strip() or 0) for out, _ in outputs]
    assert all(p.returncode == 0 for p in savers), [err[-800:] for _, err in outputs]
    assert not errors, errors[:5]
    assert not mixed, f"{len(mixed)} of 300 loads mixed two saves"
    # The race must really have happened: both saves were seen, and many saves ran.
    assert seen["mean"] and seen["max"], seen
    assert min(saves) >= 20, saves
    assert verified == 30
