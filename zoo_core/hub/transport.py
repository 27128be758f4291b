"""Every call zoo makes to the Hugging Face Hub, its limits, and the errors it turns them into.

The Hub is untrusted, and so is the network to it. Each transfer zoo starts
runs inside :func:`hub_errors`, which

- ends it after an overall deadline (``ZOO_HUB_TIMEOUT`` seconds, default
  3600) and when it stalls (``ZOO_HUB_STALL_TIMEOUT`` seconds, default 60,
  without receiving at least 1 KiB), whatever the server does;
- caps what a download may receive (the size the caller allows for that file,
  checked against the Hub's file metadata before downloading and again while
  the bytes arrive) and what an API answer may be (:data:`MAX_API_BYTES`);
- refuses commit ids and ETags that are not plain hex-like words before
  huggingface_hub turns them into cache paths;
- makes one try only where a person waits for the answer (:func:`list_models`):
  no retry after a failed connection or a busy server, and no sleeping for
  what a ``Retry-After`` header asks;
- maps huggingface_hub's exceptions and the cache's file-system errors to
  :class:`~zoo_core.errors.HubError`, quoting server text only through
  :func:`~zoo_core.untrusted.clean_text`.

The limits apply to zoo's own transfers only: the hooks zoo adds to
huggingface_hub's shared HTTP client do nothing outside :func:`hub_errors`.
They watch that HTTP client; a file huggingface_hub fetches through Xet
storage (its own transfer library) is checked for size before and for the
deadline between files only.
huggingface_hub is imported inside functions: it reads its environment
variables once, at import, and ``import zoo_core`` stays light.

>>> with hub_errors("me/cnn", "v1"):                                   # doctest: +SKIP
...     commit, sizes = resolve_commit("me/cnn", "v1", token=None)
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.errors import HubError, UsageError, ZooError
from zoo_core.progress import binary_bar
from zoo_core.storage.limits import env_seconds
from zoo_core.untrusted import clean_text

__all__ = [
    "COMMIT_RE",
    "CONFIG_NAME",
    "DEADLINE_ENV",
    "LIBRARY_NAME",
    "MAX_API_BYTES",
    "MAX_LISTING_BYTES",
    "MAX_LISTING_REQUESTS",
    "MAX_RESOLVES",
    "STALL_ENV",
    "TransferAborted",
    "download",
    "endpoint",
    "hub_errors",
    "is_cached",
    "list_models",
    "offline",
    "offline_error",
    "resolve_commit",
    "transfer_limits",
]

LIBRARY_NAME = "zoo"
CONFIG_NAME = "config.json"
DEADLINE_ENV = "ZOO_HUB_TIMEOUT"
STALL_ENV = "ZOO_HUB_STALL_TIMEOUT"
DEFAULT_DEADLINE = 3600.0
DEFAULT_STALL = 60.0
# A transfer that receives less than this in a whole stall window is stalled, not slow.
STALL_MIN_BYTES = 1024
# The largest JSON answer (model info, refs, commit) zoo reads; a listing of thousands of files
# is a few MB.
MAX_API_BYTES = 64 * 1024 * 1024
# A model listing: a thousand entries of a few fields each are well under 1 MB; the cap also
# bounds what parsing it can allocate. Requests: pages and redirects of one listing.
MAX_LISTING_BYTES = 8 * 1024 * 1024
MAX_LISTING_REQUESTS = 20
# What huggingface_hub retries on, sleeping in between (as long as a Retry-After header says).
_RETRIED_STATUSES = {429, 500, 502, 503, 504}
# httpcore's trace events for the steps of an exchange before its answer's body.
_ONE_TRY_EVENTS = {
    f"{step}.failed"
    for step in (
        "connect_tcp",
        "connect_unix_socket",
        "start_tls",
        "send_connection_init",
        "send_request_headers",
        "receive_response_headers",
    )
}
# How often zoo follows a branch that moved between the model info and the download: twice
# covers a push landing mid-resolve; more means the server contradicts itself.
MAX_RESOLVES = 3
#: A full commit sha, as the Hub writes it.
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_ETAG_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
# What huggingface_hub raises on an answer of the wrong shape (or nested too deep to parse).
_PARSE_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, LookupError, AttributeError)
_PARSE_ERRORS += (ArithmeticError, RecursionError)
_AGAIN = "run the command again; if it persists, check the repository on the Hub"
# Cache write failures that are the machine's state, not zoo's bug.
_CACHE_ERRNOS = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EBUSY: "the device is busy",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is not a directory",
    errno.EEXIST: "a file is in the way",
    errno.EIO: "an input/output error",
}


class TransferAborted(Exception):
    """A zoo limit ended a transfer (deadline, stall, size, malformed answer).

    Deliberately not an httpx error: huggingface_hub retries those, and a
    limit must end the transfer at once.
    """


class TransferFailed(TransferAborted):
    """A one-try transfer failed (no connection, a busy server): ``message`` and ``hint`` say so."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class _Transfer:
    where: str
    deadline: float
    stall: float
    max_bytes: int | None = None
    name: str | None = None
    # One-try transfers: how many more requests may start (None: no such limit), and whether
    # the one retry of a kept-alive connection the server had closed is spent.
    requests_left: int | None = None
    reconnected: bool = False


