"""Models on the Hugging Face Hub: ``hf://`` sources, ``pull``, and checking what was fetched.

A zoo model on the Hub is the saved directory itself: ``config.json``, the
safetensors weights (one file, or shards and their index) and a ``README.md``
model card. Downloads go through huggingface_hub's own cache (``HF_HOME``,
``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` apply as usual) and fetch
only those names, never pickles or code, and nothing downloaded is executed:
the architecture must come from an installed plugin, which is checked from
``config.json`` before any weights are fetched.

Everything the Hub says is checked before it is used: the repository id and
revision (:func:`parse_hf_source`), each file's size from the Hub's metadata
against :data:`MAX_CONFIG_BYTES`, :data:`MAX_INDEX_BYTES`,
:data:`MAX_CARD_BYTES` and the sizes ``config.json`` records, and each
downloaded file's sha256 (by :func:`zoo_core.storage.hashes.check_file_hashes`, the
one verifier of local and Hub files). Transfers, their time limits and their
errors live in :mod:`zoo_core.hub.transport`; pushing in :mod:`zoo_core.hub.push`;
the model card in :mod:`zoo_core.hub.card`.

>>> model = zoo_core.load_model("hf://me/cnn-demo@v1")                   # doctest: +SKIP
>>> zoo_core.pull("me/cnn-demo")                                         # doctest: +SKIP
PosixPath('/home/me/.cache/huggingface/hub/models--me--cnn-demo/snapshots/1f0c...')
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.errors import HubError, UsageError, WeightsError
from zoo_core.hub.card_data import CARD_NAME
from zoo_core.hub.transport import (
    check_size,
    download,
    hub_errors,
    is_cached,
    offline,
    offline_error,
    resolve_commit,
)
from zoo_core.storage.record import (
    CONFIG_NAME,
    INDEX_NAME,
    WEIGHTS_NAME,
    check_record,
    read_json,
    recorded_weights,
)
from zoo_core.untrusted import clean_text, remember_secret

__all__ = [
    "CARD_NAME",
    "HF_PREFIX",
    "MAX_CARD_BYTES",
    "MAX_CONFIG_BYTES",
    "MAX_INDEX_BYTES",
    "HubWarning",
    "Snapshot",
    "check_downloads",
    "check_revision",
    "is_hf_source",
    "parse_hf_source",
    "pull",
    "pull_snapshot",
    "read_hub_record",
    "resolve_hf_source",
    "valid_revision",
]

HF_PREFIX = "hf://"
# What zoo accepts from the Hub before downloading (checked against the Hub's file metadata,
# and again while the bytes arrive). 'zoo push' writes files far below these.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_INDEX_BYTES = 16 * 1024 * 1024
MAX_CARD_BYTES = 1024 * 1024
# Weights zoo never loads: unpickling a downloaded file can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# huggingface_hub's rules for a repository id, so that it never refuses one zoo accepted:
# letters, digits, '_', '-', '.', not starting or ending with '-' or '.', 96 at most.
_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO_RE = re.compile(rf"(?:{_PART}/)?{_PART}")
# A branch or tag name as git allows it, restricted to plain characters, or a commit sha.
_REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
_MAX_REF = 200
_SHARD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors")
_SOURCE_HINT = (
    "write hf://OWNER/REPO or hf://OWNER/REPO@REVISION: OWNER and REPO of letters, digits, "
    "'-', '_' and '.' (not first or last, no '--' or '..'), REVISION a branch, tag or commit"
)


class HubWarning(UserWarning):
    """Something from the Hub was skipped (an oversized model card); the model is unaffected."""


def is_hf_source(source: object) -> bool:
    """Whether ``source`` is an ``hf://`` model source."""
    return isinstance(source, str) and source.startswith(HF_PREFIX)


def valid_revision(revision: str) -> bool:
    """Whether ``revision`` is a branch or tag name (no ``..``, no ``.lock``) or a commit sha."""
    return (
        len(revision) <= _MAX_REF
        and bool(_REF_RE.fullmatch(revision))
        and ".." not in revision
        and not revision.endswith((".", ".lock"))
        and "/." not in revision
    )


