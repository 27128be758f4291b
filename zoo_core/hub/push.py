"""``push_to_hub``: upload a saved model directory (or a model, saved first) in one commit.

This module sits above :mod:`zoo_core.api` (it saves an in-memory model with
``save_model``) and beside :mod:`zoo_core.hub.download`; nothing below imports it, so
imports flow one way: ``hub_push -> api -> hub -> hub_transport``.

>>> import zoo_core
>>> zoo_core.push_to_hub("cnn/", "me/cnn-demo")                          # doctest: +SKIP
CommitInfo(commit_url='https://huggingface.co/me/cnn-demo/commit/1f0c...', ...)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError
from zoo_core.hub.card import CARD_NAME, render_card
from zoo_core.hub.download import check_revision, parse_hf_source
from zoo_core.hub.transport import commit_operations, hub_errors, prepare_push
from zoo_core.storage.weights import CONFIG_NAME, INDEX_NAME, WEIGHTS_NAME, check_member, read_saved

__all__ = ["push_directory", "push_to_hub"]


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
        HubError: no permission, not found, network down, a time limit.
        UsageError: the repository id or the revision is malformed.
        WeightsError: the directory is not a saved zoo model or its files do not
            match their recorded hashes.

    >>> zoo_core.push_to_hub(model, "me/cnn-demo", license="mit")          # doctest: +SKIP
    """
    from torch import nn

    repo_id, inline_revision = parse_hf_source(repo_id)
    revision = check_revision(revision) or inline_revision
    options = dict(
        private=private,
        commit_message=commit_message,
        token=token,
        license=license,
        overwrite_card=overwrite_card,
    )
    if isinstance(model_or_dir, nn.Module):  # a ZooModel, or any model zoo built
        from zoo_core.api import save_model

        with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
            directory = save_model(model_or_dir, Path(tmp) / "model")
            return push_directory(directory, repo_id, revision, **options)
    path = Path(os.path.expanduser(os.fspath(model_or_dir)))
    if not path.is_dir():
        raise WeightsError(
            f"{path} is not a saved model directory",
            hint="push a directory written by 'zoo save' or zoo_core.save_model, or a ZooModel",
        )
    return push_directory(path, repo_id, revision, **options)


def push_directory(
    directory: Path,
    repo_id: str,
    revision: str | None = None,
    *,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    license: str | None = None,
    overwrite_card: bool = False,
) -> Any:
    """:func:`push_to_hub` for a saved directory, with ``repo_id`` already checked."""
    from zoo_core.storage.hashes import check_file_hashes

    saved = read_saved(directory)
    weight_names = [p.name for p in saved.files]
    if (directory / INDEX_NAME).is_file() and WEIGHTS_NAME not in weight_names:
        weight_names.insert(0, INDEX_NAME)
    recorded = saved.record.get("files")
    if isinstance(recorded, dict):
        problems = check_file_hashes(
            directory, {n: recorded[n] for n in weight_names if n in recorded}
        )
        if problems:
            first = problems[0]
            raise WeightsError(
                f"{first.where} in {directory} does not match its config.json: {first.message}",
                hint="the files changed after they were saved; save the model again",
            )
    upload = [CONFIG_NAME, *weight_names]
    # Every file that leaves this machine is checked to be a regular file inside the
    # directory: a card linked to a file elsewhere (a token, say) is never uploaded.
    for name in upload:
        check_member(directory, name)
    local_card = check_member(directory, CARD_NAME)
    with hub_errors(repo_id, revision, writing=True):
        existing = prepare_push(repo_id, revision, private, token)
        adds: dict[str, str | bytes] = {name: str(directory / name) for name in upload}
        if local_card is not None and not overwrite_card:
            adds[CARD_NAME] = str(local_card)
        elif overwrite_card or CARD_NAME not in existing:
            adds[CARD_NAME] = render_card(saved, repo_id, license=license).encode("utf-8")
        stale = sorted(n for n in existing if _is_weight_file(n) and n not in upload)
        message = commit_message or f"Upload {saved.architecture} with zoo"
        return commit_operations(repo_id, revision, adds, stale, message, token)