_CURRENT: contextvars.ContextVar[_Transfer | None] = contextvars.ContextVar(
    "zoo_hub_transfer", default=None
)


def transfer_limits() -> tuple[float, float]:
    """The overall deadline and the stall timeout in seconds, from the environment."""
    return env_seconds(DEADLINE_ENV, DEFAULT_DEADLINE), env_seconds(STALL_ENV, DEFAULT_STALL)


# -- the guard on huggingface_hub's HTTP client ---------------------------------------------------


def _aborted(transfer: _Transfer, why: str) -> TransferAborted:
    what = f"{transfer.name} from {transfer.where}" if transfer.name else transfer.where
    return TransferAborted(f"{what}: {why}")


def _past_deadline(transfer: _Transfer) -> TransferAborted:
    deadline, _ = transfer_limits()
    return _aborted(transfer, f"the transfer took longer than {DEADLINE_ENV}={deadline:g} s")


def _on_request(request: Any) -> None:
    transfer = _CURRENT.get()
    if transfer is None:
        return
    left = transfer.deadline - time.monotonic()
    if left <= 0:
        raise _past_deadline(transfer)
    # No single connect, read or write may wait longer than the stall timeout or the deadline.
    limit = min(transfer.stall, left)
    request.extensions["timeout"] = {"connect": limit, "read": limit, "write": limit, "pool": limit}
    if transfer.requests_left is not None:
        if transfer.requests_left <= 0:
            raise _aborted(transfer, f"the server sent zoo on over {MAX_LISTING_REQUESTS} requests")
        transfer.requests_left -= 1
        # httpcore reports a failed connection or exchange to this callback before httpx
        # raises it; raising here instead keeps huggingface_hub from sleeping and retrying.
        request.extensions["trace"] = lambda event, info: _one_try(transfer, event, info)


def _one_try(transfer: _Transfer, event: str, info: dict[str, Any]) -> None:
    error = info.get("exception")
    # Only before the answer starts: a body cut later is the stream guard's to report.
    if event.split(".", 1)[-1] not in _ONE_TRY_EVENTS or not isinstance(error, Exception):
        return
    if isinstance(error, TransferAborted):
        return
    if type(error).__name__ == "RemoteProtocolError" and not transfer.reconnected:
        # A pooled connection the server closed in between: worth one more try.
        transfer.reconnected = True
        return
    raise TransferFailed(
        f"cannot reach the Hub at {endpoint()} for {transfer.where}: {_first_line(error)}",
        "check the network and HF_ENDPOINT, then run the command again",
    ) from error


