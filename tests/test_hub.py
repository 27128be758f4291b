"""Sharing models through the Hub: ``zoo push``/``zoo pull``, ``hf://`` sources, cards, offline.

Everything runs the real huggingface_hub client against ``tests/hubserver.py`` on 127.0.0.1.
huggingface_hub reads HF_ENDPOINT and HF_HOME when it is imported, so every Hub-touching call
runs in a fresh process: the ``zoo`` command (:func:`run_zoo`) or a Python snippet
(:func:`run_python`), each with its own environment and cache, forked from a warm interpreter
that has not imported huggingface_hub (tests/forkserver.py). Nothing touches ~/.cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

import zoo_core
from tests.conftest import run_python_code, run_zoo, start_zoo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import client_env, start_server_subprocess, stop_server_subprocess

# Distinctive, so a leak anywhere (output, card, config, cache) is easy to find.
TOKEN = "hf_zootest_N0tToBeSh0wn_5e1b9c"
USER = "zoo"


@dataclass
class Hub:
    url: str
    root: Path

    def env(self, hf_home: Path, *, token: str | None = TOKEN, **extra: str) -> dict[str, str]:
        """The environment of a client process: this server, a private cache, LFS uploads."""
        return {**client_env(self.url, hf_home, token), **extra}


def run_python(env: dict[str, str], code: str, **params: Any) -> Any:
    """Run a snippet in a fresh interpreter; it leaves its answer in ``result`` (JSON)."""
    script = (
        "import json, os\nparams = json.loads(os.environ['HUBTEST_PARAMS'])\n"
        + textwrap.dedent(code)
        + "\nprint('RESULT:' + json.dumps(result))\n"
    )
    proc = run_python_code(script, **env, HUBTEST_PARAMS=json.dumps(params))
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")][-1]
    return json.loads(line.removeprefix("RESULT:"))


def upload_files(hub: Hub, home: Path, repo: str, files: dict[str, bytes | Path]) -> str:
    """Create ``repo`` and commit raw files to it with the plain client; returns the commit."""
    folder = home / "upload" / repo.replace("/", "--")
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for name, data in files.items():
        target = folder / name
        target.write_bytes(data if isinstance(data, bytes) else Path(data).read_bytes())
        names[name] = str(target)
    return run_python(
        hub.env(home),
        """
        from huggingface_hub import CommitOperationAdd, HfApi
        api = HfApi()
        api.create_repo(params["repo"], exist_ok=True)
        ops = [CommitOperationAdd(n, p) for n, p in params["files"].items()]
        result = api.create_commit(params["repo"], ops, commit_message="raw upload").oid
        """,
        repo=repo,
        files=names,
    )


def tensor_digests(tensors: dict[str, Any]) -> dict[str, str]:
    return {
        k: hashlib.sha256(
            t.contiguous().view(-1).view(dtype=__import__("torch").uint8).numpy()
        ).hexdigest()
        for k, t in tensors.items()
    }


def saved_digests(directory: Path) -> dict[str, str]:
    """Digest of every tensor stored in a saved directory (single file or shards)."""
    tensors: dict[str, Any] = {}
    for file in sorted(directory.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensor_digests(tensors)


HUB_DIGESTS = """
import hashlib, torch, zoo_core
model = zoo_core.load_model(params["source"])
result = {
    k: hashlib.sha256(t.contiguous().view(-1).view(torch.uint8).numpy()).hexdigest()
    for k, t in model.state_dict().items()
}
"""


def cached_names(home: Path) -> set[str]:
    """Names of the files in the huggingface_hub cache's snapshots (what was downloaded)."""
    return {p.name for p in (home / "hub").glob("models--*/snapshots/*/*")}


