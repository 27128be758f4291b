"""A small Hugging Face Hub-protocol server for tests.

It speaks enough of the Hub's HTTP protocol that the *real* ``huggingface_hub`` client (written
against 2.4.0) can create repositories, push commits through Git LFS and download files from
``http://127.0.0.1:<port>``. Nothing is mocked on the client side: point ``HF_ENDPOINT`` at the
server and call the public client API.

Client configuration. ``huggingface_hub`` reads these environment variables when it is *imported*,
so set them before the import (in practice: in the environment of a subprocess)::

    HF_ENDPOINT=http://127.0.0.1:<port>   # this server
    HF_HOME=<tmp dir>                     # keeps the cache and any token file out of ~/.cache
    HF_HUB_DISABLE_XET=1                  # uploads must use Git LFS, this server has no Xet storage

Running it::

    python tests/hubserver.py --root DIR --port 0 --port-file FILE [--token T ...]
    python -m tests.hubserver --port 8765          # a throwaway Hub, to try zoo by hand

or in-process, ``url = HubServer(root).start()`` ... ``server.stop()``, or from a pytest fixture
with :func:`start_server_subprocess`.

Covered protocol (``{type}`` is ``models``, ``datasets`` or ``spaces``; ``{rev}`` is a branch,
a tag, ``refs/heads/<b>``, ``refs/tags/<t>`` or a full 40-hex commit sha, URL-encoded by the
client, e.g. ``refs%2Fpr%2F1``; downloads use ``/{repo}`` for models and ``/{type}/{repo}``
otherwise):

- ``GET  /api/whoami-v2``: the user behind the bearer token.
- ``POST /api/repos/create`` (409 if it exists; ``private`` or ``visibility`` honoured) and
  ``DELETE /api/repos/delete``.
- ``POST /api/validate-yaml``: accepts any model card (no YAML parser in the stdlib).
- ``GET  /api/{type}/{repo}`` and ``/api/{type}/{repo}/revision/{rev}``: ``sha``, ``private``,
  ``siblings`` (always with ``size``, ``blobId`` and, for LFS files, ``lfs.sha256``).
- ``GET  /api/models``: the model listing, with the Hub's query parameters ``filter``
  (repeatable; every value must be one of the model's tags), ``search`` (a substring of the id,
  any case), ``author``, ``sort`` (``downloads``, ``likes``, ``lastModified``, ``createdAt``,
  ``trendingScore``), ``direction`` (``-1``, the default, for largest first; ``1``), ``limit``,
  ``expand`` (repeatable: only those fields, plus ``id``), ``full`` and ``cardData``. A model's
  tags come from the YAML metadata of the ``README.md`` on its main branch, as the Hub derives
  them: its ``library_name``, its ``tags`` and ``license:<license>``. Private models are listed
  only to their owner. ``downloads`` and ``likes`` are 0 unless the repository's ``repo.json``
  sets them (tests write them there).
- ``GET  /api/{type}/{repo}/tree/{rev}[/{path}]`` (``?recursive=true``) and
  ``POST /api/{type}/{repo}/paths-info/{rev}``.
- ``GET  /api/{type}/{repo}/commits/{rev}`` (newest first, one page) and ``/refs``.
- ``POST|DELETE /api/{type}/{repo}/branch/{name}``, ``POST /api/{type}/{repo}/tag/{rev}``,
  ``DELETE /api/{type}/{repo}/tag/{name}``.
- ``POST /api/{type}/{repo}/preupload/{rev}``: upload mode per file ("lfs" for binary files, files
  of 10 MiB or more and paths matching a ``filter=lfs`` line of ``.gitattributes``) and the oid of
  the file already at that path, which lets the client skip unchanged files.
- ``POST /{repo}.git/info/lfs/objects/batch`` (operation "upload", basic transfer): an upload href
  for each object the repo lacks; ``PUT`` the raw bytes there (size and sha256 are checked). The
  href carries a one-time ticket instead of needing auth, like a presigned S3 URL.
- ``POST /api/{type}/{repo}/commit/{rev}``: NDJSON ``header`` (``parentCommit`` checked, 412 on
  mismatch), ``file`` (base64), ``lfsFile`` (by sha256 oid), ``deletedFile``, ``deletedFolder``.
  Commits go to branches only; pull requests (``create_pr``) are refused.
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` (git blob oid, or the
  sha256 for LFS files), ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, and single ``Range``
  requests (``bytes=N-``, ``bytes=N-M``, ``bytes=-N``) answered with 206 or 416.

Errors use the headers the client turns into exceptions: 404 with ``X-Error-Code`` set to
``RepoNotFound``, ``RevisionNotFound`` or ``EntryNotFound`` (the last one with ``X-Repo-Commit``),
and ``X-Error-Message`` plus a JSON ``{"error": ...}`` body.

Authentication is off unless tokens are configured (``--token``, ``HubServer(tokens=...)``). Then
a request with an unknown bearer token gets 401 "Invalid credentials in Authorization header"
(on any route), every write needs a valid token (401 otherwise) and may only go to the user's
own namespace (403 otherwise), and reading a private repository without a token gets 401 with
``X-Error-Code: RepoNotFound`` like the real Hub. Without tokens every request is accepted as
the configured user and ``private`` is only reported, not enforced.

Hostile answers, for tests of what a client does with a misbehaving server: a repository folder
may hold ``faults.json`` (written by the test, re-read on every request), a JSON object with any of

- ``"info"``: fields that replace those of the model info answer (``"sha"``, ``"siblings"``...);
  ``"info_status"`` and ``"info_raw"`` (text) replace the whole answer instead;
- ``"listing"``: fields that replace those of the repository's entry in ``GET /api/models``
  (after filtering and sorting), e.g. ``{"downloads": "many"}`` or a hostile ``"id"``;
- ``"resolve"``: ``{path or "*": {...}}`` for downloads of that file: ``"status"`` (answer with
  that status and ``"body"``), ``"headers"`` (set or, with null, remove answer headers, e.g. a
  lying ``X-Repo-Commit``), ``"body"`` (text sent instead of the file; ``Content-Length``
  follows unless ``"headers"`` sets it), ``"trickle": [BYTES, SECONDS]`` (send BYTES, then
  sleep SECONDS, until done);
- ``"quote_auth"``: a list of route handler names (``repo_info``, ``preupload``, ``commit``,
  ``resolve``, ...) that answer 400 with an error message quoting the request's
  ``Authorization`` header, as a careless server might (tests of token redaction);
- ``"upload"``: ``{"status": N, "message": TEXT}`` answers LFS uploads (the ``PUT`` of an
  object's bytes) with that error.

The whole listing can be hostile too: ``<root>/faults.json`` may hold ``"listing"``, an object
with ``"status"`` and ``"body"`` (text sent instead of the listing), ``"repeat"`` (send the body
that many times) and ``"headers"`` (set or, with null, remove answer headers: a missing
``Content-Length`` sends the body until the connection closes; a ``Link`` header sends the
client on to a "next page").

Not covered: Xet storage (``xet-*-token`` routes answer 501), pull requests and discussions, LFS
multipart uploads and the LFS "download" operation, gated repos, pagination (every listing fits in
one page), ``.gitignore`` handling in preupload, spaces runtime and every other part of the API.

Storage layout under ``--root``: one folder per repository,
``<root>/<type>s/<namespace>/<name>/`` holding ``repo.json`` (visibility, branches, tags),
``commits/<sha>.json`` (one immutable manifest per commit: parent, message, and each path's
sha256, size and LFS flag) and ``blobs/<sha256>`` (file contents, content-addressed). Commit shas
are the sha1 of the manifest, so they look like git's but are not git objects. The folder survives
restarts; pending LFS upload tickets do not.
"""

