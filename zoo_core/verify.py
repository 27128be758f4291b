"""Checking a saved model directory: completeness, structure and content hashes.

:func:`verify_directory` is what ``zoo verify DIR`` runs. It reports every
problem it finds instead of stopping at the first, so one run tells the whole
story. :func:`check_file_hashes` is the content check alone (sha256 and size of
each file ``config.json`` records under ``files``); it lives in
:mod:`zoo_core.file_hashes`, below both this module and the Hub code, which
calls it on downloaded snapshots and before a push.

The record's schema, written by :func:`zoo_core.save_model`::

    "files": {"model.safetensors": {"sha256": "<64 hex digits>", "size": <bytes>}, ...}

>>> from zoo_core.verify import verify_directory
>>> for problem in verify_directory("cnn/"):            # doctest: +SKIP
...     print(problem)
error: model.safetensors: sha256 is 3f2a..., but 9c1b... was saved
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError, ZooError
from zoo_core.file_hashes import Problem, check_file_hashes
from zoo_core.progress import ProgressCallback

__all__ = ["Problem", "check_file_hashes", "verify_directory"]


def verify_directory(
    path: str | os.PathLike[str], *, hashes: bool = True, progress: ProgressCallback | None = None
) -> list[Problem]:
    """Every problem with the saved model directory at ``path``; an empty list means sound.

    Checks that ``config.json`` is zoo's, that every shard the index names is
    present and has a valid header, that the index and shards agree, that the
    architecture's plugin is installed and every tensor it needs is there with
    the right shape and dtype, and (with ``hashes``) that every recorded file
    still has the sha256 and size recorded at save time (``progress(done,
    total)`` counts the bytes hashed).
    """
    from zoo_core.weights import CONFIG_NAME, FILES_KEY, read_saved

    directory = Path(path)
    if not directory.is_dir():
        return [Problem(str(directory), "is not a directory")]
    problems: list[Problem] = []
    try:
        saved = read_saved(directory)
    except WeightsError as err:
        # Name every broken shard; the first error alone only when no shard explains it.
        problems += _shard_problems(directory) or [Problem(str(directory), err.message)]
        saved = None
    record = saved.record if saved is not None else _raw_record(directory / CONFIG_NAME)
    files = record.get(FILES_KEY) if isinstance(record, dict) else None
    if files is None:
        problems.append(
            Problem(CONFIG_NAME, "records no content hashes; contents were not checked", "warning")
        )
    else:
        if hashes:
            problems += check_file_hashes(directory, files, progress)
        if isinstance(files, dict):
            for extra in sorted(_weight_files(directory) - set(files)):
                problems.append(Problem(extra, "is not recorded in config.json"))
    if saved is not None:
        problems += _architecture_problems(saved)
    return _unique(problems)


def _raw_record(config: Path) -> Any:
    import json

    try:
        return json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _weight_files(directory: Path) -> set[str]:
    return {
        p.name
        for p in directory.iterdir()
        if p.name.endswith(".safetensors") or p.name.endswith(".safetensors.index.json")
    }


def _shard_problems(directory: Path) -> list[Problem]:
    """Header problems of each weight file, so a broken directory shows every broken shard."""
    from zoo_core.safetensors_io import read_header

    problems = []
    for name in sorted(_weight_files(directory)):
        if name.endswith(".json"):
            continue
        try:
            read_header(directory / name)
        except WeightsError as err:
            problems.append(Problem(name, err.message.split(": ", 1)[-1]))
    return problems


def _architecture_problems(saved: Any) -> list[Problem]:
    from zoo_core.api import saved_architecture
    from zoo_core.weights import structure_problems

    try:
        arch, config = saved_architecture(saved)
        model = arch.build_meta(config, where=saved.path)
    except ZooError as err:
        return [Problem(str(saved.path), err.message)]
    return [
        Problem(str(saved.path), f"does not fit {arch.name}: {p}")
        for p in structure_problems(saved, model.state_dict())
    ]


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