def _on_response(response: Any) -> None:
    transfer = _CURRENT.get()
    if transfer is None:
        return
    headers = response.headers
    commit = headers.get("X-Repo-Commit")
    if commit is not None and not COMMIT_RE.fullmatch(commit):
        # huggingface_hub makes it a folder name of the cache.
        shown = clean_text(commit, 60)
        raise _aborted(transfer, f"the server sent a malformed commit id {shown!r}")
    for name in ("X-Linked-Etag", "ETag"):
        etag = headers.get(name)
        if etag is not None:
            bare = etag.removeprefix("W/").strip('"')
            if not _ETAG_RE.fullmatch(bare):
                raise _aborted(
                    transfer, f"the server sent a malformed {name} {clean_text(etag, 60)!r}"
                )
    if response.request.method == "HEAD":
        return
    if transfer.requests_left is not None and response.status_code in _RETRIED_STATUSES:
        raise TransferFailed(
            f"the Hub at {endpoint()} is busy or failing: it answered {response.status_code} "
            f"to {transfer.where}",
            "run the command again in a minute",
        )
    cap = transfer.max_bytes if transfer.max_bytes is not None else MAX_API_BYTES
    length = headers.get("Content-Length", "")
    if length.isdigit() and int(length) > cap and response.status_code < 300:
        raise _aborted(
            transfer, f"the server announced {length} bytes (over the {cap} bytes allowed)"
        )
    response.stream = _guarded_stream(response.stream, transfer, cap)


def _guarded_stream(inner: Any, transfer: _Transfer, cap: int) -> Any:
    import httpx2

    class GuardedStream(httpx2.SyncByteStream):
        """The response body, ended on the deadline, a stall or too many bytes."""

        def __iter__(self) -> Iterator[bytes]:
            window_start, window_bytes, total = time.monotonic(), 0, 0
            try:
                for chunk in inner:
                    now = time.monotonic()
                    total += len(chunk)
                    if total > cap:
                        raise _aborted(transfer, f"the server sent over the {cap} bytes allowed")
                    if now > transfer.deadline:
                        raise _past_deadline(transfer)
                    window_bytes += len(chunk)
                    if now - window_start >= transfer.stall:
                        if window_bytes < STALL_MIN_BYTES:
                            raise _stalled(transfer)
                        window_start, window_bytes = now, 0
                    yield chunk
            except httpx2.TimeoutException:
                if time.monotonic() >= transfer.deadline:
                    raise _past_deadline(transfer) from None
                raise _stalled(transfer) from None

        def close(self) -> None:
            inner.close()

    return GuardedStream()


def _stalled(transfer: _Transfer) -> TransferAborted:
    return _aborted(
        transfer,
        f"the transfer stalled (under {STALL_MIN_BYTES} bytes in {STALL_ENV}={transfer.stall:g} s)",
    )


def _install_hooks() -> None:
    """Add zoo's guard to huggingface_hub's shared client (idempotent; a new client gets it too)."""
    from huggingface_hub import get_session

    session = get_session()
    hooks = session.event_hooks
    if _on_request in hooks.get("request", []) and _on_response in hooks.get("response", []):
        return
    session.event_hooks = {
        "request": [*[h for h in hooks.get("request", []) if h is not _on_request], _on_request],
        "response": [
            *[h for h in hooks.get("response", []) if h is not _on_response],
            _on_response,
        ],
    }


@contextlib.contextmanager
def _capped(name: str, max_bytes: int | None) -> Iterator[None]:
    transfer = _CURRENT.get()
    if transfer is None:
        yield
        return
    if time.monotonic() >= transfer.deadline:
        raise _past_deadline(transfer)
    _install_hooks()  # huggingface_hub replaces its client after a connection error
    before = (transfer.max_bytes, transfer.name)
    transfer.max_bytes, transfer.name = max_bytes, name
    try:
        yield
    finally:
        transfer.max_bytes, transfer.name = before


# -- errors -----------------------------------------------------------------------------------