from __future__ import annotations

import argparse
import base64
import collections
import fnmatch
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# What the model listing sorts by, and the fields it sends when no ``expand`` or ``full`` asks.
LISTING_SORTS = ("downloads", "likes", "lastModified", "createdAt", "trendingScore")
LISTING_DEFAULT_FIELDS = (
    "_id",
    "id",
    "likes",
    "trendingScore",
    "private",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
    "modelId",
)
MAX_LISTING_LIMIT = 1000

DEFAULT_BRANCH = "main"
DEFAULT_USER = "zoo"

# The Hub refuses regular (non-LFS) files from 10 MB on; mirror that so big text files go LFS too.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

# URL plural -> the client's singular repo type.
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}

# What a new repository's first commit contains, like the Hub's "initial commit".
INITIAL_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.bin",
        "*.ckpt",
        "*.gz",
        "*.h5",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.onnx",
        "*.pickle",
        "*.pkl",
        "*.pt",
        "*.pth",
        "*.safetensors",
        "*.tar",
        "*.zip",
    )
).encode()

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA1_RE = re.compile(r"[0-9a-f]{40}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
_CHUNK = 1 << 16


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class HubError(Exception):
    """An error answer: HTTP status, message, and the ``X-Error-Code`` the client dispatches on."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body or {}  # extra JSON fields next to "error"


def repo_not_found(repo_id: str, status: int = 404) -> HubError:
    return HubError(status, f"Repository not found: {repo_id}", "RepoNotFound")


def now_iso() -> str:
    """UTC time in the Hub's format, which the client's ``parse_datetime`` expects."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def git_blob_oid(data: bytes) -> str:
    """The sha1 ``git hash-object`` gives; the client compares it for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer file git stores in place of an LFS file; its git oid is the file's blob id."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def looks_binary(sample: bytes) -> bool:
    """The Hub's rule of thumb: NUL bytes or invalid UTF-8 in the first bytes mean binary."""
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as err:
        # A multi-byte character cut off at the end of the sample is still text.
        return err.start < len(sample) - 3
    return False


def lfs_patterns(gitattributes: bytes) -> list[str]:
    """The patterns of the ``filter=lfs`` lines of a ``.gitattributes`` file."""
    patterns = []
    for line in gitattributes.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) > 1 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def matches_any(path: str, patterns: list[str]) -> bool:
    """Approximate gitattributes matching: patterns without a slash match the basename."""
    basename = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(path if "/" in p else basename, p.lstrip("/")) for p in patterns)


def check_path_in_repo(path: str) -> str:
    """Refuse paths that could not be a file of a repository (they end up in JSON, not on disk)."""
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def parse_range(header: str, size: int) -> tuple[int, int]:
    """Turn a single ``Range`` header into ``[start, end)``; 416 if it cannot be satisfied."""
    unsatisfiable = HubError(
        416, "Range Not Satisfiable", headers={"Content-Range": f"bytes */{size}"}
    )
    match = _RANGE_RE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        raise unsatisfiable
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = size if last == "" else min(int(last) + 1, size)
    if start >= end:
        raise unsatisfiable
    return start, end


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------


