"""Pushing a saved model directory to the Hub in one commit.

The public verb is :func:`zoo_core.push_to_hub` (in :mod:`zoo_core.api`,
which saves an in-memory model first and resolves any source once); this
module uploads the snapshot it opened.

>>> import zoo_core
>>> zoo_core.push_to_hub("cnn/", "me/cnn-demo")                          # doctest: +SKIP
CommitInfo(commit_url='https://huggingface.co/me/cnn-demo/commit/1f0c...', ...)
"""

from __future__ import annotations

import logging
from typing import Any

from zoo_core.errors import HubError, WeightsError
from zoo_core.hub.card import CARD_NAME, render_card
from zoo_core.hub.transport import COMMIT_RE, LIBRARY_NAME, hub_errors
from zoo_core.storage.hashes import check_opened
from zoo_core.storage.record import CONFIG_NAME, INDEX_NAME, WEIGHTS_NAME, recorded_weights
from zoo_core.storage.weights import SavedModel

__all__ = ["push_saved"]


class _NothingToCommit(logging.Filter):
    """Notices (and keeps off stderr) huggingface_hub's word that a commit would change nothing."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("No files have been modified since last commit"):
            self.seen = True
            return False
        return True


def _is_weight_file(name: str) -> bool:
    return name == INDEX_NAME or ("/" not in name and name.endswith(".safetensors"))


def push_saved(
    saved: SavedModel,
    repo_id: str,
    revision: str | None = None,
    *,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    license: str | None = None,
    overwrite_card: bool = False,
) -> Any:
    """Upload one opened snapshot of a saved directory in one commit; ``repo_id`` already checked.

    Everything uploaded is read through the snapshot's open files (see
    :mod:`zoo_core.storage.snapshot`): the bytes whose hashes were checked are
    the bytes that leave, even if a save replaces the directory meanwhile.

    Returns huggingface_hub's ``CommitInfo``, plus ``unchanged``: True when the
    repository already held exactly these files (no commit was made).

    Raises:
        Vanished: a save replaced the directory before its card was opened: push again.
        WeightsError: not a directory, or files that do not match ``config.json``.
        HubError: the Hub refused or could not be reached.
    """
    opened = saved.opened
    if opened is None:
        raise WeightsError(
            f"{saved.path} is not a saved model directory",
            hint="push a directory written by 'zoo save' or zoo_core.save_model, or a ZooModel",
        )
    directory = saved.path
    # The card is part of the snapshot too: opened now, before anything is checked or sent.
    # If a save replaced the directory before it was opened, this raises Vanished and the
    # caller pushes a fresh snapshot.
    local_card = opened.check(CARD_NAME)
    # Exactly the weight files config.json records leave this machine (a stray
    # model.safetensors beside recorded shards is not the model), each hash-checked below.
    named = recorded_weights(saved.record)
    if named is not None:
        weight_names = sorted(named)
    else:
        weight_names = [p.name for p in saved.files]
        if opened.lexists(INDEX_NAME) and WEIGHTS_NAME not in weight_names:
            weight_names.insert(0, INDEX_NAME)
    recorded = saved.record.get("files")
    if isinstance(recorded, dict):
        problems = check_opened(opened, {n: recorded[n] for n in weight_names if n in recorded})
        if problems:
            first = problems[0]
            raise WeightsError(
                f"{first.where} in {directory} does not match its config.json: {first.message}",
                hint="the files changed after they were saved; save the model again",
            )
    upload = [CONFIG_NAME, *weight_names]
    # Every file that leaves this machine is a regular file inside the directory, opened
    # through the snapshot: a card linked to a file elsewhere (a token, say) is never uploaded.
    for name in upload:
        opened.check(name)
    with hub_errors(repo_id, revision, writing=True):
        existing = prepare_push(repo_id, revision, private, token)
        adds: dict[str, str | bytes] = {name: str(opened.readable_path(name)) for name in upload}
        if local_card is not None and not overwrite_card:
            adds[CARD_NAME] = str(opened.readable_path(CARD_NAME))
        elif overwrite_card or CARD_NAME not in existing:
            adds[CARD_NAME] = render_card(saved, repo_id, license=license).encode("utf-8")
        stale = sorted(n for n in existing if _is_weight_file(n) and n not in upload)
        message = commit_message or f"Upload {saved.architecture} with zoo"
        logger = logging.getLogger("huggingface_hub.hf_api")
        nothing = _NothingToCommit()
        logger.addFilter(nothing)
        try:
            info = commit_operations(repo_id, revision, adds, stale, message, token)
        finally:
            logger.removeFilter(nothing)
    # The repository held these very files: no commit was made, oid is where it already was.
    info.unchanged = nothing.seen
    return info


def prepare_push(repo_id: str, revision: str | None, private: bool, token: str | None) -> set[str]:
    """Create the repository (and branch) if missing; the names of the files it holds now."""
    from huggingface_hub import HfApi

    api = HfApi(token=token, library_name=LIBRARY_NAME)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None:
        _ensure_branch(api, repo_id, revision)
    return set(api.list_repo_files(repo_id, revision=revision))


def commit_operations(
    repo_id: str,
    revision: str | None,
    adds: dict[str, str | bytes],
    deletes: list[str],
    message: str,
    token: str | None,
) -> Any:
    """One commit adding ``adds`` (name -> local path or bytes) and deleting ``deletes``."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=data) for name, data in adds.items()
    ]
    operations += [CommitOperationDelete(path_in_repo=name) for name in deletes]
    api = HfApi(token=token, library_name=LIBRARY_NAME)
    return api.create_commit(
        repo_id, operations=operations, commit_message=message, revision=revision
    )


def _ensure_branch(api: Any, repo_id: str, revision: str) -> None:
    refs = api.list_repo_refs(repo_id)
    if revision in {b.name for b in refs.branches}:
        return
    if revision in {t.name for t in refs.tags} or COMMIT_RE.fullmatch(revision):
        raise HubError(
            f"cannot push to {revision!r} in {repo_id}: it is a tag or a commit, not a branch",
            hint="push to a branch (--revision BRANCH), then tag it on the Hub",
        )
    api.create_branch(repo_id, branch=revision, exist_ok=True)
