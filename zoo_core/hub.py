"""Sharing models on the Hugging Face Hub: ``push_to_hub``, ``pull`` and ``hf://`` sources.

A zoo model on the Hub is the saved directory itself: ``config.json``, the
safetensors weights (one file, or shards and their index) and a ``README.md``
model card. Downloads go through huggingface_hub's own cache (``HF_HOME``,
``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` apply as usual) and fetch
only those names, never pickles or code, and nothing downloaded is executed:
the architecture must come from an installed plugin, which is checked from
``config.json`` before any weights are fetched.

>>> import zoo_core
>>> zoo_core.push_to_hub("cnn/", "me/cnn-demo")                          # doctest: +SKIP
CommitInfo(commit_url='https://huggingface.co/me/cnn-demo/commit/1f0c...', ...)
>>> model = zoo_core.load_model("hf://me/cnn-demo@v1")                   # doctest: +SKIP
>>> zoo_core.pull("me/cnn-demo")                                         # doctest: +SKIP
PosixPath('/home/me/.cache/huggingface/hub/models--me--cnn-demo/snapshots/1f0c...')

huggingface_hub is imported only inside these functions: it reads its
environment variables once, at import, and ``import zoo_core`` stays light.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.errors import HubError, UsageError, WeightsError
from zoo_core.safetensors_io import hash_file
from zoo_core.units import human_bytes
from zoo_core.variant_meta import card_metadata, check_weights_section
from zoo_core.weights import (
    CONFIG_NAME,
    INDEX_NAME,
    WEIGHTS_NAME,
    SavedModel,
    check_record,
    read_json,
    read_saved,
)

__all__ = [
    "CARD_NAME",
    "HF_PREFIX",
    "HubModel",
    "Snapshot",
    "is_hf_source",
    "open_hub_saved",
    "parse_hf_source",
    "pull",
    "push_to_hub",
    "render_card",
    "resolve_hf_source",
    "verify_files",
]

HF_PREFIX = "hf://"
CARD_NAME = "README.md"
LIBRARY_NAME = "zoo"
# Weights zoo never loads: unpickling a downloaded file can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REPO_RE = re.compile(rf"(?:{_PART}/)?{_PART}")
_SHARD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors")


def is_hf_source(source: object) -> bool:
    """Whether ``source`` is an ``hf://`` model source."""
    return isinstance(source, str) and source.startswith(HF_PREFIX)


def parse_hf_source(text: str) -> tuple[str, str | None]:
    """Split ``hf://owner/repo[@revision]`` (the prefix is optional) into repo id and revision.

    >>> parse_hf_source("hf://me/cnn@v1")
    ('me/cnn', 'v1')

    Raises:
        UsageError: the text is not a repository id.
    """
    body = text[len(HF_PREFIX) :] if text.startswith(HF_PREFIX) else text
    repo_id, at, revision = body.partition("@")
    if not _REPO_RE.fullmatch(repo_id) or ".." in repo_id or (at and not revision):
        raise UsageError(
            f"{text!r} is not a Hub model source",
            hint="write hf://OWNER/REPO or hf://OWNER/REPO@REVISION (a branch, tag or commit)",
        )
    return repo_id, revision or None


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


@dataclass
class HubModel(SavedModel):
    """A :class:`~zoo_core.weights.SavedModel` that came from the Hub (``kind == "hub"``)."""

    repo_id: str = ""
    revision: str | None = None
    commit: str = ""

    @property
    def uri(self) -> str:
        return f"{HF_PREFIX}{self.repo_id}@{self.commit}"

    @property
    def source(self) -> str:
        return self.uri

    def provenance(self) -> dict[str, Any]:
        """What ``zoo load --json`` reports about where the model came from."""
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


