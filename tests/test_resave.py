"""Re-saving into a model directory the user also writes into (issue 19, items 4 and 5).

A save swaps a whole new directory in place of the old one. The user's files must
survive it: those written while it runs, those that vanish while it runs (a save
must not fail on them), and the files of a file system mounted inside, which a
save must never copy, descend into or delete. Bind mounts are real (``mount
--bind``, root only; skipped with the reason otherwise) and always unmounted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import zoo_core
from zoo_core.errors import WeightsError
from zoo_core.storage import atomic
from zoo_core.storage.atomic import atomic_directory


def _model() -> object:
    return zoo_core.create_model("linear_regression", seed=0)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".zoo-" in p.name)


# -- mounts inside a model directory ------------------------------------------------------------


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or 'mount failed'}): needs root")


@pytest.fixture
def bind_mount(tmp_path: Path) -> Iterator[object]:
    """``mount(source, target)`` bind-mounts; every mount is undone after the test.

    Undone wherever it ended up: a save that moved the directory holding it moved the
    mount too, so every mount point under ``tmp_path`` is unmounted, deepest first.
    """
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    mounted: list[Path] = []

    def mount(source: Path, target: Path, *, tmpfs: bool = False) -> None:
        target.mkdir(parents=True, exist_ok=True)
        if tmpfs:
            _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target))
        else:
            _mount("--bind", str(source), str(target))
        mounted.append(target)

    try:
        yield mount
    finally:
        with open("/proc/self/mounts", encoding="utf-8") as table:
            points = [line.split()[1].replace("\\040", " ") for line in table]
        inside = [p for p in points if p.startswith(f"{tmp_path}/")]
        for target in sorted({*map(str, mounted), *inside}, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True)


@pytest.mark.parametrize("tmpfs", [False, True], ids=["bind", "tmpfs"])
def test_a_resave_refuses_a_mount_inside_and_touches_none_of_its_files(
    tmp_path: Path, bind_mount, tmpfs: bool
) -> None:
    outside = tmp_path / "dataset"
    outside.mkdir()
    (outside / "train.csv").write_text("1,2,3\n")
    directory = zoo_core.save_model(_model(), tmp_path / "lr")
    before = (directory / "config.json").read_bytes()
    bind_mount(outside, directory / "data", tmpfs=tmpfs)
    if tmpfs:
        (directory / "data" / "train.csv").write_text("1,2,3\n")
    with pytest.raises(WeightsError, match=r"data is a mount point inside it") as info:
        zoo_core.save_model(_model(), directory)
    assert "nothing was changed" in info.value.message
    assert (directory / "data" / "train.csv").read_text() == "1,2,3\n"
    assert (outside / "train.csv").read_text() == "1,2,3\n"
    assert (directory / "config.json").read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_a_mount_appearing_during_the_save_undoes_the_swap(
    tmp_path: Path, bind_mount, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "dataset"
    outside.mkdir()
    (outside / "train.csv").write_text("keep me\n")
    directory = zoo_core.save_model(_model(), tmp_path / "lr")
    (directory / "notes.txt").write_text("mine\n")
    before = (directory / "config.json").read_bytes()
    exchange = atomic._exchange

    def mount_then_exchange(a: Path, b: Path) -> bool:
        if not mounted:
            mounted.append(directory / "data")
            bind_mount(outside, directory / "data")  # after every check before the swap
        return exchange(a, b)

    mounted: list[Path] = []

    monkeypatch.setattr(atomic, "_exchange", mount_then_exchange)
    with pytest.raises(WeightsError, match="mount point"):
        zoo_core.save_model(zoo_core.create_model("linear_regression", seed=1), directory)
    monkeypatch.undo()
    assert (directory / "config.json").read_bytes() == before  # the old model, in place
    assert (directory / "data" / "train.csv").read_text() == "keep me\n"
    assert (outside / "train.csv").read_text() == "keep me\n"
    assert (directory / "notes.txt").read_text() == "mine\n"
    assert _leftovers(tmp_path) == []


# -- files that arrive or vanish during a save ---------------------------------------------------


def _old_model(tmp_path: Path) -> Path:
    directory = tmp_path / "m"
    with atomic_directory(directory) as tmp:
        (tmp / "config.json").write_text("{}")
    return directory


def test_files_arriving_replaced_or_vanishing_during_the_carry_over(tmp_path: Path) -> None:
    """Deterministic: ``keep`` runs between the carry-over's listing and each link."""
    directory = _old_model(tmp_path)
    (directory / "logs").mkdir()
    (directory / "logs" / "a.log").write_text("a")
    (directory / "gone.tmp").write_text("scratch")
    (directory / "renamed.part").write_text("payload")
    (directory / "replaced.txt").write_text("v1")
    (directory / "zz.txt").write_text("z")
    actions = {
        # the user removes a temporary file just before zoo links it: the save goes on
        "gone.tmp": lambda: (directory / "gone.tmp").unlink(),
        # after the carry-over listed the directory: new files, also inside a folder
        "zz.txt": lambda: (
            (directory / "late.log").write_text("late"),
            (directory / "logs" / "b.log").write_text("b"),
            (directory / "renamed.part").rename(directory / "renamed.txt"),
            (directory / "replaced.txt.new").write_text("v2"),
            (directory / "replaced.txt.new").replace(directory / "replaced.txt"),
        ),
    }

    def keep(name: str) -> bool:
        if name in actions:
            actions.pop(name)()
        return name != "config.json"

    with atomic_directory(directory, keep=keep) as tmp:
        (tmp / "config.json").write_text('{"new": true}')
    assert not actions
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "config.json", "late.log", "logs", "renamed.txt", "replaced.txt", "zz.txt",
    ]  # fmt: skip
    assert (directory / "config.json").read_text() == '{"new": true}'
    assert (directory / "late.log").read_text() == "late"
    assert sorted(p.name for p in (directory / "logs").iterdir()) == ["a.log", "b.log"]
    assert (directory / "renamed.txt").read_text() == "payload"
    assert (directory / "replaced.txt").read_text() == "v2"
    assert _leftovers(tmp_path) == []


WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    directory, stop, report = sys.argv[1], sys.argv[2], sys.argv[3]
    logs = renamed = scratch = retried = 0
    while not os.path.exists(stop):
        # One log file per step, as a training loop writes them.
        with open(os.path.join(directory, f"step-{logs}.log"), "w") as f:
            f.write(f"step {logs}\\n")
        logs += 1
        # A temporary file, renamed into place (an atomic write) ...
        part = os.path.join(directory, f"ckpt-{renamed}.part")
        with open(part, "w") as f:
            f.write(f"ckpt {renamed}\\n")
        for attempt in range(1000):
            try:
                os.rename(part, os.path.join(directory, f"ckpt-{renamed}.txt"))
                break
            except FileNotFoundError:  # straddled a swap: the save moves it over
                retried += 1
                time.sleep(0.001)
        else:
            raise SystemExit(f"ckpt-{renamed}.part never reappeared")
        renamed += 1
        # ... and a scratch file that vanishes again.
        path = os.path.join(directory, "scratch.tmp")
        with open(path, "w") as f:
            f.write("x")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        scratch += 1
        time.sleep(0.002)
    with open(report, "w") as f:
        json.dump({"logs": logs, "renamed": renamed, "scratch": scratch, "retried": retried}, f)
    """
)


@pytest.mark.slow
def test_no_user_file_is_lost_while_a_writer_races_resaves(tmp_path: Path) -> None:
    directory = zoo_core.save_model(_model(), tmp_path / "lr")
    stop, report = tmp_path / "stop", tmp_path / "report.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), str(stop), str(report)],
        stderr=subprocess.PIPE,
        text=True,
    )
    saves, failures = 0, []
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline or saves < 20:
            try:
                zoo_core.save_model(
                    zoo_core.create_model("linear_regression", seed=saves), directory
                )
            except WeightsError as err:
                failures.append(str(err))
            saves += 1
    finally:
        stop.touch()
        _, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors
    counts = json.loads(report.read_text())
    lost = [
        f"step-{i}.log"
        for i in range(counts["logs"])
        if not (directory / f"step-{i}.log").is_file()
        or (directory / f"step-{i}.log").read_text() != f"step {i}\n"
    ]
    lost += [
        f"ckpt-{i}.txt"
        for i in range(counts["renamed"])
        if not (directory / f"ckpt-{i}.txt").is_file()
    ]
    stray = sorted(p.name for p in directory.iterdir() if p.suffix in (".part", ".tmp"))
    print(
        f"saves={saves} logs={counts['logs']} renamed={counts['renamed']} "
        f"scratch={counts['scratch']} writer_retries={counts['retried']} lost={len(lost)}"
    )
    assert failures == []
    assert lost == []
    assert stray == []
    assert counts["logs"] > 100 and saves >= 20
    zoo_core.load_model(directory)  # the last save is intact
    assert _leftovers(tmp_path) == []