def endpoint() -> str:
    from huggingface_hub import constants

    return clean_text(constants.ENDPOINT)


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _cache_dir() -> str:
    from huggingface_hub import constants

    return clean_text(constants.HF_HUB_CACHE)


def _is_network_error(err: BaseException) -> bool:
    names = {cls.__name__ for cls in type(err).__mro__}
    # huggingface_hub's HTTP layer raises its own transport errors (httpx-style), not OSError.
    return isinstance(err, (ConnectionError, TimeoutError)) or bool(
        names & {"TransportError", "NetworkError", "TimeoutException", "DecodingError"}
    )


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return clean_text(lines[0] if lines else type(err).__name__)


def _server_message(err: Any) -> str:
    server = getattr(err, "server_message", None)
    return (
        clean_text(server.strip())
        if isinstance(server, str) and server.strip()
        else (_first_line(err))
    )


def offline_error(repo_id: str, revision: str | None) -> HubError:
    where = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    return HubError(
        f"{where} is not in the local cache, and HF_HUB_OFFLINE=1 forbids downloading it",
        hint=f"pull it while online (zoo pull {repo_id}"
        + (f" --revision {revision}" if revision else "")
        + "), or unset HF_HUB_OFFLINE",
    )


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None, *, writing: bool = False) -> Iterator[None]:
    """Run Hub calls under zoo's limits and turn their exceptions into zoo errors.

    Raises:
        HubError: not found, no permission, offline, network, a limit, or the cache unwritable.
        UsageError: huggingface_hub refused the repository id or a limit variable is malformed.
    """
    where = f"{repo_id}@{revision}" if revision else repo_id
    deadline, stall = transfer_limits()
    token = _CURRENT.set(_Transfer(where, time.monotonic() + deadline, stall))
    try:
        _install_hooks()
        yield
    except Exception as err:
        mapped = _translate(err, repo_id, revision, where, writing)
        # huggingface_hub wraps some failures (an LFS upload: a bare RuntimeError); the cause
        # says what happened.
        for cause in list(_chain(err))[1:]:
            if mapped is not None:
                break
            mapped = _translate(cause, repo_id, revision, where, writing)
        if mapped is None and _raised_by_client(err):
            why = "; ".join(f"{type(e).__name__}: {_first_line(e)}" for e in list(_chain(err))[:2])
            mapped = HubError(f"the Hub client failed on {where}: {why}", hint=_AGAIN)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        _CURRENT.reset(token)