def parse_hf_source(text: str) -> tuple[str, str | None]:
    """Split ``hf://owner/repo[@revision]`` (the prefix is optional) into repo id and revision.

    The id follows the Hub's rules; the revision must be a branch or tag name
    or a commit sha: never a path (``..``), so it cannot steer the cache.

    >>> parse_hf_source("hf://me/cnn@v1")
    ('me/cnn', 'v1')

    Raises:
        UsageError: the text is not a repository id with an optional revision.
    """
    body = text[len(HF_PREFIX) :] if text.startswith(HF_PREFIX) else text
    repo_id, at, revision = body.partition("@")
    if (
        not _REPO_RE.fullmatch(repo_id)
        or ".." in repo_id
        or "--" in repo_id
        or repo_id.endswith(".git")
    ):
        raise UsageError(f"{clean_text(text, 120)!r} is not a Hub model source", hint=_SOURCE_HINT)
    if at and not valid_revision(revision):
        raise UsageError(
            f"{clean_text(revision, 120)!r} is not a revision",
            hint="give a branch or tag name (letters, digits, '.', '_', '-', '/'; no '..') "
            "or a 40-hex commit sha",
        )
    return repo_id, revision or None


def check_revision(revision: str | None) -> str | None:
    """``revision`` if it is one :func:`valid_revision` accepts (None passes).

    Raises:
        UsageError: it is not a branch, tag or commit.
    """
    if revision is not None and not valid_revision(revision):
        parse_hf_source(f"x@{revision}")
    return revision


@dataclass(frozen=True)
class Snapshot:
    """A Hub model resolved to one commit, with the files fetched into the local cache.

    ``path`` is huggingface_hub's snapshot folder for ``commit``; ``files`` are
    the names fetched there (``config.json`` only when weights were not asked for).
    """

    repo_id: str
    revision: str | None
    commit: str
    path: Path
    files: tuple[str, ...]

    @property
    def uri(self) -> str:
        """The source pinned to its commit: ``hf://owner/repo@<sha>``."""
        return f"{HF_PREFIX}{self.repo_id}@{self.commit}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "path": str(self.path),
            "files": list(self.files),
        }


# -- what a repository holds ------------------------------------------------------------------


def _check_names(source: str, names: list[str]) -> None:
    """A zoo repository has config.json and safetensors weights; say what else it is."""
    has_weights = WEIGHTS_NAME in names or INDEX_NAME in names
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles and not has_weights:
        shown = ", ".join(clean_text(p, 80) for p in pickles[:3])
        raise HubError(
            f"{source} holds only pickle weights ({shown}), which zoo never "
            "loads: unpickling a downloaded file can run arbitrary code",
            hint="ask for a safetensors upload, or convert a copy you trust and push it with "
            "'zoo push'",
        )
    if CONFIG_NAME not in names:
        raise HubError(
            f"{source} is not a zoo model: it has no {CONFIG_NAME}",
            hint="zoo loads repositories written by 'zoo push' (config.json + safetensors)",
        )


def read_hub_record(config: Path, source: str) -> dict[str, Any]:
    try:
        data = read_json(config)
    except WeightsError as err:
        raise HubError(f"{source}: {err}", hint=err.hint) from None
    if not isinstance(data, dict) or "zoo_format" not in data or "architecture" not in data:
        raise HubError(
            f"{source} is not a zoo model: its {CONFIG_NAME} has no zoo record",
            hint="zoo loads repositories written by 'zoo push'; this may be another "
            "library's model",
        )
    try:
        return check_record(data, Path(source) / CONFIG_NAME)
    except WeightsError as err:
        raise HubError(f"{source}: {err.message}", hint=err.hint) from None


