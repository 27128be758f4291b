"""End-to-end tests of ``tests/hubserver.py`` with the real ``huggingface_hub`` client.

The client reads ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_DISABLE_XET`` when it is imported, so
every client call runs in a fresh process (:func:`run_client`) whose environment points it at
the server. The server runs as a subprocess for most tests, like the project's shared fixture will,
and in-process where a test inspects what it served.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_python_code

# Import by path so this works whether or not tests/ is a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import HubServer, start_server_subprocess, stop_server_subprocess

TOKEN = "hf_test_token"
REPO = "zoo/roundtrip"
WEIGHTS_SIZE = 2 * 1024 * 1024  # large and binary enough to go through Git LFS

# Runs before each client snippet. `params` carries the test's values (repo id, commit shas,
# paths) so snippets need no string formatting; a snippet leaves its answer in `result`.
CLIENT_PRELUDE = """
import json, os
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub import hf_hub_download, snapshot_download

params = json.loads(os.environ["HUBTEST_PARAMS"])
api = HfApi()  # endpoint and token come from HF_ENDPOINT and HF_TOKEN


def error_of(call):
    '''Describe the exception `call()` raises, in JSON-friendly form.'''
    try:
        call()
    except Exception as err:
        response = getattr(err, "response", None)
        return {
            "type": type(err).__name__,
            "bases": [cls.__name__ for cls in type(err).__mro__],
            "status": getattr(response, "status_code", None),
        }
    return None
"""
CLIENT_EPILOGUE = '\nprint("RESULT:" + json.dumps(result))\n'


def client_env(url: str, hf_home: Path, token: str | None) -> dict[str, str]:
    """The environment of a client process: our server, a private cache, LFS uploads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(
        HF_ENDPOINT=url,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_XET="1",  # this server has no Xet storage: upload through Git LFS
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_client(url: str, hf_home: Path, code: str, token: str | None = TOKEN, **params: Any) -> Any:
    """Run a client snippet in a fresh process and return the ``result`` it computed.

    The process is forked from the suite's warm interpreter (tests/forkserver.py), which
    has not imported huggingface_hub: it reads this environment when the snippet imports it.
    """
    env = client_env(url, hf_home, token)
    env["HUBTEST_PARAMS"] = json.dumps(params)
    script = CLIENT_PRELUDE + textwrap.dedent(code) + CLIENT_EPILOGUE
    proc = run_python_code(script, environment=env)
    if proc.returncode != 0:
        pytest.fail(f"client snippet failed:\n{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT:")]
    return json.loads(lines[-1].removeprefix("RESULT:"))