def _translate(
    err: BaseException, repo_id: str, revision: str | None, where: str, writing: bool
) -> ZooError | None:
    """The zoo error for one exception of huggingface_hub or the network, or None."""
    from huggingface_hub import errors as hf

    if isinstance(err, hf.HFValidationError):
        return UsageError(
            f"the Hub client refuses {clean_text(where, 120)!r}: {_first_line(err)}",
            hint="a repository id is OWNER/NAME of letters, digits, '-', '_' and '.', "
            "not starting or ending with '-' or '.', without '--' or '..', at most 96 each",
        )
    if isinstance(err, hf.RevisionNotFoundError):
        return HubError(
            f"revision {revision or 'main'!r} does not exist in {repo_id}",
            hint="give a branch, a tag or a full commit sha of that repository",
        )
    if isinstance(err, hf.RepositoryNotFoundError):
        return HubError(
            f"no repository {repo_id} on {endpoint()}",
            hint="check the name; a private repository needs HF_TOKEN set to a token that can "
            "read it",
        )
    if isinstance(err, hf.OfflineModeIsEnabled):
        return offline_error(repo_id, revision)
    if isinstance(err, hf.LocalEntryNotFoundError):
        aborted = next((e for e in _chain(err) if isinstance(e, TransferAborted)), None)
        if aborted is not None:
            return _limit_error(aborted)
        if offline():
            return offline_error(repo_id, revision)
        return HubError(
            f"cannot reach the Hub at {endpoint()} to fetch {where}: {_first_line(err)}",
            hint="check the network (and HF_ENDPOINT); files already fetched stay in the cache",
        )
    if isinstance(err, hf.HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status == 401:
            return HubError(
                f"the Hub at {endpoint()} refused the credentials for {where} (401)",
                hint="check HF_TOKEN or run 'hf auth login' (the token is never shown)",
            )
        if status == 403:
            action = "write to" if writing else "read"
            return HubError(
                f"no permission to {action} {repo_id} (403)",
                hint="use a token with write access to that namespace, or push under your own name",
            )
        text = f"the Hub answered {clean_text(status)} for {where}: {_server_message(err)}"
        return HubError(text, hint=_AGAIN)
    if isinstance(err, TransferFailed):
        return HubError(err.message, hint=err.hint)
    if isinstance(err, TransferAborted):
        return _limit_error(err)
    if isinstance(err, OSError) and err.errno in _CACHE_ERRNOS and not _is_network_error(err):
        return HubError(
            f"cannot write the Hugging Face cache ({_cache_dir()}) while fetching {where}: "
            f"{_CACHE_ERRNOS[err.errno]} ({clean_text(err.strerror or err)})",
            hint="free some space or fix the permissions, or point HF_HUB_CACHE (or HF_HOME) "
            "at a writable folder",
        )
    if _is_network_error(err):
        return _network_error(where, err)
    if isinstance(err, OSError) and err.errno is None and _raised_by_client(err):
        # huggingface_hub's own checks of a download (its size not what the server announced)
        return HubError(
            f"the Hub at {endpoint()} sent {where} wrongly: {_first_line(err)}",
            hint=_AGAIN,
        )
    if isinstance(err, _PARSE_ERRORS) and _raised_by_client(err):
        # huggingface_hub parses the server's answers without checking their shape (nor
        # their depth); the same exception raised by zoo's own code stays an internal error.
        return HubError(
            f"the Hub at {endpoint()} sent an answer zoo cannot use for {where}: "
            f"{type(err).__name__}: {_first_line(err)}",
            hint="check HF_ENDPOINT; if it is right, the server is misbehaving",
        )
    return None


def _raised_by_client(err: BaseException) -> bool:
    """Whether ``err`` came from inside huggingface_hub or its HTTP stack, not from zoo's code."""
    tb = err.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        if any(f"/{name}/" in filename for name in ("huggingface_hub", "httpx2", "httpcore2")):
            return True
        tb = tb.tb_next
    return False


def _network_error(where: str, err: BaseException) -> HubError:
    return HubError(
        f"cannot reach the Hub at {endpoint()} for {where}, or the transfer was cut: "
        f"{_first_line(err)}",
        hint="check the network (and HF_ENDPOINT) and run again: completed files stay in the cache",
    )


def _limit_error(err: TransferAborted) -> HubError:
    return HubError(
        f"Hub transfer stopped: {clean_text(str(err), 300)}",
        hint=f"check the network and HF_ENDPOINT; {DEADLINE_ENV} and {STALL_ENV} set the "
        "limits (seconds); completed files stay in the cache",
    )


# -- downloading ------------------------------------------------------------------------------


def download(
    repo_id: str,
    name: str,
    revision: str | None,
    token: str | bool | None,
    *,
    max_bytes: int | None = None,
) -> Path:
    """Fetch one file into huggingface_hub's cache, receiving at most ``max_bytes``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import tqdm as hub_bar

    bar = binary_bar(hub_bar)  # MiB and MiB/s, as zoo says sizes
    with _capped(name, max_bytes):
        path = hf_hub_download(
            repo_id, name, revision=revision, token=token, library_name=LIBRARY_NAME, tqdm_class=bar
        )
    return Path(path)


def list_models(
    *,
    filters: list[str],
    search: str | None,
    author: str | None,
    sort: str | None,
    limit: int,
    expand: list[str],
    token: str | bool | None,
) -> list[Any]:
    """At most ``limit`` entries of the Hub's model listing (``ModelInfo``), in one try.

    The answer is capped at :data:`MAX_LISTING_BYTES`, its pages and redirects
    at :data:`MAX_LISTING_REQUESTS`; a failed connection or a busy server ends
    it at once (a person is waiting), without huggingface_hub's retries.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token, library_name=LIBRARY_NAME)
    found: list[Any] = []
    with _capped("the listing", MAX_LISTING_BYTES):
        transfer = _CURRENT.get()
        if transfer is not None:
            transfer.requests_left = MAX_LISTING_REQUESTS
        try:
            listing = api.list_models(
                filter=filters, search=search, author=author, sort=sort, limit=limit, expand=expand
            )
            for info in listing:
                found.append(info)
                if len(found) >= limit:
                    break
        finally:
            if transfer is not None:
                transfer.requests_left = None
    return found


def is_cached(repo_id: str, name: str, commit: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, name, revision=commit), str)