def _weight_names(
    repo_id: str,
    commit: str,
    sizes: dict[str, int | None],
    token: str | bool | None,
    source: str,
    record: dict[str, Any],
) -> list[str]:
    """The weight files to fetch: the single file, or the index and the shards it names.

    The layout config.json records wins: a ``model.safetensors`` next to recorded
    shards in the repository is not the model, and is not fetched.
    """
    named = recorded_weights(record)
    if named is not None and (named & {WEIGHTS_NAME, INDEX_NAME}):
        layout = INDEX_NAME if INDEX_NAME in named else WEIGHTS_NAME
        if layout not in sizes:
            raise HubError(
                f"{source}: its {CONFIG_NAME} records {layout}, which the repository lacks",
                hint="the repository's files do not match their config.json; push it again",
            )
    else:
        named = None
        layout = WEIGHTS_NAME if WEIGHTS_NAME in sizes else INDEX_NAME
    if layout == WEIGHTS_NAME:
        return [WEIGHTS_NAME]
    if INDEX_NAME not in sizes:
        raise HubError(f"{source} has neither {WEIGHTS_NAME} nor {INDEX_NAME}")
    check_size(INDEX_NAME, sizes[INDEX_NAME], MAX_INDEX_BYTES, source)
    index_path = download(repo_id, INDEX_NAME, commit, token, max_bytes=MAX_INDEX_BYTES)
    try:
        index = read_json(index_path)
    except WeightsError as err:
        raise HubError(f"{source}: {err}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise HubError(f"{source}: {INDEX_NAME} has no 'weight_map' object")
    shards: list[str] = []
    for shard in dict.fromkeys(v if isinstance(v, str) else repr(v) for v in weight_map.values()):
        # The allow-list: an index may only send us to plain .safetensors names in the repo.
        if not _SHARD_RE.fullmatch(shard) or ".." in shard or (named and shard not in named):
            raise HubError(
                f"{source}: {INDEX_NAME} names a file zoo will not fetch: {clean_text(shard, 80)!r}"
                + (f" (its {CONFIG_NAME} does not record it)" if named else "")
            )
        shards.append(shard)
    return [INDEX_NAME, *sorted(shards)]


def _size_limit(
    name: str, sizes: dict[str, int | None], record: dict[str, Any], source: str
) -> int | None:
    """The most bytes ``name`` may have: what config.json records, else what the Hub says."""
    recorded = record.get("files", {}).get(name, {}).get("size")
    told = sizes.get(name)
    if name == INDEX_NAME:
        check_size(name, told, MAX_INDEX_BYTES, source)
    if recorded is not None and told is not None and recorded != told:
        raise HubError(
            f"{name} of {source} is {told} bytes on the Hub, but its {CONFIG_NAME} records "
            f"{recorded}",
            hint="the repository's files do not match their config.json; push it again",
        )
    limit = recorded if recorded is not None else told
    if name == INDEX_NAME:
        limit = min(limit, MAX_INDEX_BYTES) if limit is not None else MAX_INDEX_BYTES
    return limit


def resolve_hf_source(
    text: str,
    *,
    weights: bool = True,
    token: str | bool | None = None,
    check_plugin: bool = True,
    card: bool = False,
) -> Snapshot:
    """Fetch an ``hf://owner/repo[@revision]`` model into huggingface_hub's cache.

    Only allow-listed names are fetched: ``config.json`` first, then (with
    ``weights=True``) the weights and ``README.md``, or (with ``weights=False``
    and ``card=True``) ``README.md`` alone. With ``check_plugin``, an
    architecture whose plugin is not installed fails after ``config.json``,
    before any weights are downloaded. Sizes are checked against the Hub's
    metadata before each download; a model card over :data:`MAX_CARD_BYTES` is
    skipped with a warning. Newly downloaded files are checked against the
    sha256 and size recorded in ``config.json`` (its ``files`` field), when it
    has one. Under ``HF_HUB_OFFLINE=1`` everything comes from the cache.

    >>> snap = resolve_hf_source("hf://me/cnn@v1")                     # doctest: +SKIP
    >>> snap.commit, snap.path                                         # doctest: +SKIP
    ('1f0c...', PosixPath('.../models--me--cnn/snapshots/1f0c...'))

    Raises:
        HubError: not found, no permission, offline and not cached, network down,
            a time or size limit, not a zoo model, pickle-only, or content not
            matching its recorded hash.
        PluginNotInstalledError: the architecture's plugin is missing.
    """
    remember_secret(token)  # never shown, even when a server quotes it back
    repo_id, revision = parse_hf_source(text)
    source = f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
    with hub_errors(repo_id, revision):
        commit, sizes = resolve_commit(repo_id, revision, token, config_bytes=MAX_CONFIG_BYTES)
        _check_names(source, list(sizes))
        check_size(CONFIG_NAME, sizes[CONFIG_NAME], MAX_CONFIG_BYTES, source)
        config = download(repo_id, CONFIG_NAME, commit, token, max_bytes=MAX_CONFIG_BYTES)
        record = read_hub_record(config, source)
        if check_plugin:
            from zoo_core.plugins.registry import get_registry

            get_registry().resolve_saved(
                record["architecture"], record.get("plugin"), record.get("plugin_version")
            )
        fetched = [CONFIG_NAME]
        if weights:
            if not {WEIGHTS_NAME, INDEX_NAME} & set(sizes) and offline():
                raise offline_error(repo_id, revision)  # only its config was fetched before
            wanted = _weight_names(repo_id, commit, sizes, token, source, record)
            if _card_wanted(sizes, source):
                wanted.append(CARD_NAME)
            # Checking hashes costs a read of every byte: do it for what this call downloads.
            cached_before = {n for n in wanted if is_cached(repo_id, n, commit)}
            for name in wanted:
                limit = MAX_CARD_BYTES if name == CARD_NAME else None
                if name != CARD_NAME:
                    limit = _size_limit(name, sizes, record, source)
                download(repo_id, name, commit, token, max_bytes=limit)
            fetched += wanted
            new = [n for n in wanted if n not in cached_before]
            check_downloads(config.parent, record, new, source)
        elif card and _card_wanted(sizes, source):
            download(repo_id, CARD_NAME, commit, token, max_bytes=MAX_CARD_BYTES)
            fetched.append(CARD_NAME)
    return Snapshot(repo_id, revision, commit, config.parent, tuple(fetched))


def _card_wanted(sizes: dict[str, int | None], source: str) -> bool:
    """Whether the repository has a model card zoo will fetch (one too large is skipped)."""
    if CARD_NAME not in sizes:
        return False
    size = sizes[CARD_NAME]
    if size is not None and size > MAX_CARD_BYTES:
        warnings.warn(
            f"{source}: not fetching its {CARD_NAME} of {size} bytes "
            f"(more than {MAX_CARD_BYTES}); the model does not need it",
            HubWarning,
            stacklevel=3,
        )
        return False
    return True


def check_downloads(directory: Path, record: dict[str, Any], names: list[str], source: str) -> None:
    """Check downloaded files against config.json's ``files`` record; evict any that differ.

    The comparison is :func:`zoo_core.storage.hashes.check_file_hashes`, the same one
    ``zoo verify`` and ``zoo push`` use. huggingface_hub checks a download's
    size but not its content, so this is what catches a corrupted or tampered
    transfer; removing the bad file from the cache makes the next try download
    it again instead of trusting it.

    Raises:
        HubError: a file differs from its record.
    """
    from zoo_core.storage.hashes import check_file_hashes

    recorded = record.get("files")
    if not isinstance(recorded, dict):
        return
    wanted = {n: recorded[n] for n in names if n in recorded}
    problems = check_file_hashes(directory, wanted)
    if not problems:
        return
    for problem in problems:
        path = Path(directory) / problem.where
        blob = path.resolve()
        path.unlink(missing_ok=True)
        if blob != path:
            blob.unlink(missing_ok=True)
    first = problems[0]
    raise HubError(
        f"{first.where} from {source} is corrupt or was tampered with: {first.message}",
        hint="download it again; if it persists, the repository's files do not match "
        "their config.json",
    )


def pull(repo_id: str, revision: str | None = None, *, token: str | bool | None = None) -> Path:
    """Download a zoo model (config, weights, card) into huggingface_hub's cache.

    Returns the snapshot folder, whose name is the resolved commit. No plugin
    is needed to pull; loading needs the model's plugin installed.

    >>> zoo_core.pull("me/cnn-demo", revision="v1")                      # doctest: +SKIP
    PosixPath('/home/me/.cache/huggingface/hub/models--me--cnn-demo/snapshots/1f0c...')
    """
    return pull_snapshot(repo_id, revision, token=token).path


def pull_snapshot(
    repo_id: str, revision: str | None = None, *, token: str | bool | None = None
) -> Snapshot:
    """:func:`pull`, returning the whole :class:`Snapshot` (commit and files too)."""
    name, inline_revision = parse_hf_source(repo_id)
    check_revision(revision)
    if inline_revision and revision and inline_revision != revision:
        raise UsageError(f"two revisions given: @{inline_revision} and {revision}")
    revision = revision or inline_revision
    source = f"{HF_PREFIX}{name}" + (f"@{revision}" if revision else "")
    return resolve_hf_source(source, weights=True, token=token, check_plugin=False)