class Repo:
    """One repository on disk (see the module docstring for the layout).

    Commits and blobs are immutable once written; ``repo.json`` is rewritten atomically. Callers
    serialise writes with :attr:`HubStore.lock`.
    """

    def __init__(self, path: Path, repo_type: str, repo_id: str) -> None:
        self.path = path
        self.repo_type = repo_type
        self.repo_id = repo_id

    # -- metadata and refs ---------------------------------------------------------------------

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "repo.json").read_text())

    def save_meta(self, meta: dict[str, Any]) -> None:
        write_atomic(self.path / "repo.json", json.dumps(meta, indent=1).encode())

    @property
    def private(self) -> bool:
        return bool(self.meta["private"])

    @property
    def faults(self) -> dict[str, Any]:
        """The hostile behaviour a test asked for (see the module docstring); usually none."""
        path = self.path / "faults.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def resolve(self, revision: str) -> str | None:
        """Commit sha for a branch, tag, full ref name or commit sha; None if unknown."""
        meta = self.meta
        if revision.startswith("refs/heads/"):
            return meta["branches"].get(revision.removeprefix("refs/heads/"))
        if revision.startswith("refs/tags/"):
            return meta["tags"].get(revision.removeprefix("refs/tags/"))
        if revision in meta["branches"]:
            return meta["branches"][revision]
        if revision in meta["tags"]:
            return meta["tags"][revision]
        if _SHA1_RE.fullmatch(revision) and (self.path / "commits" / f"{revision}.json").exists():
            return revision
        return None

    # -- commits -------------------------------------------------------------------------------

    def commit(self, sha: str) -> dict[str, Any]:
        return json.loads((self.path / "commits" / f"{sha}.json").read_text())

    def history(self, sha: str | None) -> Iterator[dict[str, Any]]:
        """The commit and its ancestors, newest first."""
        while sha is not None:
            commit = self.commit(sha)
            yield commit
            sha = commit["parent"]

    def add_commit(
        self,
        branch: str,
        files: dict[str, dict[str, Any]],
        title: str,
        message: str,
        author: str,
    ) -> str:
        """Write a commit whose tree is ``files`` on top of ``branch`` and move the branch to it."""
        meta = self.meta
        commit = {
            "parent": meta["branches"].get(branch),
            "title": title,
            "message": message,
            "author": author,
            "date": now_iso(),
            "files": dict(sorted(files.items())),
        }
        sha = hashlib.sha1(json.dumps(commit, sort_keys=True).encode()).hexdigest()
        write_atomic(
            self.path / "commits" / f"{sha}.json", json.dumps({"id": sha, **commit}).encode()
        )
        meta["branches"][branch] = sha
        meta["lastModified"] = commit["date"]
        self.save_meta(meta)
        return sha

    # -- blobs ---------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.path / "blobs" / sha256

    def has_blob(self, sha256: str) -> bool:
        return _SHA256_RE.fullmatch(sha256) is not None and self.blob_path(sha256).is_file()

    def store_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha256):
            write_atomic(self.blob_path(sha256), data)
        return sha256

    def ingest_blob(self, chunks: Iterator[bytes], sha256: str, size: int) -> None:
        """Stream an LFS upload to disk; keep it only if its size and sha256 are as promised."""
        tmp = self.path / "blobs" / f".upload-{secrets.token_hex(8)}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        digest, received = hashlib.sha256(), 0
        try:
            with tmp.open("wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    received += len(chunk)
                    out.write(chunk)
            if received != size or digest.hexdigest() != sha256:
                raise HubError(
                    400,
                    f"Uploaded object does not match: expected {size} bytes with sha256 {sha256},"
                    f" got {received} bytes with sha256 {digest.hexdigest()}",
                )
            os.replace(tmp, self.blob_path(sha256))
        finally:
            tmp.unlink(missing_ok=True)

    def regular_file(self, data: bytes) -> dict[str, Any]:
        """Store ``data`` as a regular (non-LFS) file and return its manifest entry."""
        oid = git_blob_oid(data)
        return {"sha256": self.store_blob(data), "size": len(data), "lfs": False, "oid": oid}

    def lfs_file(self, sha256: str) -> dict[str, Any]:
        """The manifest entry of an LFS object already in the blob store."""
        size = self.blob_path(sha256).stat().st_size
        # Git keeps a pointer file in place of an LFS file: the Hub's blob id is the pointer's oid.
        oid = git_blob_oid(lfs_pointer(sha256, size))
        return {"sha256": sha256, "size": size, "lfs": True, "oid": oid}


class HubStore:
    """All repositories under one root folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # One lock for every write: commits, ref updates, repo creation and deletion. Tests make
        # few writes, so simplicity beats concurrency here.
        self.lock = threading.RLock()

    def _path(self, repo_type: str, repo_id: str) -> Path | None:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(_NAME_RE.fullmatch(p) and ".." not in p for p in parts):
            return None
        return self.root / f"{repo_type}s" / parts[0] / parts[1]

    def repos(self, repo_type: str) -> list[Repo]:
        """Every repository of one type, sorted by id."""
        found = []
        for meta in sorted((self.root / f"{repo_type}s").glob("*/*/repo.json")):
            repo_id = f"{meta.parent.parent.name}/{meta.parent.name}"
            found.append(Repo(meta.parent, repo_type, repo_id))
        return found

    @property
    def faults(self) -> dict[str, Any]:
        """Server-wide hostile behaviour (see the module docstring); usually none."""
        path = self.root / "faults.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        path = self._path(repo_type, repo_id)
        if path is None or not (path / "repo.json").is_file():
            return None
        return Repo(path, repo_type, repo_id)

    def create(self, repo_type: str, repo_id: str, private: bool, author: str) -> Repo:
        """Create a repository with its initial commit; :class:`FileExistsError` if it exists."""
        path = self._path(repo_type, repo_id)
        if path is None or repo_id.endswith(".git"):
            raise HubError(400, f"Invalid repository id: {repo_id!r}")
        with self.lock:
            if self.get(repo_type, repo_id) is not None:
                raise FileExistsError(repo_id)
            repo = Repo(path, repo_type, repo_id)
            created = now_iso()
            meta = {"private": private, "createdAt": created, "branches": {}, "tags": {}}
            repo.save_meta(meta)
            gitattributes = repo.regular_file(INITIAL_GITATTRIBUTES)
            repo.add_commit(
                DEFAULT_BRANCH, {".gitattributes": gitattributes}, "initial commit", "", author
            )
            return repo

    def delete(self, repo: Repo) -> None:
        with self.lock:
            shutil.rmtree(repo.path)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

_TYPE = r"(?P<plural>models|datasets|spaces)"
_PREFIX = r"(?:(?P<plural>datasets|spaces)/)?"  # URL prefix of non-model repos outside /api
_REPO = r"(?P<namespace>[^/]+)/(?P<name>[^/]+)"
_REV = r"(?P<rev>[^/]+)"  # the client quotes revisions with safe="", so "/" arrives as %2F

# (method, pattern matched against the still-encoded path, handler method name)
_ROUTES = [
    ("GET", r"/", "index"),
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("DELETE", r"/api/repos/delete", "delete_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("GET", r"/api/models", "list_models"),
    ("GET", rf"/api/{_TYPE}/{_REPO}", "repo_info"),
    ("GET", rf"/api/{_TYPE}/{_REPO}/revision/{_REV}", "repo_info"),
    ("GET", rf"/api/{_TYPE}/{_REPO}/tree/{_REV}(?:/(?P<path>.+))?", "tree"),
    ("POST", rf"/api/{_TYPE}/{_REPO}/paths-info/{_REV}", "paths_info"),
    ("GET", rf"/api/{_TYPE}/{_REPO}/commits/{_REV}", "commits"),
    ("GET", rf"/api/{_TYPE}/{_REPO}/refs", "refs"),
    ("POST", rf"/api/{_TYPE}/{_REPO}/branch/{_REV}", "create_branch"),
    ("DELETE", rf"/api/{_TYPE}/{_REPO}/branch/{_REV}", "delete_branch"),
    ("POST", rf"/api/{_TYPE}/{_REPO}/tag/{_REV}", "create_tag"),
    ("DELETE", rf"/api/{_TYPE}/{_REPO}/tag/{_REV}", "delete_tag"),
    ("POST", rf"/api/{_TYPE}/{_REPO}/preupload/{_REV}", "preupload"),
    ("POST", rf"/api/{_TYPE}/{_REPO}/commit/{_REV}", "commit"),
    ("GET", rf"/api/{_TYPE}/{_REPO}/xet-(?:read|write)-token/{_REV}", "xet_token"),
    ("POST", rf"/{_PREFIX}{_REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
    ("PUT", r"/lfs-upload/(?P<ticket>[0-9a-f]+)", "lfs_upload"),
    ("GET", rf"/{_PREFIX}{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve"),
    ("HEAD", rf"/{_PREFIX}{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve"),
]
ROUTES = [(method, re.compile(pattern), handler) for method, pattern, handler in _ROUTES]


class _HTTPServer(ThreadingHTTPServer):
    """The socket server; ``hub`` gives request handlers access to the shared state."""

    daemon_threads = True  # idle keep-alive connections must not keep stop() waiting
    hub: HubServer


class HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one request to a method below. Each handler raises :class:`HubError` to refuse."""

    # HTTP/1.1 keep-alive: the client pools connections, so every answer has a Content-Length
    # and every request body is read to its end (see ``_drain_body``).
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 60  # drop idle keep-alive connections eventually

    # -- plumbing ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    @property
    def store(self) -> HubStore:
        return self.server.hub.store

    @property
    def base_url(self) -> str:
        """The URL the client used to reach us, for hrefs it must follow (LFS upload, commit)."""
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        self._body_pending = chunked or int(self.headers.get("Content-Length") or 0) > 0
        try:
            for route_method, pattern, handler in ROUTES:
                match = pattern.fullmatch(url.path) if route_method == method else None
                if match:
                    self.handler_name = handler
                    # Decode each captured segment only now, so an encoded "/" stays inside it.
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    getattr(self, handler)(**params)
                    break
            else:
                raise HubError(404, f"No route for {method} {url.path}")
        except HubError as err:
            self._send_error(err)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as err:  # a bug here should fail the client call, not hang it
            traceback.print_exc()
            self._send_error(HubError(500, f"Internal error: {err!r}"))
        finally:
            self._drain_body()

    def _drain_body(self) -> None:
        """Read whatever request body a handler left unread (say, after refusing the request).

        Unread bytes would be parsed as the next request on this keep-alive connection, and
        closing a socket with unread input makes TCP reset it, which can destroy the answer.
        """
        if not self._body_pending:
            return
        try:
            for _ in self._iter_body():
                pass
        except (OSError, ValueError):
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.hub.requests.append((self.command, self.path, int(code)))
        if self.hub.verbose:
            super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        if self.hub.verbose:
            super().log_message(format, *args)

    # -- request bodies ------------------------------------------------------------------------

    def _iter_body(self) -> Iterator[bytes]:
        """The request body in chunks, whether sent with Content-Length or chunked encoding."""
        self._body_pending = False
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield from self._read_exactly(size)
                self.rfile.readline()  # the CRLF closing each chunk
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0))

    def _read_exactly(self, size: int) -> Iterator[bytes]:
        while size > 0:
            data = self.rfile.read(min(size, _CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            size -= len(data)
            yield data

    def _read_json(self) -> Any:
        body = b"".join(self._iter_body())
        try:
            return json.loads(body) if body else {}
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err

    # -- responses -----------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def _send_error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message.replace("\n", " "), **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send_json({"error": err.message, **err.body}, err.status, headers)

    # -- authentication and lookup -------------------------------------------------------------

    def _user(self) -> str | None:
        """The user behind the bearer token; None if anonymous. 401 for an unknown token."""
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        if not self.hub.tokens:
            return self.hub.user  # authentication off: everyone is the configured user
        if token is None:
            return None
        if token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.user

    def _writer(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated (Authorization: Bearer <token>)")
        return user

    def _repo(self, plural: str | None, namespace: str, name: str, write: bool = False) -> Repo:
        """Look a repository up, applying the access rules of the module docstring.

        ``plural`` is the repo type as URLs spell it ("models", ...; None for the bare
        ``/{repo}/resolve`` form of models).
        """
        user = self._writer() if write else self._user()
        repo_id = f"{namespace}/{name}"
        repo = self.store.get(REPO_TYPES[plural or "models"], repo_id)
        if repo is None:
            raise repo_not_found(repo_id)
        if write:
            self._check_namespace(user, namespace)
        if user is None and repo.private:
            # The Hub answers 401 + RepoNotFound so as not to reveal that a private repo exists.
            raise repo_not_found(repo_id, status=401)
        if getattr(self, "handler_name", None) in repo.faults.get("quote_auth", ()):
            auth = self.headers.get("Authorization", "")
            raise HubError(400, f"Cannot handle the request (Authorization={auth})")
        return repo

    def _check_namespace(self, user: str, namespace: str) -> None:
        """With authentication on, a user writes only under their own name (403 otherwise)."""
        if self.hub.tokens and namespace != user:
            raise HubError(403, f"You don't have the rights to write to the namespace {namespace}")

    @staticmethod
    def _commit_sha(repo: Repo, rev: str) -> str:
        sha = repo.resolve(rev)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return sha

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.base_url}/{prefix}{repo_id}"

    # -- misc routes ---------------------------------------------------------------------------

    def index(self) -> None:
        """Liveness probe for :func:`start_server_subprocess` (not a Hub route)."""
        self._send_json({"server": "hubserver", "root": str(self.store.root)})

    def whoami(self) -> None:
        user = self._user()  # 401 for an unknown token
        if user is None or "Authorization" not in self.headers:  # whoami always needs a token
            raise HubError(401, "Invalid credentials in Authorization header")
        self._send_json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": None,
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "test", "role": "write"},
                },
            }
        )

    def validate_yaml(self) -> None:
        self._read_json()
        self._send_json({"errors": [], "warnings": []})

    def xet_token(self, **_: str) -> None:
        raise HubError(501, "This test server has no Xet storage: set HF_HUB_DISABLE_XET=1")

    # -- repositories --------------------------------------------------------------------------

    def create_repo(self) -> None:
        user = self._writer()
        body = self._read_json()
        repo_type = body.get("type") or "model"
        if repo_type not in REPO_TYPES.values():
            raise HubError(400, f"Unsupported repo type: {repo_type}")
        namespace = body.get("organization") or user
        self._check_namespace(user, namespace)
        repo_id = f"{namespace}/{body.get('name')}"
        private = bool(body.get("private")) or body.get("visibility") == "private"
        try:
            self.store.create(repo_type, repo_id, private, user)
        except FileExistsError:
            # create_repo(exist_ok=True) reads the url from this 409 answer.
            url = self._repo_url(repo_type, repo_id)
            message = f"You already created this {repo_type} repo"
            raise HubError(409, message, body={"url": url}) from None
        self._send_json({"url": self._repo_url(repo_type, repo_id), "name": repo_id, "id": repo_id})

    def delete_repo(self) -> None:
        user = self._writer()
        body = self._read_json()
        repo_id = f"{body.get('organization') or user}/{body.get('name')}"
        repo = self.store.get(body.get("type") or "model", repo_id)
        if repo is None:
            raise repo_not_found(repo_id)
        self.store.delete(repo)
        self._send(200)

    # -- the model listing ----------------------------------------------------------------------

    def list_models(self) -> None:
        hostile = self.store.faults.get("listing")
        if hostile is not None:
            self._send_raw(hostile)
            return
        query = self.query
        user = self._user()
        sort = query.get("sort", [None])[0]
        direction = query.get("direction", ["-1"])[0]
        limit_text = query.get("limit", [str(MAX_LISTING_LIMIT)])[0]
        if sort is not None and sort not in LISTING_SORTS:
            raise HubError(400, f"Invalid sort: {sort!r}")
        if direction not in ("-1", "1"):
            raise HubError(400, f"Invalid direction: {direction!r}")
        if not limit_text.isdigit():
            raise HubError(400, f"Invalid limit: {limit_text!r}")
        filters = query.get("filter", [])
        search = query.get("search", [""])[0].lower()
        author = query.get("author", [None])[0]
        entries = []
        for repo in self.store.repos("model"):
            namespace = repo.repo_id.split("/")[0]
            if repo.private and user != namespace:
                continue
            if author is not None and namespace.lower() != author.lower():
                continue
            if search not in repo.repo_id.lower():
                continue
            entry = self._listing_entry(repo)
            if all(f in entry["tags"] for f in filters):
                entries.append(entry)
        if sort is not None:
            entries.sort(
                key=lambda e: (e.get(sort) is not None, e.get(sort)), reverse=direction == "-1"
            )
        entries = entries[: min(int(limit_text), MAX_LISTING_LIMIT)]
        answer = []
        for entry in entries:
            faults = entry.pop("_faults")
            answer.append({**self._listing_fields(entry), **faults})
        self._send_json(answer)

    def _listing_fields(self, entry: dict[str, Any]) -> dict[str, Any]:
        """What the Hub sends of one listed model, given ``expand``, ``full`` and ``cardData``."""
        query = self.query
        expand = query.get("expand", []) + query.get("expand[]", [])
        flag = {k: query.get(k, [""])[0].lower() in ("1", "true") for k in ("full", "cardData")}
        if expand:
            names = {"_id", "id", *expand}
        elif flag["full"]:
            names = set(entry) - {"cardData", "_faults"}
        else:
            names = set(LISTING_DEFAULT_FIELDS)
        if flag["cardData"]:
            names.add("cardData")
        return {k: v for k, v in entry.items() if k in names}

    def _listing_entry(self, repo: Repo) -> dict[str, Any]:
        """Everything the listing may say about a model; ``_faults`` replaces fields when sent."""
        meta = repo.meta
        sha = meta["branches"].get(DEFAULT_BRANCH)
        commit = repo.commit(sha) if sha else {"files": {}, "date": meta["createdAt"]}
        card = self._card_metadata(repo, commit["files"].get("README.md"))
        tags: list[str] = []
        library = card.get("library_name")
        card_tags = card.get("tags") if isinstance(card.get("tags"), list) else []
        license_ = card.get("license")
        for tag in [library, *card_tags, f"license:{license_}" if license_ else None]:
            if isinstance(tag, str) and tag not in tags:
                tags.append(tag)
        return {
            **self._model_fields(repo, sha, commit["date"]),
            "modelId": repo.repo_id,
            "trendingScore": 0,
            "tags": tags,
            "library_name": library if isinstance(library, str) else None,
            "pipeline_tag": card.get("pipeline_tag"),
            "siblings": [{"rfilename": path} for path in commit["files"]],
            "cardData": card,
            "_faults": repo.faults.get("listing", {}),
        }

    @staticmethod
    def _model_fields(repo: Repo, sha: str | None, date: str) -> dict[str, Any]:
        """The fields the model info and the listing share."""
        meta = repo.meta
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": sha,
            "lastModified": date,
            "createdAt": meta["createdAt"],
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "downloads": meta.get("downloads", 0),
            "likes": meta.get("likes", 0),
        }

    @staticmethod
    def _card_metadata(repo: Repo, entry: dict[str, Any] | None) -> dict[str, Any]:
        """The YAML metadata block at the top of a README.md ({} if none or unreadable)."""
        if entry is None:
            return {}
        import yaml  # PyYAML comes with huggingface_hub

        text = repo.blob_path(entry["sha256"]).read_text(encoding="utf-8", errors="replace")
        match = re.match(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", text, re.DOTALL)
        if match is None:
            return {}
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            return {}
        return data if isinstance(data, dict) else {}

    def _send_raw(self, fault: dict[str, Any]) -> None:
        """Answer the way a server-wide fault says (see the module docstring)."""
        body = str(fault.get("body", "")).encode("utf-8", "surrogateescape")
        body *= int(fault.get("repeat", 1))
        headers: dict[str, str | None] = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        headers.update(fault.get("headers", {}))
        self.send_response(int(fault.get("status", 200)))
        for key, value in headers.items():
            if value is not None:
                self.send_header(key, str(value))
        self.end_headers()
        self.close_connection = True  # the body may not match its Content-Length
        for offset in range(0, len(body), _CHUNK):
            self.wfile.write(body[offset : offset + _CHUNK])

    def repo_info(self, plural: str, namespace: str, name: str, rev: str = DEFAULT_BRANCH) -> None:
        repo = self._repo(plural, namespace, name)
        faults = repo.faults
        if "info_raw" in faults or "info_status" in faults:
            body = str(faults.get("info_raw", "")).encode("utf-8", "surrogateescape")
            self._send(int(faults.get("info_status", 200)), body)
            return
        sha = self._commit_sha(repo, rev)
        commit = repo.commit(sha)
        siblings = []
        for path, entry in commit["files"].items():
            sibling = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
            if entry["lfs"]:
                pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
                sibling["lfs"] = {
                    "size": entry["size"],
                    "sha256": entry["sha256"],
                    "pointerSize": pointer_size,
                }
            siblings.append(sibling)
        self._send_json(
            {
                **self._model_fields(repo, sha, commit["date"]),
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(e["size"] for e in commit["files"].values()),
                **faults.get("info", {}),
            }
        )

    # -- trees ---------------------------------------------------------------------------------

    @staticmethod
    def _tree_entries(files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Every file and folder of a commit, keyed by path, as the tree API describes them."""
        entries: dict[str, dict[str, Any]] = {}
        folders: dict[str, list[str]] = collections.defaultdict(list)
        for path, entry in files.items():
            item = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
            if entry["lfs"]:
                pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
                item["lfs"] = {
                    "oid": entry["sha256"],
                    "size": entry["size"],
                    "pointerSize": pointer_size,
                }
            entries[path] = item
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folders["/".join(parts[:depth])].append(f"{path}:{entry['oid']}")
        for folder, members in folders.items():
            # Not git's tree hash, but stable and content-dependent, which is what callers use.
            oid = hashlib.sha1("\n".join(sorted(members)).encode()).hexdigest()
            entries[folder] = {"type": "directory", "oid": oid, "size": 0, "path": folder}
        return entries

    def tree(self, plural: str, namespace: str, name: str, rev: str, path: str = "") -> None:
        repo = self._repo(plural, namespace, name)
        sha = self._commit_sha(repo, rev)
        entries = self._tree_entries(repo.commit(sha)["files"])
        path = path.strip("/")
        if path and entries.get(path, {}).get("type") != "directory":
            raise HubError(
                404, f"{path} is not a folder at {sha}", "EntryNotFound", {"X-Repo-Commit": sha}
            )
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{path}/" if path else ""
        listing = [
            entry
            for key, entry in sorted(entries.items())
            if key.startswith(prefix) and (recursive or "/" not in key[len(prefix) :])
        ]
        self._send_json(listing)

    def paths_info(self, plural: str, namespace: str, name: str, rev: str) -> None:
        repo = self._repo(plural, namespace, name)
        sha = self._commit_sha(repo, rev)
        # The client posts a form (paths=a&paths=b&expand=false); accept JSON too.
        body = b"".join(self._iter_body())
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body or b"{}").get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        entries = self._tree_entries(repo.commit(sha)["files"])
        self._send_json([entries[p] for p in paths if p in entries])

    # -- history and refs ----------------------------------------------------------------------

    def commits(self, plural: str, namespace: str, name: str, rev: str) -> None:
        repo = self._repo(plural, namespace, name)
        sha = self._commit_sha(repo, rev)
        self._send_json(
            [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "message": c["message"],
                    "authors": [{"user": c["author"], "avatar": None}],
                    "date": c["date"],
                }
                for c in repo.history(sha)
            ]
        )

    def refs(self, plural: str, namespace: str, name: str) -> None:
        meta = self._repo(plural, namespace, name).meta

        def refs_of(kind: str, prefix: str) -> list[dict[str, str]]:
            return [
                {"name": n, "ref": f"{prefix}{n}", "targetCommit": sha}
                for n, sha in sorted(meta[kind].items())
            ]

        self._send_json(
            {
                "branches": refs_of("branches", "refs/heads/"),
                "tags": refs_of("tags", "refs/tags/"),
                "converts": [],
                "pullRequests": [],
            }
        )

    def _create_ref(self, repo: Repo, kind: str, ref: str, target: str) -> None:
        """Point a new branch or tag (``kind``: "branches" or "tags") at ``target``."""
        if not ref or ref.startswith("refs/") or _SHA1_RE.fullmatch(ref):
            raise HubError(400, f"Invalid name for a new ref: {ref!r}")
        with self.store.lock:
            sha = self._commit_sha(repo, target)
            meta = repo.meta
            if ref in meta[kind]:
                raise HubError(409, f"Reference already exists: {ref}")
            meta[kind][ref] = sha
            repo.save_meta(meta)
        self._send(200)

    def _delete_ref(self, repo: Repo, kind: str, ref: str) -> None:
        with self.store.lock:
            meta = repo.meta
            if ref not in meta[kind]:
                raise HubError(404, f"Invalid rev id: {ref}", "RevisionNotFound")
            del meta[kind][ref]
            repo.save_meta(meta)
        self._send(200)

    def create_branch(self, plural: str, namespace: str, name: str, rev: str) -> None:
        repo = self._repo(plural, namespace, name, write=True)
        start = self._read_json().get("startingPoint") or DEFAULT_BRANCH
        self._create_ref(repo, "branches", rev, start)

    def delete_branch(self, plural: str, namespace: str, name: str, rev: str) -> None:
        repo = self._repo(plural, namespace, name, write=True)
        if rev == DEFAULT_BRANCH:
            raise HubError(403, "Cannot delete the default branch")
        self._delete_ref(repo, "branches", rev)

    def create_tag(self, plural: str, namespace: str, name: str, rev: str) -> None:
        repo = self._repo(plural, namespace, name, write=True)
        self._create_ref(repo, "tags", str(self._read_json().get("tag", "")), rev)

    def delete_tag(self, plural: str, namespace: str, name: str, rev: str) -> None:
        self._delete_ref(self._repo(plural, namespace, name, write=True), "tags", rev)

    # -- uploads -------------------------------------------------------------------------------

    def _refuse_pull_requests(self) -> None:
        if self.query.get("create_pr", ["0"])[0] not in ("0", "false", ""):
            raise HubError(400, "This test server does not support pull requests (create_pr)")

    def preupload(self, plural: str, namespace: str, name: str, rev: str) -> None:
        repo = self._repo(plural, namespace, name, write=True)
        self._refuse_pull_requests()
        sha = self._commit_sha(repo, rev)
        files = repo.commit(sha)["files"]
        body = self._read_json()
        patterns = []
        if ".gitattributes" in files:
            patterns = lfs_patterns(repo.blob_path(files[".gitattributes"]["sha256"]).read_bytes())
        answers = []
        for item in body.get("files", []):
            path = check_path_in_repo(item["path"])
            sample = base64.b64decode(item.get("sample", ""))
            lfs = (
                item.get("size", 0) >= LFS_SIZE_THRESHOLD
                or matches_any(path, patterns)
                or looks_binary(sample)
            )
            answer = {
                "path": path,
                "uploadMode": "lfs" if lfs else "regular",
                "shouldIgnore": False,
            }
            existing = files.get(path)
            if existing is not None:
                # The client compares this to its own oid to skip unchanged files: the sha256 for
                # LFS files, the git blob oid for regular ones.
                answer["oid"] = existing["sha256"] if existing["lfs"] else existing["oid"]
            answers.append(answer)
        self._send_json({"files": answers, "commitOid": sha})

    def lfs_batch(self, namespace: str, name: str, plural: str | None = None) -> None:
        repo = self._repo(plural, namespace, name, write=True)
        body = self._read_json()
        if body.get("operation") != "upload":
            raise HubError(501, "Only the LFS 'upload' operation is supported")
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid", "")), obj.get("size")
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not _SHA256_RE.fullmatch(oid) or not isinstance(size, int) or size < 0:
                answer["error"] = {"code": 422, "message": "Invalid oid or size"}
            elif not repo.has_blob(oid):  # no "actions" tells the client the object is there
                ticket = secrets.token_hex(16)
                self.hub.upload_tickets[ticket] = (repo.repo_type, repo.repo_id, oid, size)
                href = f"{self.base_url}/lfs-upload/{ticket}"
                answer["actions"] = {"upload": {"href": href, "expires_in": 3600}}
            objects.append(answer)
        self._send_json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def lfs_upload(self, ticket: str) -> None:
        # The ticket stands in for auth: the client sends this PUT without its token, as it would
        # to a presigned storage URL.
        claim = self.hub.upload_tickets.pop(ticket, None)
        if claim is None:
            raise HubError(403, "Unknown or already used upload ticket")
        repo_type, repo_id, oid, size = claim
        repo = self.store.get(repo_type, repo_id)
        if repo is None:
            raise repo_not_found(repo_id)
        fault = repo.faults.get("upload")
        if fault is not None:
            raise HubError(
                int(fault.get("status", 500)), str(fault.get("message", "upload failed"))
            )
        repo.ingest_blob(self._iter_body(), oid, size)
        self._send(200)

    def commit(self, plural: str, namespace: str, name: str, rev: str) -> None:
        repo = self._repo(plural, namespace, name, write=True)
        user = self._writer()  # the commit's author
        self._refuse_pull_requests()
        try:
            lines = [json.loads(line) for line in b"".join(self._iter_body()).splitlines() if line]
        except ValueError as err:
            raise HubError(400, f"Invalid NDJSON commit payload: {err}") from err
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        branch = rev.removeprefix("refs/heads/")
        with self.store.lock:
            meta = repo.meta
            if branch not in meta["branches"]:
                if repo.resolve(rev) is not None:
                    raise HubError(400, f"Can only commit to a branch, not to {rev}")
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            head = meta["branches"][branch]
            parent = header.get("parentCommit")
            if parent is not None and parent != head:
                raise HubError(412, f"A commit has happened since {parent}: {rev} is at {head}")
            # Work on a copy: if any line is refused, the branch does not move (at worst, blobs
            # of the refused commit stay in the store, unreferenced).
            files = dict(repo.commit(head)["files"])
            for line in lines[1:]:
                self._apply_operation(repo, files, line.get("key"), line.get("value") or {}, head)
            sha = repo.add_commit(
                branch, files, header.get("summary") or "", header.get("description") or "", user
            )
        self._send_json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self._repo_url(repo.repo_type, repo.repo_id)}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    @staticmethod
    def _apply_operation(
        repo: Repo, files: dict[str, Any], key: str | None, value: dict[str, Any], head: str
    ) -> None:
        """Apply one NDJSON commit line to the tree ``files``, a path -> entry dict."""
        path = check_path_in_repo(str(value.get("path", "")).rstrip("/"))
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(400, f"Unsupported encoding for {path}: {value.get('encoding')}")
            files[path] = repo.regular_file(base64.b64decode(value["content"]))
        elif key == "lfsFile":
            oid = str(value.get("oid", ""))
            if not repo.has_blob(oid):
                raise HubError(422, f"LFS object {oid} for {path} was never uploaded")
            entry = repo.lfs_file(oid)
            if value.get("size") not in (None, entry["size"]):  # copies send no size
                raise HubError(
                    422, f"LFS object {oid} has {entry['size']} bytes, not {value['size']}"
                )
            files[path] = entry
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(
                    404,
                    f"A file with this name doesn't exist: {path}",
                    "EntryNotFound",
                    {"X-Repo-Commit": head},
                )
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(f"{path}/")]
            if not doomed:
                raise HubError(
                    404,
                    f"A folder with this name doesn't exist: {path}",
                    "EntryNotFound",
                    {"X-Repo-Commit": head},
                )
            for p in doomed:
                del files[p]
        else:
            raise HubError(400, f"Unsupported commit operation: {key!r}")

    # -- downloads -----------------------------------------------------------------------------

    def resolve(
        self,
        namespace: str,
        name: str,
        rev: str,
        path: str,
        plural: str | None = None,
    ) -> None:
        repo = self._repo(plural, namespace, name)
        sha = self._commit_sha(repo, rev)
        entry = repo.commit(sha)["files"].get(path)
        if entry is None:
            # X-Repo-Commit lets the client cache the file's absence for this commit.
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        fault = repo.faults.get("resolve", {})
        fault = fault.get(path, fault.get("*"))
        if fault is not None:
            self._send_hostile(repo, entry, sha, fault)
            return
        size = entry["size"]
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if entry["lfs"]:
            headers["ETag"] = f'"{entry["sha256"]}"'
            headers["X-Linked-Etag"] = f'"{entry["sha256"]}"'
            headers["X-Linked-Size"] = str(size)
        else:
            headers["ETag"] = f'"{entry["oid"]}"'

        start, end, status = 0, size, 200
        if self.command == "GET" and self.headers.get("Range"):
            start, end = parse_range(self.headers["Range"], size)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return

        # Fault injection: cut the first full download of each blob short, so a test can watch
        # the client resume it with a Range request.
        cut = self.hub.interrupt_downloads_after
        if status == 200 and cut is not None and self.hub.claim_interruption(entry["sha256"]):
            end = min(end, cut)
            self.close_connection = True
        with repo.blob_path(entry["sha256"]).open("rb") as blob:
            blob.seek(start)
            remaining = end - start
            while remaining > 0:
                data = blob.read(min(_CHUNK, remaining))
                if not data:
                    break
                self.wfile.write(data)
                remaining -= len(data)

    def _send_hostile(
        self, repo: Repo, entry: dict[str, Any], sha: str, fault: dict[str, Any]
    ) -> None:
        """Answer a download the way ``fault`` says (see "Hostile answers" in the docstring)."""
        if "body" in fault:
            body = str(fault["body"]).encode("utf-8", "surrogateescape")
        else:
            body = repo.blob_path(entry["sha256"]).read_bytes()
        headers: dict[str, str | None] = {
            "X-Repo-Commit": sha,
            "ETag": f'"{entry["sha256"] if entry["lfs"] else entry["oid"]}"',
            "Content-Length": str(len(body)),
        }
        if entry["lfs"]:
            headers["X-Linked-Etag"] = headers["ETag"]
            headers["X-Linked-Size"] = str(len(body))
        headers.update(fault.get("headers", {}))
        self.send_response(int(fault.get("status", 200)))
        self.send_header("Content-Type", "application/octet-stream")
        for key, value in headers.items():
            if value is not None:
                self.send_header(key, str(value))
        self.end_headers()
        self.close_connection = True  # the body may not match its Content-Length
        if self.command == "HEAD":
            return
        step, pause = fault.get("trickle", [len(body) or 1, 0])
        step = max(int(step), 1)
        for offset in range(0, len(body), step):
            self.wfile.write(body[offset : offset + step])
            self.wfile.flush()
            if pause:
                time.sleep(float(pause))


# --------------------------------------------------------------------------------------------
# Server object, CLI and pytest helpers
# --------------------------------------------------------------------------------------------


class HubServer:
    """A Hub-protocol server over a :class:`HubStore`, served from a background thread.

    ``tokens``: bearer tokens to accept; empty means no authentication (see the module
    docstring). ``user``: the user name every valid token (or, without tokens, every request)
    acts as. ``interrupt_downloads_after``: if set, the first complete GET of each blob is cut
    after that many bytes, to test resumed downloads. ``requests`` records ``(method, path,
    status)`` of every answer, for tests to inspect.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] = (),
        user: str = DEFAULT_USER,
        interrupt_downloads_after: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.store = HubStore(root)
        self.tokens = frozenset(tokens)
        self.user = user
        self.interrupt_downloads_after = interrupt_downloads_after
        self.verbose = verbose
        self.requests: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=10_000)
        # LFS upload ticket -> (repo type, repo id, sha256, size); in memory only.
        self.upload_tickets: dict[str, tuple[str, str, str, int]] = {}
        self._interrupted: set[str] = set()
        self._interrupt_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), HubRequestHandler)
        self._httpd.hub = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._httpd.server_address[0]}:{self.port}"

    def claim_interruption(self, sha256: str) -> bool:
        """True the first time only, for each blob."""
        with self._interrupt_lock:
            if sha256 in self._interrupted:
                return False
            self._interrupted.add(sha256)
            return True

    def start(self) -> str:
        """Serve from a daemon thread; returns the base URL (the value for ``HF_ENDPOINT``)."""
        # A short poll interval makes stop() quick; the default 0.5 s adds up over many tests.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def client_env(url: str, home: Path, token: str | None = None) -> dict[str, str]:
    """The environment of a huggingface_hub client process talking to a test Hub at ``url``.

    Its own cache under ``home``, online, no Xet (the test Hub speaks plain LFS), no
    telemetry; ``token`` as ``HF_TOKEN`` (none: an empty one).
    """
    return {
        "HF_ENDPOINT": url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": token or "",
    }


