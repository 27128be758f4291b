"""Progress bars: drawn on a terminal, absent when piped or with --json, never in library code.

Each command runs twice, as a person runs it (on a pseudo-terminal) and as a
script does (output captured). ``TQDM_DELAY=0`` (tqdm's own setting) draws the
bar at once, where by default it waits half a second so quick work shows none.
"""

from __future__ import annotations

import io
import json
import os
import re

import pytest
import torch

from tests.conftest import run_zoo
from tests.terminal import open_terminal, read_some, run_zoo_on_terminal
from zoo_core.progress import ProgressBar, part_of

BAR = re.compile(r"\d+%\|")
NOW = {"TQDM_DELAY": "0"}
WIDE = ("--set", "input_dim=512", "--set", "output_dim=512")  # 1 MiB of weights


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from zoo_core import create_model, save_model

    path = tmp_path_factory.mktemp("progress") / "lr"
    save_model(create_model("linear_regression", input_dim=512, output_dim=512, seed=0), path)
    return path


def assert_bar(output: str, words: str) -> None:
    assert BAR.search(output), output
    assert words in output, output


def assert_no_bar(result) -> None:
    assert result.returncode == 0, result.stderr
    assert not BAR.search(result.stdout + result.stderr), result.stderr


def test_the_bar_draws_on_a_terminal_and_nowhere_else(monkeypatch) -> None:
    monkeypatch.setenv("TQDM_DELAY", "0")
    main, child = open_terminal(columns=100)
    with os.fdopen(child, "w") as terminal:
        with ProgressBar("copying", stream=terminal) as bar:
            assert bar.shown
            bar(512, 1024)
            bar(1024, 1024)
        terminal.flush()
        drawn = (read_some(main, 5) or b"").decode()
    os.close(main)
    assert "copying" in drawn and BAR.search(drawn)
    for stream, enabled in ((io.StringIO(), True), (io.StringIO(), False)):
        with ProgressBar("copying", stream=stream, enabled=enabled) as bar:
            assert not bar.shown
            bar(1, 2)
        assert stream.getvalue() == ""


def test_parts_add_up_to_one_count() -> None:
    seen: list[tuple[int, int]] = []
    whole = seen.append
    first = part_of(lambda d, t: whole((d, t)), 0, 30)
    second = part_of(lambda d, t: whole((d, t)), 10, 30)
    assert first is not None and second is not None
    first(10, 10)
    second(20, 20)
    assert seen == [(10, 30), (30, 30)]
    assert part_of(None, 0, 1) is None


def test_save_shows_progress_on_a_terminal_only(tmp_path) -> None:
    args = ("save", "linear_regression")
    code, output = run_zoo_on_terminal(*args, str(tmp_path / "a"), *WIDE, **NOW)
    assert code == 0, output
    assert_bar(output, "saving linear_regression")
    assert "saved linear_regression" in output
    assert_no_bar(run_zoo(*args, str(tmp_path / "b"), *WIDE, **NOW))


def test_quick_work_shows_no_bar_by_default(tmp_path) -> None:
    code, output = run_zoo_on_terminal("save", "linear_regression", str(tmp_path / "a"))
    assert code == 0, output
    assert not BAR.search(output), output


def test_load_shows_progress_on_a_terminal_but_not_with_json(saved) -> None:
    code, output = run_zoo_on_terminal("load", str(saved), "--dtype", "float16", **NOW)
    assert code == 0, output
    assert_bar(output, "reading weights")
    code, output = run_zoo_on_terminal("load", str(saved), "--json", **NOW)
    assert code == 0, output
    assert not BAR.search(output)
    assert json.loads(output)["architecture"] == "linear_regression"
    assert_no_bar(run_zoo("load", str(saved), "--dtype", "float16", **NOW))


@pytest.mark.slow
def test_check_shows_progress_on_a_terminal_only() -> None:
    code, output = run_zoo_on_terminal("check", "linear_regression", **NOW)
    assert code == 0, output
    assert_bar(output, "checking linear_regression")
    assert_no_bar(run_zoo("check", "linear_regression", **NOW))


def test_verify_shows_progress_on_a_terminal_only(saved) -> None:
    code, output = run_zoo_on_terminal("verify", str(saved), **NOW)
    assert code == 0, output
    assert_bar(output, "hashing")
    assert f"ok: {saved}" in output
    assert_no_bar(run_zoo("verify", str(saved), **NOW))


def test_convert_shows_progress_on_a_terminal_only(tmp_path) -> None:
    weights = {"linear.weight": torch.randn(512, 512), "linear.bias": torch.randn(512)}
    torch.save(weights, tmp_path / "old.pt")
    args = ("convert", str(tmp_path / "old.pt"), "--arch", "linear_regression", *WIDE)
    code, output = run_zoo_on_terminal(*args, "-o", str(tmp_path / "a"), **NOW)
    assert code == 0, output
    assert_bar(output, "writing")
    assert_no_bar(run_zoo(*args, "-o", str(tmp_path / "b"), **NOW))