def _malformed(where: str, what: str) -> HubError:
    return HubError(
        f"the Hub at {endpoint()} sent a malformed answer for {where}: {what}",
        hint="check HF_ENDPOINT; if it is right, the server is misbehaving",
    )


def _file_sizes(info: Any, where: str) -> dict[str, int | None]:
    siblings = info.siblings or []
    if not isinstance(siblings, list):
        raise _malformed(where, "its file list is not a list")
    sizes: dict[str, int | None] = {}
    for sibling in siblings:
        name = getattr(sibling, "rfilename", None)
        if not isinstance(name, str):
            raise _malformed(where, "a file has no name")
        size = getattr(sibling, "size", None)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise _malformed(where, f"{clean_text(name, 80)!r} has size {clean_text(size, 40)}")
        sizes[name] = size
    return sizes


def resolve_commit(
    repo_id: str, revision: str | None, token: str | bool | None, *, config_bytes: int
) -> tuple[str, dict[str, int | None]]:
    """The commit ``revision`` points at, and the size (None: not told) of each file it holds.

    Online, ``config.json`` is fetched by the revision's name (so that the cache
    records the name and ``hf://repo@revision`` works offline later), refusing
    one larger than ``config_bytes``. If the branch moved in between, the new
    commit is followed, at most :data:`MAX_RESOLVES` times.
    """
    from huggingface_hub import HfApi, hf_hub_download

    where = f"{repo_id}@{revision}" if revision else repo_id
    if offline():
        # The cache maps branch and tag names to commits (its refs/), written on download.
        config = Path(hf_hub_download(repo_id, CONFIG_NAME, revision=revision))
        return config.parent.name, {p.name: None for p in config.parent.iterdir()}
    api = HfApi(token=token, library_name=LIBRARY_NAME)
    seen: list[str] = []
    for _ in range(MAX_RESOLVES):
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
        sha = info.sha
        if not isinstance(sha, str) or not COMMIT_RE.fullmatch(sha):
            raise _malformed(where, f"commit id {clean_text(sha, 60)!r}")
        sizes = _file_sizes(info, where)
        if CONFIG_NAME not in sizes:
            return sha, sizes
        check_size(CONFIG_NAME, sizes[CONFIG_NAME], config_bytes, where)
        config = download(repo_id, CONFIG_NAME, revision, token, max_bytes=config_bytes)
        if config.parent.name == sha:
            return sha, sizes
        seen.append(f"{sha[:12]} vs {config.parent.name[:12]}")
        revision = config.parent.name  # a push landed in between: follow it
    raise HubError(
        f"the Hub keeps contradicting itself about {where}: its model info and its downloads "
        f"name different commits ({', '.join(seen)})",
        hint="if a push is under way, wait and run again; pin a commit with @SHA",
    )


def check_size(name: str, size: int | None, limit: int, where: str) -> None:
    """Refuse a file whose size, from the Hub's metadata, is over ``limit`` bytes."""
    if size is not None and size > limit:
        raise HubError(
            f"{name} of {where} is {size} bytes, more than the {limit} zoo accepts for it",
            hint="this is not a file 'zoo push' writes; SECURITY.md lists the limits",
        )