def start_server_subprocess(
    root: str | os.PathLike[str],
    token: str | None = None,
    *,
    user: str = DEFAULT_USER,
    extra_args: tuple[str, ...] | list[str] = (),
    timeout: float = 30.0,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Run this module as a server process on a free port and wait until it answers.

    ``token``: the one bearer token to require (None: no authentication). Returns the base URL
    and the process; end it with :func:`stop_server_subprocess`. The server's stderr is inherited,
    so a crash shows up in the test output.
    """
    workdir = Path(tempfile.mkdtemp(prefix="hubserver-"))
    port_file = workdir / "port"
    command = [sys.executable, str(Path(__file__).resolve()), "--root", str(root), "--port", "0"]
    command += ["--port-file", str(port_file), "--user", user]
    if token is not None:
        command += ["--token", token]
    process = subprocess.Popen([*command, *extra_args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not port_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"hub server exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("hub server did not report its port in time")
            time.sleep(0.02)
        url = f"http://127.0.0.1:{int(port_file.read_text())}"
        while True:  # bound and listening already, but make sure requests get answered
            try:
                with urllib.request.urlopen(f"{url}/", timeout=1) as response:
                    response.read()
                return url, process
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    except BaseException:
        stop_server_subprocess(process)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def stop_server_subprocess(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a server started by :func:`start_server_subprocess` and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", help="folder holding the repositories (default: a temporary one, removed at exit)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the chosen port here once listening")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="a bearer token to accept (repeatable); none given means no authentication",
    )
    parser.add_argument("--user", default=DEFAULT_USER, help="user name tokens authenticate as")
    parser.add_argument(
        "--interrupt-downloads-after",
        type=int,
        metavar="BYTES",
        help="cut the first complete download of each file after BYTES (tests resumption)",
    )
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    scratch = None if args.root else tempfile.mkdtemp(prefix="hubserver-root-")
    root = args.root or scratch

    server = HubServer(
        root,
        host=args.host,
        port=args.port,
        tokens=args.token,
        user=args.user,
        interrupt_downloads_after=args.interrupt_downloads_after,
        verbose=args.verbose,
    )
    # Turn SIGTERM (what stop_server_subprocess sends) into a clean exit that closes the socket.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.port_file:
        # Atomic, so a poller never reads an empty file. The socket is already listening.
        write_atomic(Path(args.port_file), str(server.port).encode())
    print(f"hubserver: serving {root} at {server.url}", file=sys.stderr, flush=True)
    print(
        f"hubserver: use it with: export HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