# -- errors -----------------------------------------------------------------------------------


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _is_network_error(err: BaseException) -> bool:
    names = {cls.__name__ for cls in type(err).__mro__}
    # huggingface_hub's HTTP layer raises its own transport errors (httpx-style), not OSError.
    return isinstance(err, (ConnectionError, TimeoutError)) or bool(
        names & {"TransportError", "NetworkError", "TimeoutException"}
    )


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str | None, *, writing: bool = False) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into zoo errors that say what to do."""
    from huggingface_hub import errors as hf

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        yield
    except hf.RevisionNotFoundError:
        raise HubError(
            f"revision {revision or 'main'!r} does not exist in {repo_id}",
            hint="give a branch, a tag or a full commit sha of that repository",
        ) from None
    except hf.RepositoryNotFoundError:
        raise HubError(
            f"no repository {repo_id} on {_endpoint()}",
            hint="check the name; a private repository needs HF_TOKEN set to a token that can "
            "read it",
        ) from None
    except hf.OfflineModeIsEnabled:
        raise _offline_error(repo_id, revision) from None
    except hf.LocalEntryNotFoundError as err:
        if _offline():
            raise _offline_error(repo_id, revision) from None
        raise HubError(
            f"cannot reach the Hub at {_endpoint()} to fetch {where}: {_first_line(err)}",
            hint="check the network (and HF_ENDPOINT); files already fetched stay in the cache",
        ) from None
    except hf.HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        if status == 401:
            raise HubError(
                f"the Hub at {_endpoint()} refused the credentials for {where} (401)",
                hint="check HF_TOKEN or run 'hf auth login' (the token is never shown)",
            ) from None
        if status == 403:
            action = "write to" if writing else "read"
            raise HubError(
                f"no permission to {action} {repo_id} (403)",
                hint="use a token with write access to that namespace, or push under your own name",
            ) from None
        raise HubError(
            f"the Hub answered {status} for {where}: {_server_message(err)}",
            hint="run the command again; if it persists, check the repository on the Hub",
        ) from None
    except Exception as err:
        if _is_network_error(err):
            raise HubError(
                f"cannot reach the Hub at {_endpoint()} for {where}, or the transfer was cut: "
                f"{_first_line(err)}",
                hint="check the network (and HF_ENDPOINT) and run again: completed files stay "
                "in the cache",
            ) from None
        raise


def _offline_error(repo_id: str, revision: str | None) -> HubError:
    where = f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
    return HubError(
        f"{where} is not in the local cache, and HF_HUB_OFFLINE=1 forbids downloading it",
        hint=f"pull it while online (zoo pull {repo_id}"
        + (f" --revision {revision}" if revision else "")
        + "), or unset HF_HUB_OFFLINE",
    )


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _server_message(err: Any) -> str:
    server = getattr(err, "server_message", None)
    return (server or _first_line(err)).strip()


# -- downloading ------------------------------------------------------------------------------


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _download(repo_id: str, name: str, commit: str, token: str | bool | None) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(repo_id, name, revision=commit, token=token, library_name=LIBRARY_NAME)
    )


def _is_cached(repo_id: str, name: str, commit: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, name, revision=commit), str)


def _resolve_commit(
    repo_id: str, revision: str | None, token: str | bool | None
) -> tuple[str, list[str]]:
    """The commit ``revision`` points at and the file names it holds."""
    from huggingface_hub import HfApi, hf_hub_download

    if _offline():
        # The cache maps branch and tag names to commits (its refs/), written on download.
        config = Path(hf_hub_download(repo_id, CONFIG_NAME, revision=revision))
        return config.parent.name, sorted(p.name for p in config.parent.iterdir())
    info = HfApi(token=token, library_name=LIBRARY_NAME).model_info(repo_id, revision=revision)
    names = [s.rfilename for s in info.siblings or []]
    if CONFIG_NAME in names:
        # Fetching by the revision's name records it in the cache's refs/, so the same
        # hf://repo@revision works offline later. A push in between moves it: follow.
        config = Path(hf_hub_download(repo_id, CONFIG_NAME, revision=revision, token=token))
        if config.parent.name != info.sha:
            return _resolve_commit(repo_id, config.parent.name, token)
    return str(info.sha), names


def _check_names(source: str, names: list[str]) -> None:
    """A zoo repository has config.json and safetensors weights; say what else it is."""
    has_weights = WEIGHTS_NAME in names or INDEX_NAME in names
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles and not has_weights:
        raise HubError(
            f"{source} holds only pickle weights ({', '.join(pickles[:3])}), which zoo never "
            "loads: unpickling a downloaded file can run arbitrary code",
            hint="ask for a safetensors upload, or convert a copy you trust and push it with "
            "'zoo push'",
        )
    if CONFIG_NAME not in names:
        raise HubError(
            f"{source} is not a zoo model: it has no {CONFIG_NAME}",
            hint="zoo loads repositories written by 'zoo push' (config.json + safetensors)",
        )


def _read_record(config: Path, source: str) -> dict[str, Any]:
    data = read_json(config)
    if not isinstance(data, dict) or "zoo_format" not in data or "architecture" not in data:
        raise HubError(
            f"{source} is not a zoo model: its {CONFIG_NAME} has no zoo record",
            hint="zoo loads repositories written by 'zoo push'; this may be another "
            "library's model",
        )
    try:
        return check_record(data, Path(source) / CONFIG_NAME)
    except WeightsError as err:
        raise HubError(f"{source}: {err}", hint=err.hint) from None


def _weight_names(
    repo_id: str, commit: str, names: list[str], token: str | bool | None, source: str
) -> list[str]:
    """The weight files to fetch: the single file, or the index and the shards it names."""
    if WEIGHTS_NAME in names:
        return [WEIGHTS_NAME]
    if INDEX_NAME not in names:
        raise HubError(f"{source} has neither {WEIGHTS_NAME} nor {INDEX_NAME}")
    index = read_json(_download(repo_id, INDEX_NAME, commit, token))
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise HubError(f"{source}: {INDEX_NAME} has no 'weight_map' object")
    shards = sorted(set(weight_map.values()), key=str)
    for shard in shards:
        # The allow-list: an index may only send us to plain .safetensors names in the repo.
        if not isinstance(shard, str) or not _SHARD_RE.fullmatch(shard) or ".." in shard:
            raise HubError(f"{source}: {INDEX_NAME} names a file zoo will not fetch: {shard!r}")
    return [INDEX_NAME, *shards]


def resolve_hf_source(
    text: str,
    *,
    weights: bool = True,
    token: str | bool | None = None,
    check_plugin: bool = True,
) -> Snapshot:
    """Fetch an ``hf://owner/repo[@revision]`` model into huggingface_hub's cache.

    Only allow-listed names are fetched: ``config.json`` first, then (with
    ``weights=True``) the weights and ``README.md``. With ``check_plugin``, an
    architecture whose plugin is not installed fails after ``config.json``,
    before any weights are downloaded. Newly downloaded files are checked
    against the sha256 and size recorded in ``config.json`` (its ``files``
    field), when it has one. Under ``HF_HUB_OFFLINE=1`` everything comes from the cache.

    >>> snap = resolve_hf_source("hf://me/cnn@v1")                     # doctest: +SKIP
    >>> snap.commit, snap.path                                         # doctest: +SKIP
    ('1f0c...', PosixPath('.../models--me--cnn/snapshots/1f0c...'))

    Raises:
        HubError: not found, no permission, offline and not cached, network down,
            not a zoo model, pickle-only, or content not matching its recorded hash.
        PluginNotInstalledError: the architecture's plugin is missing.
    """
    repo_id, revision = parse_hf_source(text)
    source = f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
    with _hub_errors(repo_id, revision):
        commit, names = _resolve_commit(repo_id, revision, token)
        _check_names(source, names)
        config = _download(repo_id, CONFIG_NAME, commit, token)
        record = _read_record(config, source)
        if check_plugin:
            from zoo_core.registry import get_registry

            get_registry().resolve_saved(
                record["architecture"], record.get("plugin"), record.get("plugin_version")
            )
        fetched = [CONFIG_NAME]
        if weights:
            if not {WEIGHTS_NAME, INDEX_NAME} & set(names) and _offline():
                raise _offline_error(repo_id, revision)  # only its config was fetched before
            wanted = _weight_names(repo_id, commit, names, token, source)
            if CARD_NAME in names:
                wanted.append(CARD_NAME)
            # Checking hashes costs a read of every byte: do it for what this call downloads.
            cached_before = {n for n in wanted if _is_cached(repo_id, n, commit)}
            for name in wanted:
                _download(repo_id, name, commit, token)
            fetched += wanted
            new = [n for n in wanted if n not in cached_before]
            verify_files(config.parent, record, new, source=source, evict=True)
    return Snapshot(repo_id, revision, commit, config.parent, tuple(fetched))


def open_hub_saved(text: str, *, weights: bool = True) -> HubModel:
    """The saved model behind an ``hf://`` source (what ``load_model``/``zoo info`` read).

    With ``weights=False`` only ``config.json`` is fetched and the result maps no tensors.
    """
    snap = resolve_hf_source(text, weights=weights)
    extra = {"repo_id": snap.repo_id, "revision": snap.revision, "commit": snap.commit}
    if weights:
        saved = read_saved(snap.path)
        base = {f.name: getattr(saved, f.name) for f in dataclasses.fields(SavedModel)}
        return HubModel(**{**base, "kind": "hub"}, **extra)
    record = _read_record(snap.path / CONFIG_NAME, snap.uri)
    return HubModel(path=snap.path, kind="hub", record=record, **extra)


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
    if inline_revision and revision and inline_revision != revision:
        raise UsageError(f"two revisions given: @{inline_revision} and {revision}")
    revision = revision or inline_revision
    source = f"{HF_PREFIX}{name}" + (f"@{revision}" if revision else "")
    return resolve_hf_source(source, weights=True, token=token, check_plugin=False)


# -- verifying --------------------------------------------------------------------------------


def verify_files(
    directory: Path,
    record: dict[str, Any],
    names: list[str],
    *,
    source: str | None = None,
    evict: bool = False,
) -> None:
    """Check files against the ``{"files": {name: {"sha256", "size"}}}`` record of config.json.

    Names the record does not list, or a record without ``files``, are not
    checked. huggingface_hub checks a download's size but not its content, so
    this is what catches a corrupted or tampered transfer. With ``evict``, a
    bad file is removed from the cache so that the next try downloads it again.

    Raises:
        HubError: a downloaded file (``source`` given) differs from the recorded one.
        WeightsError: a local file (no ``source``) differs from the recorded one.
    """
    recorded = record.get("files")
    if not isinstance(recorded, dict):
        return
    for name in names:
        want = recorded.get(name)
        if not isinstance(want, dict):
            continue
        path = Path(directory) / name
        size = path.stat().st_size
        problem = None
        if isinstance(want.get("size"), int) and size != want["size"]:
            problem = f"{size} bytes, but {want['size']} were recorded"
        elif (
            isinstance(want.get("sha256"), str) and hash_file(path).sha256 != want["sha256"].lower()
        ):
            problem = "its sha256 differs from the one recorded in config.json"
        if problem is None:
            continue
        if evict:
            blob = path.resolve()
            path.unlink(missing_ok=True)
            if blob != path:
                blob.unlink(missing_ok=True)
        if source is None:
            raise WeightsError(
                f"{name} in {directory} does not match its config.json: {problem}",
                hint="the files changed after they were saved; save the model again",
            )
        raise HubError(
            f"{name} from {source} is corrupt or was tampered with: {problem}",
            hint="download it again; if it persists, the repository's files do not match "
            "their config.json",
        )


# -- pushing ----------------------------------------------------------------------------------


def _parameter_count(saved: SavedModel) -> tuple[int, int]:
    """Parameters and bytes stored in the weight files, read from the safetensors headers."""
    from safetensors import safe_open

    count = size = 0
    by_file: dict[Path, list[str]] = {}
    for key, file in saved.key_to_file.items():
        by_file.setdefault(file, []).append(key)
    for file, keys in by_file.items():
        with safe_open(file, framework="pt") as f:
            for key in keys:
                piece = f.get_slice(key)
                numel = 1
                for dim in piece.get_shape():
                    numel *= dim
                count += numel
                size += numel * _DTYPE_BYTES.get(piece.get_dtype(), 4)
    return count, size


_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2}
_DTYPE_BYTES |= {"I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def render_card(saved: SavedModel, repo_id: str, *, license: str | None = None) -> str:
    """The README.md model card ``push`` writes: YAML metadata, what it is, how to load it."""
    from huggingface_hub import ModelCardData

    record = saved.record
    arch = record["architecture"]
    plugin = record.get("plugin") or "the plugin that provides it"
    version = record.get("plugin_version")
    params, size = _parameter_count(saved)
    summary = _summary(arch, record.get("plugin"))
    tags = [LIBRARY_NAME, arch, *([record["plugin"]] if record.get("plugin") else [])]
    # A weights variant's metrics, labels and license go into the card's metadata.
    extra = {}
    if "weights" in record:
        section = check_weights_section(record["weights"], str(saved.path))
        extra = card_metadata(section, repo_id.split("/")[-1])
    license = license or extra.pop("license", None)
    extra.pop("license", None)
    data = ModelCardData(library_name=LIBRARY_NAME, license=license, tags=tags, **extra)
    config_json = json.dumps(record.get("config", {}), indent=2, sort_keys=True)
    install = "pip install zoo-core " + (record.get("plugin") or "")
    weights = (
        WEIGHTS_NAME
        if WEIGHTS_NAME in {p.name for p in saved.files}
        else f"{len(saved.files)} shards named by {INDEX_NAME}"
    )
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A `{arch}` model for [zoo](https://pypi.org/project/zoo-core/), the plugin-based "
        f"PyTorch model zoo. The architecture comes from the plugin `{plugin}`"
        + (f" (saved with version {version})" if version else "")
        + "; this repository holds only its config and weights.",
        "",
    ]
    if summary:
        lines += [f"> {summary}", ""]
    lines += [
        f"- Parameters: {params:,} ({human_bytes(size)})",
        f"- Weights: safetensors ({weights}); no pickle, no code",
        f"- Saved with zoo-core {record.get('zoo_core_version', 'unknown')}",
        "",
        "## Config",
        "",
        "```json",
        config_json,
        "```",
        "",
        "## How to load",
        "",
        "```bash",
        install.strip(),
        f"zoo load hf://{repo_id}",
        "```",
        "",
        "```python",
        "import zoo_core",
        "",
        f'model = zoo_core.load_model("hf://{repo_id}", device="cpu")',
        "```",
        "",
        "Pin a version with `hf://" + repo_id + "@<revision>` (a branch, tag or commit).",
        "",
    ]
    return "\n".join(lines)


def _summary(arch: str, plugin: str | None) -> str | None:
    from zoo_core.errors import ZooError
    from zoo_core.registry import get_registry

    try:
        entry = get_registry().resolve(f"{plugin}:{arch}" if plugin else arch)
    except ZooError:
        return None
    return entry.spec.summary or None


def _is_weight_file(name: str) -> bool:
    return name == INDEX_NAME or ("/" not in name and name.endswith(".safetensors"))


def push_to_hub(
    model_or_dir: Any,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    license: str | None = None,
    overwrite_card: bool = False,
) -> Any:
    """Upload a model (a ZooModel, or a directory saved by ``save_model``) in one commit.

    The commit holds ``config.json``, the weights (single or sharded with the
    index) and a model card; weight files of an earlier push that the new one
    does not have are deleted in the same commit. The card is generated unless
    the directory has its own ``README.md`` or the repository already has one
    (``overwrite_card=True`` regenerates it). ``revision`` names a branch,
    created from ``main`` if missing. The token comes from ``token``, else
    ``HF_TOKEN`` or the saved login; it is never written anywhere.

    huggingface_hub commits atomically: a push that fails leaves the repository
    as it was.

    Returns:
        huggingface_hub's ``CommitInfo`` (``oid`` is the new commit's sha).

    Raises:
        HubError: no permission, not found, network down.
        WeightsError: the directory is not a saved zoo model or its files do not
            match their recorded hashes.

    >>> zoo_core.push_to_hub(model, "me/cnn-demo", license="mit")          # doctest: +SKIP
    """
    from zoo_core.model import ZooModel

    repo_id, inline_revision = parse_hf_source(repo_id)
    if inline_revision:
        revision = revision or inline_revision
    if isinstance(model_or_dir, ZooModel):
        from zoo_core.api import save_model

        with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
            directory = save_model(model_or_dir, Path(tmp) / "model")
            return _push_directory(
                directory, repo_id, revision, private, commit_message, token, license,
                overwrite_card,
            )  # fmt: skip
    path = Path(os.path.expanduser(os.fspath(model_or_dir)))
    if not path.is_dir():
        raise WeightsError(
            f"{path} is not a saved model directory",
            hint="push a directory written by 'zoo save' or zoo_core.save_model, or a ZooModel",
        )
    return _push_directory(
        path, repo_id, revision, private, commit_message, token, license, overwrite_card
    )


def _push_directory(
    directory: Path,
    repo_id: str,
    revision: str | None,
    private: bool,
    commit_message: str | None,
    token: str | None,
    license: str | None,
    overwrite_card: bool,
) -> Any:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    saved = read_saved(directory)
    weight_names = [p.name for p in saved.files]
    if (directory / INDEX_NAME).is_file() and WEIGHTS_NAME not in weight_names:
        weight_names.insert(0, INDEX_NAME)
    verify_files(directory, saved.record, weight_names)
    upload = [CONFIG_NAME, *weight_names]
    local_card = directory / CARD_NAME
    api = HfApi(token=token, library_name=LIBRARY_NAME)
    with _hub_errors(repo_id, revision, writing=True):
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            _ensure_branch(api, repo_id, revision)
        existing = set(api.list_repo_files(repo_id, revision=revision))
        operations: list[Any] = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(directory / name))
            for name in upload
        ]
        if local_card.is_file() and not overwrite_card:
            operations.append(
                CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=str(local_card))
            )
        elif overwrite_card or CARD_NAME not in existing:
            card = render_card(saved, repo_id, license=license).encode("utf-8")
            operations.append(CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card))
        stale = sorted(n for n in existing if _is_weight_file(n) and n not in upload)
        operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
        message = commit_message or f"Upload {saved.architecture} with zoo"
        return api.create_commit(
            repo_id, operations=operations, commit_message=message, revision=revision
        )


def _ensure_branch(api: Any, repo_id: str, revision: str) -> None:
    refs = api.list_repo_refs(repo_id)
    if revision in {b.name for b in refs.branches}:
        return
    if revision in {t.name for t in refs.tags} or re.fullmatch(r"[0-9a-f]{40}", revision):
        raise HubError(
            f"cannot push to {revision!r} in {repo_id}: it is a tag or a commit, not a branch",
            hint="push to a branch (--revision BRANCH), then tag it on the Hub",
        )
    api.create_branch(repo_id, branch=revision, exist_ok=True)