def write_tree(folder: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return folder


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@dataclass
class Hub:
    url: str
    root: Path


@dataclass
class Published:
    """The repository :func:`published` pushed: its two commits and their file contents."""

    first: str
    second: str
    v1: dict[str, bytes]
    v2: dict[str, bytes]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A server subprocess requiring TOKEN, shared by the module."""
    root = tmp_path_factory.mktemp("hub-root")
    url, process = start_server_subprocess(root, token=TOKEN)
    try:
        yield Hub(url=url, root=root)
    finally:
        stop_server_subprocess(process)


@pytest.fixture(scope="module")
def published(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """REPO with two commits on main.

    The first uploads a folder (a model card, text files, a 2 MiB binary that goes through LFS).
    The second changes the binary and the config, deletes a file and deletes a folder.
    """
    rng = random.Random(0)
    v1 = {
        "README.md": b"---\nlicense: mit\ntags: [zoo]\n---\n# Round trip\n",
        "config.json": b'{"hidden": 8}\n',
        "extra.txt": b"to be deleted as a file\n",
        "sub/notes.txt": b"to be deleted with its folder\n",
        "weights.bin": rng.randbytes(WEIGHTS_SIZE),
    }
    changes = {"config.json": b'{"hidden": 16}\n', "weights.bin": rng.randbytes(WEIGHTS_SIZE)}
    v2 = {"README.md": v1["README.md"], **changes}
    tmp = tmp_path_factory.mktemp("published")
    shas = run_client(
        hub.url,
        tmp / "hf_home",
        """
        api.create_repo(params["repo"])
        first = api.upload_folder(folder_path=params["v1"], repo_id=params["repo"])
        operations = [
            CommitOperationAdd(name, os.path.join(params["changes"], name))
            for name in ("config.json", "weights.bin")
        ]
        operations += [
            CommitOperationDelete("extra.txt"),
            CommitOperationDelete("sub/", is_folder=True),
        ]
        second = api.create_commit(params["repo"], operations, commit_message="second")
        result = {"first": first.oid, "second": second.oid}
        """,
        repo=REPO,
        v1=str(write_tree(tmp / "v1", v1)),
        changes=str(write_tree(tmp / "changes", changes)),
    )
    return Published(first=shas["first"], second=shas["second"], v1=v1, v2=v2)


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------


def test_download_of_main_is_bit_exact(hub: Hub, published: Published, tmp_path: Path) -> None:
    paths = run_client(
        hub.url,
        tmp_path,
        "result = {name: hf_hub_download(params['repo'], name) for name in params['names']}",
        repo=REPO,
        names=sorted(published.v2),
    )
    for name, data in published.v2.items():
        assert Path(paths[name]).read_bytes() == data, name


def test_first_commit_by_sha_keeps_old_content(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    paths = run_client(
        hub.url,
        tmp_path,
        """
        result = {
            name: hf_hub_download(params["repo"], name, revision=params["sha"])
            for name in params["names"]
        }
        """,
        repo=REPO,
        sha=published.first,
        names=["config.json", "sub/notes.txt", "weights.bin"],
    )
    for name, path in paths.items():
        assert Path(path).read_bytes() == published.v1[name], name
    assert published.v1["weights.bin"] != published.v2["weights.bin"]


def test_snapshot_download_with_allow_patterns(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    folder = run_client(
        hub.url,
        tmp_path,
        """
        result = snapshot_download(
            params["repo"], revision=params["sha"], allow_patterns=["*.bin", "sub/*"]
        )
        """,
        repo=REPO,
        sha=published.first,
    )
    got = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in Path(folder).rglob("*")
        if p.is_file()
    }
    assert got == {name: published.v1[name] for name in ("weights.bin", "sub/notes.txt")}


def test_listings_refs_and_history(hub: Hub, published: Published, tmp_path: Path) -> None:
    listed = run_client(
        hub.url,
        tmp_path,
        """
        repo, first = params["repo"], params["first"]
        result = {
            "main": api.list_repo_files(repo),
            "first": api.list_repo_files(repo, revision=first),
            "branches": {ref.name: ref.target_commit for ref in api.list_repo_refs(repo).branches},
            "commits": [(c.commit_id, c.title, c.authors) for c in api.list_repo_commits(repo)],
            "top": sorted(entry.path for entry in api.list_repo_tree(repo, revision=first)),
            # Sent URL-encoded, as refs%2Fheads%2Fmain.
            "full_ref": api.model_info(repo, revision="refs/heads/main").sha,
        }
        """,
        repo=REPO,
        first=published.first,
    )
    assert sorted(listed["main"]) == sorted([".gitattributes", *published.v2])
    assert sorted(listed["first"]) == sorted([".gitattributes", *published.v1])
    assert listed["branches"] == {"main": published.second}
    assert listed["full_ref"] == published.second
    ids = [commit_id for commit_id, _, _ in listed["commits"]]
    titles = [title for _, title, _ in listed["commits"]]
    assert ids[:2] == [published.second, published.first]
    assert titles == ["second", "Upload folder using huggingface_hub", "initial commit"]
    assert all(authors == ["zoo"] for _, _, authors in listed["commits"])
    # Non-recursive listing: the folder itself, not its content.
    assert listed["top"] == sorted(
        [".gitattributes", "README.md", "config.json", "extra.txt", "sub", "weights.bin"]
    )


def test_model_info_siblings(hub: Hub, published: Published, tmp_path: Path) -> None:
    info = run_client(
        hub.url,
        tmp_path,
        """
        info = api.model_info(params["repo"])
        result = {
            "sha": info.sha,
            "private": info.private,
            "siblings": {
                s.rfilename: [s.size, s.lfs.sha256 if s.lfs else None] for s in info.siblings
            },
        }
        """,
        repo=REPO,
    )
    weights = published.v2["weights.bin"]
    assert info["sha"] == published.second
    assert info["private"] is False
    assert info["siblings"]["weights.bin"] == [len(weights), sha256(weights)]
    assert info["siblings"]["config.json"] == [len(published.v2["config.json"]), None]
    assert set(info["siblings"]) == {".gitattributes", *published.v2}


# --------------------------------------------------------------------------------------------
# Errors and authentication
# --------------------------------------------------------------------------------------------


def test_error_answers_map_to_client_exceptions(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    errors = run_client(
        hub.url,
        tmp_path,
        """
        repo = params["repo"]
        result = {
            "info_missing_repo": error_of(lambda: api.model_info("zoo/missing")),
            "download_missing_repo": error_of(lambda: hf_hub_download("zoo/missing", "x.txt")),
            "missing_file": error_of(lambda: hf_hub_download(repo, "missing.txt")),
            "missing_branch": error_of(
                lambda: hf_hub_download(repo, "config.json", revision="no-such-branch")
            ),
            # The client URL-encodes this as refs%2Fpr%2F1; the server must decode it.
            "missing_pr_ref": error_of(lambda: api.model_info(repo, revision="refs/pr/1")),
            "create_existing": error_of(lambda: api.create_repo(repo)),
            "create_existing_ok": error_of(lambda: api.create_repo(repo, exist_ok=True)),
        }
        """,
        repo=REPO,
    )
    assert errors["info_missing_repo"]["type"] == "RepositoryNotFoundError"
    assert errors["download_missing_repo"]["type"] == "RepositoryNotFoundError"
    assert "EntryNotFoundError" in errors["missing_file"]["bases"]
    assert errors["missing_file"]["status"] == 404
    assert errors["missing_branch"]["type"] == "RevisionNotFoundError"
    assert errors["missing_pr_ref"]["type"] == "RevisionNotFoundError"
    assert errors["create_existing"]["status"] == 409
    assert errors["create_existing_ok"] is None


def test_private_repo_needs_a_token(hub: Hub, published: Published, tmp_path: Path) -> None:
    seen = run_client(
        hub.url,
        tmp_path,
        """
        api.create_repo("zoo/private", private=True)
        api.upload_file(path_or_fileobj=b"secret", path_in_repo="secret.txt", repo_id="zoo/private")
        anonymous = HfApi(token=False)
        result = {
            "private": api.model_info("zoo/private").private,
            "anonymous_info": error_of(lambda: anonymous.model_info("zoo/private")),
            "anonymous_download": error_of(
                lambda: hf_hub_download("zoo/private", "secret.txt", token=False)
            ),
            "with_token": open(hf_hub_download("zoo/private", "secret.txt")).read(),
            "public_anonymous": open(
                hf_hub_download(params["repo"], "config.json", token=False)
            ).read(),
        }
        """,
        repo=REPO,
    )
    assert seen["private"] is True
    for key in ("anonymous_info", "anonymous_download"):
        assert seen[key]["status"] == 401, key
        assert seen[key]["type"] == "RepositoryNotFoundError", key
    assert seen["with_token"] == "secret"
    assert seen["public_anonymous"] == published.v2["config.json"].decode()


def test_push_with_bad_token_fails_and_leaves_no_commit(
    hub: Hub, published: Published, tmp_path: Path
) -> None:
    seen = run_client(
        hub.url,
        tmp_path,
        """
        def push(token):
            HfApi(token=token).upload_file(
                path_or_fileobj=b"intruder", path_in_repo="intruder.txt", repo_id=params["repo"]
            )

        before = [c.commit_id for c in api.list_repo_commits(params["repo"])]
        result = {
            "bad_token": error_of(lambda: push("hf_wrong")),
            "no_token": error_of(lambda: push(False)),
            "whoami_bad": error_of(lambda: api.whoami(token="hf_wrong")),
            "whoami": api.whoami()["name"],
            "unchanged": before == [c.commit_id for c in api.list_repo_commits(params["repo"])],
            "files": api.list_repo_files(params["repo"]),
        }
        """,
        repo=REPO,
    )
    assert seen["bad_token"]["status"] == 401
    assert seen["no_token"]["status"] == 401
    assert seen["whoami_bad"]["status"] == 401
    assert seen["whoami"] == "zoo"
    assert seen["unchanged"] is True
    assert "intruder.txt" not in seen["files"]


# --------------------------------------------------------------------------------------------
# Downloads at the HTTP level, resumption and persistence
# --------------------------------------------------------------------------------------------


def http_get(url: str, headers: dict[str, str] | None = None, method: str = "GET"):
    """(status, headers, body) of a request, without raising on error statuses."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_resolve_headers_and_ranges(hub: Hub, published: Published) -> None:
    weights = published.v2["weights.bin"]
    url = f"{hub.url}/{REPO}/resolve/main/weights.bin"

    status, headers, _ = http_get(url, method="HEAD")
    assert status == 200
    assert headers["X-Repo-Commit"] == published.second
    assert headers["ETag"] == f'"{sha256(weights)}"'
    assert headers["X-Linked-Etag"] == f'"{sha256(weights)}"'
    assert headers["X-Linked-Size"] == str(len(weights))

    status, headers, body = http_get(url, {"Range": "bytes=100-199"})
    assert (status, body) == (206, weights[100:200])
    assert headers["Content-Range"] == f"bytes 100-199/{len(weights)}"
    status, _, body = http_get(url, {"Range": f"bytes={len(weights) - 10}-"})
    assert (status, body) == (206, weights[-10:])
    status, _, body = http_get(url, {"Range": "bytes=-5"})
    assert (status, body) == (206, weights[-5:])
    status, headers, _ = http_get(url, {"Range": f"bytes={len(weights)}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(weights)}"

    status, headers, _ = http_get(f"{hub.url}/{REPO}/resolve/main/nope.txt", method="HEAD")
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")
    assert headers["X-Repo-Commit"] == published.second


def test_interrupted_download_resumes_with_range(tmp_path: Path) -> None:
    """The server cuts the first download short; the client must finish it with a Range GET.

    The client only keeps what it received in whole 10 MiB chunks (its DOWNLOAD_CHUNK_SIZE): a
    cut before 10 MiB makes it start over without a Range. Hence a 12 MiB file cut at 11 MiB.
    """
    data = random.Random(1).randbytes(12 * 1024 * 1024)
    with HubServer(tmp_path / "root", interrupt_downloads_after=11 * 1024 * 1024) as server:
        path = run_client(
            server.url,
            tmp_path / "hf_home",
            """
            api.create_repo("zoo/resume")
            api.upload_file(
                path_or_fileobj=params["file"], path_in_repo="big.bin", repo_id="zoo/resume"
            )
            result = hf_hub_download("zoo/resume", "big.bin")
            """,
            token=None,  # a server without tokens accepts anyone
            file=str(write_tree(tmp_path / "src", {"big.bin": data}) / "big.bin"),
        )
        downloads = [(m, s) for m, p, s in server.requests if p.endswith("/resolve/main/big.bin")]
    assert Path(path).read_bytes() == data
    assert ("GET", 200) in downloads  # the interrupted attempt
    assert ("GET", 206) in downloads  # the resumption


def test_repositories_persist_across_restarts(hub: Hub, published: Published) -> None:
    # A second server over the same folder sees what the first one stored.
    with HubServer(hub.root) as server:
        status, _, body = http_get(f"{server.url}/api/models/{REPO}")
    assert status == 200
    assert json.loads(body)["sha"] == published.second
