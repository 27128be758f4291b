"""``zoo push`` racing saves into the directory it pushes (issue 19, item 1).

Every commit a push makes must hold one save's ``config.json`` with exactly the weights it
records: push opens one snapshot, checks its hashes and uploads those very open files. And
whatever huggingface_hub raises becomes a zoo error. Real saves in another process, the real
huggingface_hub client (in subprocesses, as it reads HF_ENDPOINT at import) and the real
``zoo`` command, against ``tests/hubserver.py``; the commits are read back from its storage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import zoo_core
from tests.conftest import run_zoo
from tests.test_hub import Hub, run_python, running_hub

SAVER = textwrap.dedent(
    """
    import os, sys, zoo_core
    directory, stop = sys.argv[1], sys.argv[2]
    models = [
        zoo_core.create_model("linear_regression", input_dim=128, output_dim=64, seed=s)
        for s in (0, 1, 2)
    ]
    saves = 0
    while not os.path.exists(stop):
        # Alternate contents and layouts (one file, shards): any mix shows up in a commit.
        shard = 20_000 if saves % 3 == 2 else None
        zoo_core.save_model(models[saves % 3], directory, max_shard_size=shard)
        saves += 1
    print(saves)
    """
)

PUSHER = """
import time, zoo_core
outcomes = []
deadline = time.monotonic() + params["seconds"]
while time.monotonic() < deadline:
    try:
        info = zoo_core.push_to_hub(params["dir"], "zoo/race")
        outcomes.append(["ok", info.oid])
    except zoo_core.ZooError as err:
        outcomes.append(["zoo", f"{type(err).__name__}: {err}"])
    except Exception as err:
        outcomes.append(["other", f"{type(err).__name__}: {err}"])
result = outcomes
"""


def commit_problems(repo: Path, sha: str) -> list[str]:
    """How a commit's weights differ from what its config.json records (empty: consistent)."""
    manifest = json.loads((repo / "commits" / f"{sha}.json").read_text())["files"]
    if "config.json" not in manifest:
        return ["no config.json"]
    config = json.loads((repo / "blobs" / manifest["config.json"]["sha256"]).read_bytes())
    recorded = config["files"]
    weights = {n for n in manifest if n.endswith((".safetensors", ".safetensors.index.json"))}
    problems = []
    if weights != set(recorded):
        problems.append(f"weights {sorted(weights)} but config.json records {sorted(recorded)}")
    for name in weights & set(recorded):
        if manifest[name]["sha256"] != recorded[name]["sha256"]:
            problems.append(f"{name} is not the file its config.json records")
    return problems


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub-race"), token=None) as server:
        yield server


@pytest.mark.slow
def test_pushes_racing_saves_publish_only_consistent_commits(open_hub: Hub, tmp_path: Path):
    directory = zoo_core.save_model(
        zoo_core.create_model("linear_regression", input_dim=128, output_dim=64, seed=0),
        tmp_path / "race",
    )
    env = open_hub.env(tmp_path / "home", token=None)
    stop = tmp_path / "stop"
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(directory), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # the saver is saving
        cli = [run_zoo("push", str(directory), "zoo/race", **env) for _ in range(2)]
        outcomes: list[Any] = run_python(env, PUSHER, dir=str(directory), seconds=15)
    finally:
        stop.touch()
        out, err = saver.communicate(timeout=120)
    assert saver.returncode == 0, err
    saves = int(out.strip())
    for result in cli:
        assert result.returncode == 0, result.stderr
        outcomes.append(["ok", result.stdout.split("@")[1].split()[0]])
    repo = open_hub.root / "models" / "zoo" / "race"
    commits = [sha for kind, sha in outcomes if kind == "ok"]
    mixed = {sha: p for sha in commits if (p := commit_problems(repo, sha))}
    refused = [text for kind, text in outcomes if kind != "ok"]
    print(
        f"saves={saves} pushes={len(outcomes)} commits_checked={len(commits)} "
        f"mixed={len(mixed)} refused={len(refused)}"
    )
    assert mixed == {}
    assert refused == []  # neither a false "does not match" nor a bare huggingface_hub error
    assert len(commits) >= 10 and saves >= 20


@pytest.mark.slow
def test_every_huggingface_hub_failure_is_a_zoo_error(open_hub: Hub, tmp_path: Path) -> None:
    """An LFS upload the server refuses makes huggingface_hub raise a bare RuntimeError."""
    directory = zoo_core.save_model(zoo_core.create_model("simple_cnn", seed=0), tmp_path / "cnn")
    env = open_hub.env(tmp_path / "home", token=None)
    created = run_python(
        env,
        "from huggingface_hub import HfApi\nresult = HfApi().create_repo('zoo/refused').repo_id",
    )
    repo = open_hub.root / "models" / "zoo" / "refused"
    (repo / "faults.json").write_text(
        json.dumps({"upload": {"status": 400, "message": "disk full"}})
    )
    got = run_python(
        env,
        """
        import zoo_core
        try:
            zoo_core.push_to_hub(params["dir"], "zoo/refused")
            result = "pushed"
        except zoo_core.ZooError as err:
            result = [type(err).__name__, str(err)]
        except Exception as err:
            result = ["not a zoo error", type(err).__name__, str(err)]
        """,
        dir=str(directory),
    )
    assert created == "zoo/refused"
    assert got[0] == "HubError", got
    assert "400" in got[1] and "disk full" in got[1]
    pushed = run_zoo("push", str(directory), "zoo/refused", **env)
    assert pushed.returncode == 1
    assert pushed.stderr.startswith("zoo: error:") and "internal error" not in pushed.stderr