def all_bytes_under(*folders: Path) -> Iterator[tuple[Path, bytes]]:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                yield path, path.read_bytes()


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_hub(root: Path, token: str | None = TOKEN) -> Iterator[Hub]:
    """A Hub-protocol server subprocess for user 'zoo' (requiring ``token``, if any)."""
    url, process = start_server_subprocess(root, token=token, user=USER)
    try:
        yield Hub(url=url, root=root)
    finally:
        stop_server_subprocess(process)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A Hub-protocol server subprocess requiring TOKEN for user 'zoo', shared by the module."""
    with running_hub(tmp_path_factory.mktemp("hub-root")) as server:
        yield server


@dataclass
class Published:
    single: Path
    sharded: Path
    single_commit: str
    sharded_commit: str
    push_output: str


@pytest.fixture(scope="module")
def published(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """zoo/cnn (one file, pushed with the CLI) and zoo/cnn-sharded (shards, pushed from Python)."""
    tmp = tmp_path_factory.mktemp("published")
    single = zoo_core.save_model(zoo_core.create_model("simple_cnn", seed=0), tmp / "cnn")
    sharded = zoo_core.save_model(
        zoo_core.create_model("simple_cnn", seed=1, num_classes=5),
        tmp / "cnn-sharded",
        max_shard_size=20_000,
    )
    assert len(list(sharded.glob("*.safetensors"))) > 1
    home = tmp / "home"
    pushed = run_zoo("push", str(single), "zoo/cnn", "--license", "mit", **hub.env(home))
    assert pushed.returncode == 0, pushed.stderr
    single_commit = pushed.stdout.split("hf://zoo/cnn@")[1].split()[0]
    sharded_commit = run_python(
        hub.env(home),
        """
        import zoo_core
        info = zoo_core.push_to_hub(params["dir"], "zoo/cnn-sharded", commit_message="shards")
        result = info.oid
        """,
        dir=str(sharded),
    )
    return Published(single, sharded, single_commit, sharded_commit, pushed.stdout + pushed.stderr)


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_single_file_model_loads_back_bit_exact(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    env = hub.env(tmp_path / "home")
    result = run_zoo("load", "hf://zoo/cnn", "--json", **env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source_kind"] == "hub"
    assert data["source"] == f"hf://zoo/cnn@{published.single_commit}"
    assert (data["repo_id"], data["revision"], data["commit"]) == (
        "zoo/cnn",
        None,
        published.single_commit,
    )
    human = run_zoo("load", "hf://zoo/cnn", **env)
    assert f"loaded from hf://zoo/cnn@{published.single_commit}" in human.stdout
    got = run_python(env, HUB_DIGESTS, source="hf://zoo/cnn")
    assert got == saved_digests(published.single)
    # Only the allow-listed names were fetched (the repo also holds .gitattributes).
    assert cached_names(tmp_path / "home") == {"config.json", "model.safetensors", "README.md"}


def test_sharded_model_pushed_from_python_loads_back_bit_exact(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    env = hub.env(tmp_path / "home")
    got = run_python(env, HUB_DIGESTS, source=f"hf://zoo/cnn-sharded@{published.sharded_commit}")
    assert got == saved_digests(published.sharded)
    shards = {p.name for p in published.sharded.glob("*.safetensors")}
    assert cached_names(tmp_path / "home") == {
        "config.json",
        "model.safetensors.index.json",
        "README.md",
        *shards,
    }


def test_verify_checks_a_sharded_hub_model_in_the_cache(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    env = hub.env(tmp_path / "home")
    result = run_zoo("verify", f"hf://zoo/cnn-sharded@{published.sharded_commit}", **env)
    assert result.returncode == 0, result.stderr
    assert "structure and content hashes checked" in result.stdout
    # The cache's snapshot links point into its blobs folder: that is not "outside".
    assert "outside" not in result.stdout


@pytest.mark.slow
def test_models_pushed_from_memory_by_python_and_by_name(hub: Hub, tmp_path: Path) -> None:
    env = hub.env(tmp_path / "home")
    result = run_python(
        env,
        """
        import hashlib, torch, zoo_core

        def digests(model):
            return {
                k: hashlib.sha256(t.contiguous().view(-1).view(torch.uint8).numpy()).hexdigest()
                for k, t in model.state_dict().items()
            }

        model = zoo_core.create_model("linear_regression", seed=7)
        info = zoo_core.push_to_hub(model, "zoo/lr", private=True, commit_message="from memory")
        back = zoo_core.load_model(f"hf://zoo/lr@{info.oid}")
        result = {"same": digests(model) == digests(back), "commit": info.oid}
        """,
    )
    assert result["same"] is True
    by_name = run_zoo("push", "linear_regression", "zoo/lr-fresh", "--seed", "3", **env)
    assert by_name.returncode == 0, by_name.stderr
    assert "pushed linear_regression (built fresh) to hf://zoo/lr-fresh@" in by_name.stdout
    loaded = json.loads(run_zoo("load", "hf://zoo/lr-fresh", "--json", **env).stdout)
    assert loaded["architecture"] == "linear_regression"


@pytest.mark.slow
def test_info_fetches_only_the_config_and_card(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    result = run_zoo("info", "hf://zoo/cnn-sharded", "--json", **hub.env(tmp_path / "home"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["config"]["num_classes"] == 5
    assert data["source"] == f"hf://zoo/cnn-sharded@{published.sharded_commit}"
    assert data["card"]["library_name"] == "zoo"
    assert cached_names(tmp_path / "home") == {"config.json", "README.md"}


@pytest.mark.slow
def test_revision_pins_old_weights_after_a_second_push(hub: Hub, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = hub.env(home)
    old = zoo_core.save_model(zoo_core.create_model("simple_rnn", seed=0), tmp_path / "old")
    new = zoo_core.save_model(zoo_core.create_model("simple_rnn", seed=1), tmp_path / "new")
    first = run_zoo("push", str(old), "zoo/rnn", **env)
    second = run_zoo("push", str(new), "zoo/rnn", "-m", "retrained", **env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    old_sha = first.stdout.split("@")[1].split()[0]
    new_sha = second.stdout.split("@")[1].split()[0]
    assert old_sha != new_sha
    assert saved_digests(old) != saved_digests(new)
    assert run_python(env, HUB_DIGESTS, source=f"hf://zoo/rnn@{old_sha}") == saved_digests(old)
    assert run_python(env, HUB_DIGESTS, source="hf://zoo/rnn") == saved_digests(new)
    # A branch pins too, and push creates it.
    branch = run_zoo("push", str(old), "zoo/rnn", "--revision", "stable", **env)
    assert branch.returncode == 0, branch.stderr
    pinned = run_zoo("load", "hf://zoo/rnn@stable", "--json", **env)
    assert json.loads(pinned.stdout)["revision"] == "stable"
    assert run_python(env, HUB_DIGESTS, source="hf://zoo/rnn@stable") == saved_digests(old)
    assert run_python(env, HUB_DIGESTS, source="hf://zoo/rnn@main") == saved_digests(new)


@pytest.mark.slow
def test_pull_then_load_offline(hub: Hub, published: Published, tmp_path: Path) -> None:
    home = tmp_path / "home"
    pulled = run_zoo("pull", "zoo/cnn", "--json", **hub.env(home))
    assert pulled.returncode == 0, pulled.stderr
    data = json.loads(pulled.stdout)
    assert data["commit"] == published.single_commit
    assert Path(data["path"]).name == published.single_commit
    assert Path(data["path"]).is_relative_to(home / "hub")
    assert sorted(data["files"]) == ["README.md", "config.json", "model.safetensors"]
    human = run_zoo("pull", "hf://zoo/cnn", **hub.env(home))
    assert data["path"] in human.stdout and published.single_commit in human.stdout

    # Offline, and with the server out of reach: the cache alone must serve it.
    offline = hub.env(home, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    loaded = run_zoo("load", "hf://zoo/cnn", "--json", **offline)
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["commit"] == published.single_commit
    assert run_python(offline, HUB_DIGESTS, source="hf://zoo/cnn") == saved_digests(
        published.single
    )
    # The Python API agrees, offline too.
    path = run_python(offline, "import zoo_core\nresult = str(zoo_core.pull('zoo/cnn'))")
    assert path == data["path"]

    never = run_zoo("load", "hf://zoo/cnn-sharded", **offline)
    assert never.returncode == 1
    assert "not in the local cache" in never.stderr and "HF_HUB_OFFLINE" in never.stderr
    assert "Traceback" not in never.stderr


def test_missing_plugin_fails_before_any_weights_are_downloaded(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    record = json.loads((published.single / "config.json").read_text())
    record.update(architecture="vit_tiny", plugin="zoo-vit", plugin_version="2.1.0")
    upload_files(
        hub,
        tmp_path / "up",
        "zoo/vit",
        {
            "config.json": json.dumps(record).encode(),
            "model.safetensors": published.single / "model.safetensors",
        },
    )
    home = tmp_path / "home"
    for command in ("load", "info"):
        result = run_zoo(command, "hf://zoo/vit", **hub.env(home))
        assert result.returncode == 1
        assert "zoo-vit" in result.stderr and "not installed" in result.stderr
        assert "pip install 'zoo-vit>=2.1.0'" in result.stderr
    assert cached_names(home) == {"config.json"}


@pytest.mark.slow
def test_not_found_no_permission_and_network_errors(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    missing = run_zoo("load", "hf://zoo/no-such-model", **hub.env(home))
    assert missing.returncode == 1
    assert "no repository zoo/no-such-model" in missing.stderr

    bad_rev = run_zoo("pull", "zoo/cnn", "--revision", "v9", **hub.env(home))
    assert bad_rev.returncode == 1
    assert "revision 'v9' does not exist in zoo/cnn" in bad_rev.stderr

    wrong_token = run_zoo("load", "hf://zoo/cnn", **hub.env(home, token="hf_wrong"))
    assert wrong_token.returncode == 1
    assert "refused the credentials" in wrong_token.stderr and "(401)" in wrong_token.stderr
    assert "hf_wrong" not in wrong_token.stderr

    no_token = run_zoo("push", str(published.single), "zoo/x", **hub.env(home, token=None))
    assert no_token.returncode == 1 and "(401)" in no_token.stderr
    assert "no repository zoo/x" in run_zoo("pull", "zoo/x", **hub.env(home)).stderr

    elsewhere = run_zoo("push", str(published.single), "someone-else/cnn", **hub.env(home))
    assert elsewhere.returncode == 1
    assert "no permission to write to someone-else/cnn (403)" in elsewhere.stderr

    down = run_zoo("load", "hf://zoo/cnn", **hub.env(home, HF_ENDPOINT="http://127.0.0.1:9"))
    assert down.returncode == 1 and "cannot reach the Hub" in down.stderr

    malformed = run_zoo("load", "hf://not a repo", **hub.env(home))
    assert malformed.returncode == 2 and "not a Hub model source" in malformed.stderr
    for result in (missing, bad_rev, wrong_token, no_token, elsewhere, down, malformed):
        assert "Traceback" not in result.stderr
    assert cached_names(home) == set()


@pytest.mark.slow
def test_repos_that_are_not_zoo_models(hub: Hub, published: Published, tmp_path: Path) -> None:
    weights = published.single / "model.safetensors"
    upload_files(
        hub,
        tmp_path / "up",
        "zoo/bert",
        {"config.json": b'{"model_type": "bert"}', "model.safetensors": weights},
    )
    upload_files(
        hub,
        tmp_path / "up",
        "zoo/pickled",
        {"config.json": b'{"model_type": "bert"}', "pytorch_model.bin": b"\x80\x04pickle"},
    )
    upload_files(hub, tmp_path / "up", "zoo/notes", {"notes.txt": b"hello"})
    home = tmp_path / "home"
    bert = run_zoo("load", "hf://zoo/bert", **hub.env(home))
    assert bert.returncode == 1 and "hf://zoo/bert is not a zoo model" in bert.stderr
    pickled = run_zoo("pull", "zoo/pickled", **hub.env(home))
    assert pickled.returncode == 1
    assert "holds only pickle weights (pytorch_model.bin)" in pickled.stderr
    notes = run_zoo("load", "hf://zoo/notes", **hub.env(home))
    assert notes.returncode == 1 and "no config.json" in notes.stderr
    assert "pytorch_model.bin" not in cached_names(home)


def test_only_allow_listed_files_are_downloaded(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    marker = tmp_path / "executed"
    upload_files(
        hub,
        tmp_path / "up",
        "zoo/mixed",
        {
            "config.json": published.single / "config.json",
            "model.safetensors": published.single / "model.safetensors",
            "modeling.py": f"open({str(marker)!r}, 'w').write('ran')\n".encode(),
            "pytorch_model.bin": b"\x80\x04not really a pickle",
            "notes.txt": b"extra",
        },
    )
    home = tmp_path / "home"
    for args in (("load", "hf://zoo/mixed"), ("pull", "zoo/mixed")):
        result = run_zoo(*args, **hub.env(home))
        assert result.returncode == 0, result.stderr
    assert cached_names(home) == {"config.json", "model.safetensors"}
    downloaded = {p.name for p in home.rglob("*")}
    assert not {"modeling.py", "pytorch_model.bin", "notes.txt"} & downloaded
    assert not marker.exists()


@pytest.mark.slow
def test_model_card(hub: Hub, published: Published, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    home = tmp_path / "home"
    path = Path(json.loads(run_zoo("pull", "zoo/cnn", "--json", **hub.env(home)).stdout)["path"])
    card = ModelCard.load(path / "README.md")
    assert card.data.library_name == "zoo"
    assert set(card.data.tags) >= {"zoo", "simple_cnn", "zoo-cnn"}
    assert card.data.license == "mit"
    text = card.text
    assert "`simple_cnn`" in text and "`zoo-cnn`" in text
    assert "31,818" in text  # the parameter count of the default SimpleCNN
    assert '"num_classes": 10' in text
    assert "pip install zoo-core zoo-cnn" in text
    assert "zoo load hf://zoo/cnn" in text
    assert 'zoo_core.load_model("hf://zoo/cnn"' in text

    # The sharded repo's card was generated from Python, without a license.
    sharded = run_zoo("pull", "zoo/cnn-sharded", "--json", **hub.env(home))
    sharded_card = ModelCard.load(Path(json.loads(sharded.stdout)["path"]) / "README.md")
    assert sharded_card.data.license is None
    assert "shards" in sharded_card.text and '"num_classes": 5' in sharded_card.text


@pytest.mark.slow
def test_an_existing_card_is_kept_unless_overwritten(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    env = hub.env(tmp_path / "home")
    run_zoo("push", str(published.single), "zoo/carded", **env)
    upload_files(hub, tmp_path / "up", "zoo/carded", {"README.md": b"# Hand-written card\n"})

    def card_text() -> str:
        pulled = run_zoo("pull", "zoo/carded", "--json", **env)
        return (Path(json.loads(pulled.stdout)["path"]) / "README.md").read_text()

    again = run_zoo("push", str(published.single), "zoo/carded", **env)
    assert again.returncode == 0, again.stderr
    assert card_text() == "# Hand-written card\n"
    forced = run_zoo("push", str(published.single), "zoo/carded", "--overwrite-card", **env)
    assert forced.returncode == 0, forced.stderr
    assert "library_name: zoo" in card_text()


@pytest.mark.slow
def test_sharded_push_replaces_single_file_weights(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    env = hub.env(tmp_path / "home")
    run_zoo("push", str(published.single), "zoo/switch", **env)
    switched = run_zoo("push", str(published.sharded), "zoo/switch", **env)
    assert switched.returncode == 0, switched.stderr
    files = run_python(
        env, "from huggingface_hub import HfApi\nresult = HfApi().list_repo_files('zoo/switch')"
    )
    assert "model.safetensors" not in files and "model.safetensors.index.json" in files
    assert run_python(env, HUB_DIGESTS, source="hf://zoo/switch") == saved_digests(
        published.sharded
    )


@pytest.mark.slow
def test_content_is_checked_against_recorded_hashes(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    weights = (published.single / "model.safetensors").read_bytes()
    record = json.loads((published.single / "config.json").read_text())
    good = {"sha256": hashlib.sha256(weights).hexdigest(), "size": len(weights)}
    upload_files(
        hub,
        tmp_path / "up",
        "zoo/hashed",
        {
            "config.json": json.dumps({**record, "files": {"model.safetensors": good}}).encode(),
            "model.safetensors": weights,
        },
    )
    bad = {**good, "sha256": "0" * 64}  # the server's file no longer matches what was recorded
    upload_files(
        hub,
        tmp_path / "up",
        "zoo/tampered",
        {
            "config.json": json.dumps({**record, "files": {"model.safetensors": bad}}).encode(),
            "model.safetensors": weights,
        },
    )
    home = tmp_path / "home"
    assert run_zoo("load", "hf://zoo/hashed", **hub.env(home)).returncode == 0
    tampered = run_zoo("load", "hf://zoo/tampered", **hub.env(home))
    assert tampered.returncode == 1
    assert "model.safetensors from hf://zoo/tampered is corrupt or was tampered" in tampered.stderr
    # The bad file left the cache, so the next try downloads it again instead of trusting it.
    assert not list((home / "hub").glob("models--zoo--tampered/snapshots/*/model.safetensors"))
    # push checks the same record before uploading anything.
    local = tmp_path / "up" / "upload" / "zoo--tampered"
    refused = run_zoo("push", str(local), "zoo/tampered-again", **hub.env(home))
    assert refused.returncode == 1 and "does not match its config.json" in refused.stderr
    assert "no repository" in run_zoo("pull", "zoo/tampered-again", **hub.env(home)).stderr


@pytest.mark.slow
def test_token_appears_in_no_output_or_file(hub: Hub, published: Published, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = hub.env(home)
    outputs = [published.push_output]
    for args in (
        ("push", str(published.single), "zoo/secret", "--private"),
        ("pull", "zoo/secret", "--json"),
        ("load", "hf://zoo/secret", "--json"),
        ("info", "hf://zoo/secret"),
        ("load", "hf://zoo/missing"),
        ("--debug", "load", "hf://zoo/missing"),
    ):
        result = run_zoo(*args, **env)
        outputs.append(result.stdout + result.stderr)
    # The private repo is invisible without a token, and the error says what to do.
    anonymous = run_zoo("load", "hf://zoo/secret", **hub.env(home, token=None))
    assert anonymous.returncode == 1 and "HF_TOKEN" in anonymous.stderr
    assert all(TOKEN not in text for text in outputs)
    for path, data in all_bytes_under(home, hub.root, published.single):
        assert TOKEN.encode() not in data, path


@pytest.mark.slow
def test_interrupted_downloads_resume(published: Published, tmp_path: Path) -> None:
    url, process = start_server_subprocess(
        tmp_path / "root", token=TOKEN, extra_args=["--interrupt-downloads-after", "5000"]
    )
    try:
        hub = Hub(url, tmp_path / "root")
        env = hub.env(tmp_path / "home")
        assert run_zoo("push", str(published.single), "zoo/cut", **env).returncode == 0
        got = run_python(env, HUB_DIGESTS, source="hf://zoo/cut")
    finally:
        stop_server_subprocess(process)
    assert got == saved_digests(published.single)


@pytest.mark.slow
def test_progress_bars_on_a_terminal_only(
    hub: Hub, published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, **hub.env(tmp_path / "piped")}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    piped = subprocess.run(
        [str(Path(sys.executable).with_name("zoo")), "pull", "zoo/cnn"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    assert "%|" not in piped.stderr

    # On a terminal (in a process forked from the warm interpreter, which has not imported
    # huggingface_hub: it reads HF_HUB_DISABLE_PROGRESS_BARS at import, in the child).
    env = {**os.environ, **hub.env(tmp_path / "tty")}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    leader, follower = pty.openpty()
    # A pty starts 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    with monkeypatch.context() as patch:
        patch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
        try:
            process = start_zoo("pull", "zoo/cnn", tty=os.ttyname(follower), **env)
        finally:
            os.close(follower)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the pty closes when the child exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=30) == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "model.safetensors" in shown and "100%" in shown


# --------------------------------------------------------------------------------------------
# Hostile input: malformed ids and revisions, lying or slow servers, oversized files
# --------------------------------------------------------------------------------------------


def copy_of_published(hub: Hub, home: Path, repo: str, published: Published, **extra: bytes) -> str:
    """A fresh repository holding the published single-file model (plus ``extra`` files)."""
    files: dict[str, bytes | Path] = {
        "config.json": published.single / "config.json",
        "model.safetensors": published.single / "model.safetensors",
    }
    files.update(extra)
    return upload_files(hub, home, repo, files)


def set_faults(hub: Hub, repo: str, faults: dict[str, Any]) -> None:
    """Make tests/hubserver.py answer for ``repo`` as ``faults`` says (its "Hostile answers")."""
    (hub.root / "models" / repo / "faults.json").write_text(json.dumps(faults))


@pytest.mark.parametrize(
    "source",
    [
        "hf://zoo/cnn@../../x",
        "hf://zoo/cnn@main/../../x",
        "hf://zoo/cnn@v1.lock",
        "hf://me/cnn-",
        "hf://me/a--b",
        "hf://me/x.git",
        "hf://me/" + "a" * 5000,
        "hf://me/.x",
    ],
)
def test_sources_the_hub_client_would_refuse_are_usage_errors(source: str) -> None:
    from zoo_core.hub.download import parse_hf_source

    with pytest.raises(zoo_core.UsageError) as info:
        parse_hf_source(source)
    assert info.value.exit_code == 2
    assert "is not a Hub model source" in str(info.value) or "is not a revision" in str(info.value)
    assert len(info.value.message) < 200  # the 5,000-character name is not echoed back


@pytest.mark.slow
def test_malformed_sources_exit_2_before_any_request(hub: Hub, tmp_path: Path) -> None:
    home = tmp_path / "home"
    model_dir = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "lr")
    attempts = [
        ("pull", "zoo/cnn", "--revision", "../../outside"),
        ("pull", "me/cnn-"),
        ("push", str(model_dir), "me/a--b"),
        ("load", "hf://zoo/cnn@../../x"),
    ]
    for args in attempts:
        result = run_zoo(*args, **hub.env(home))
        assert result.returncode == 2, (args, result.stderr)
        assert "is not a Hub model source" in result.stderr or "is not a revision" in result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr) < 600
    # Nothing was written for them, inside HF_HOME or beside it.
    assert not (home / "hub").exists() and not (tmp_path / "outside").exists()


@pytest.mark.slow
def test_a_server_contradicting_itself_is_not_followed_forever(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    copy_of_published(hub, tmp_path / "up", "zoo/liar", published)
    # Model info names a commit that its downloads (X-Repo-Commit) never confirm.
    set_faults(hub, "zoo/liar", {"info": {"sha": "f" * 40}})
    result = run_zoo("load", "hf://zoo/liar", **hub.env(tmp_path / "home"))
    assert result.returncode == 1, result.stderr
    assert "keeps contradicting itself about zoo/liar" in result.stderr
    assert "RecursionError" not in result.stderr and "internal error" not in result.stderr


@pytest.mark.slow
def test_stalled_and_endless_transfers_end_with_a_clear_error(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    copy_of_published(hub, tmp_path / "up", "zoo/slow", published)
    home = tmp_path / "home"
    # One byte every half second: never silent long enough for a read timeout, never done.
    set_faults(hub, "zoo/slow", {"resolve": {"model.safetensors": {"trickle": [1, 0.5]}}})
    started = time.monotonic()
    stalled = run_zoo("load", "hf://zoo/slow", **hub.env(home, ZOO_HUB_STALL_TIMEOUT="2"))
    assert stalled.returncode == 1, stalled.stderr
    assert "model.safetensors from zoo/slow: the transfer stalled" in stalled.stderr
    assert "ZOO_HUB_STALL_TIMEOUT=2" in stalled.stderr
    # Fast enough never to stall (4 KiB every 0.2 s), too slow for a 3 s deadline.
    set_faults(hub, "zoo/slow", {"resolve": {"model.safetensors": {"trickle": [4096, 0.2]}}})
    late = run_zoo(
        "load", "hf://zoo/slow", **hub.env(home, ZOO_HUB_TIMEOUT="3", ZOO_HUB_STALL_TIMEOUT="2")
    )
    assert late.returncode == 1, late.stderr
    assert "took longer than ZOO_HUB_TIMEOUT=3 s" in late.stderr
    assert time.monotonic() - started < 60
    bad = run_zoo("load", "hf://zoo/slow", **hub.env(home, ZOO_HUB_TIMEOUT="soon"))
    assert bad.returncode == 2 and "ZOO_HUB_TIMEOUT=soon is not a number of seconds" in bad.stderr
    for result in (stalled, late, bad):
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


@pytest.mark.slow
def test_oversized_card_and_config_are_not_downloaded(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    from zoo_core.hub.download import MAX_CARD_BYTES, MAX_CONFIG_BYTES

    card = b"# big card\n" + b"x" * (MAX_CARD_BYTES + 10)
    copy_of_published(hub, tmp_path / "up", "zoo/bigcard", published, **{"README.md": card})
    home = tmp_path / "home"
    loaded = run_zoo("load", "hf://zoo/bigcard", **hub.env(home))
    assert loaded.returncode == 0, loaded.stderr
    assert "not fetching its README.md" in loaded.stderr
    assert "README.md" not in cached_names(home)

    record = json.loads((published.single / "config.json").read_text())
    padded = json.dumps(record) + " " * (MAX_CONFIG_BYTES + 1)
    upload_files(
        hub,
        tmp_path / "up",
        "zoo/bigconfig",
        {
            "config.json": padded.encode(),
            "model.safetensors": published.single / "model.safetensors",
        },
    )
    big = run_zoo("info", "hf://zoo/bigconfig", **hub.env(tmp_path / "home2"))
    assert big.returncode == 1, big.stderr
    assert f"config.json of zoo/bigconfig is {len(padded)} bytes, more than" in big.stderr
    assert cached_names(tmp_path / "home2") == set()
    # A server that says a config is small and then sends more is cut off while it arrives.
    set_faults(hub, "zoo/bigcard", {"resolve": {"config.json": {"body": padded}}})
    lying = run_zoo("info", "hf://zoo/bigcard", **hub.env(tmp_path / "home3"))
    assert lying.returncode == 1, lying.stderr
    assert "over the" in lying.stderr and "bytes allowed" in lying.stderr, lying.stderr[-600:]
    assert "config.json" not in cached_names(tmp_path / "home3")


def _unshare_works() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "-m", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.slow
def test_an_unwritable_or_full_cache_is_a_plain_error(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    env = hub.env(tmp_path / "home", HF_HUB_CACHE="/sys/zoo-cache")
    denied = run_zoo("load", "hf://zoo/cnn", **env)
    assert denied.returncode == 1, denied.stderr
    assert "cannot write the Hugging Face cache (/sys/zoo-cache)" in denied.stderr
    outputs = [denied.stderr]
    if _unshare_works():
        # A private tmpfs mount: 64 KiB fills up (ENOSPC); remounted read-only it is EROFS.
        mount = tmp_path / "mnt"
        mount.mkdir()
        zoo = str(Path(sys.executable).with_name("zoo"))
        for options, wanted in (("size=64k", "the disk is full"), ("ro", "read-only")):
            script = f"mount -t tmpfs -o {options} tmpfs {mount} && exec {zoo} load hf://zoo/cnn"
            env = {**os.environ, **hub.env(tmp_path / "home", HF_HUB_CACHE=str(mount / "hub"))}
            result = subprocess.run(
                ["unshare", "-m", "sh", "-c", script],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 1, result.stderr
            assert "cannot write the Hugging Face cache" in result.stderr
            assert wanted in result.stderr
            outputs.append(result.stderr)
    for text in outputs:
        assert "internal error" not in text and "Traceback" not in text


def test_push_refuses_files_that_link_out_of_the_directory(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    """A planted link (README.md -> the user's token) is refused before anything is sent."""
    env = hub.env(tmp_path / "home")
    secret = tmp_path / "token"
    secret.write_text("hf_not_for_upload_0123456789\n")
    for planted in ("README.md", "config.json"):
        model = tmp_path / f"linked-{planted.split('.')[0].lower()}"
        shutil.copytree(published.single, model)
        if planted == "config.json":
            os.replace(model / planted, tmp_path / "real-config.json")
            os.symlink(tmp_path / "real-config.json", model / planted)
        else:
            os.symlink(secret, model / planted)
        repo = f"zoo/linked-{planted.split('.')[0].lower()}"
        result = run_zoo("push", str(model), repo, **env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "outside" in result.stderr and "Traceback" not in result.stderr
        # Refused before any request: the repository was never created.
        assert not (hub.root / "models" / repo).exists(), f"{repo} was created"
