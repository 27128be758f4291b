"""Checking a saved model directory: completeness, structure and content hashes.

:func:`verify_directory` is what ``zoo verify DIR`` runs. It reports every
problem it finds instead of stopping at the first, so one run tells the whole
story. :func:`check_file_hashes` is the content check alone (sha256 and size of
each file ``config.json`` records under ``files``); the Hub code calls it on
downloaded snapshots.

The record's schema, written by :func:`zoo_core.save_model`::

    "files": {"model.safetensors": {"sha256": "<64 hex digits>", "size": <bytes>}, ...}

>>> from zoo_core.verify import verify_directory
>>> for problem in verify_directory("cnn/"):            # doctest: +SKIP
...     print(problem)
error: model.safetensors: sha256 is 3f2a..., but 9c1b... was saved
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError, ZooError
from zoo_core.progress import ProgressCallback, part_of

__all__ = ["Problem", "check_file_hashes", "verify_directory"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a saved model.

    ``level`` is ``"error"`` (the model is damaged or incomplete) or
    ``"warning"`` (nothing is known to be wrong, but something could not be
    checked). ``where`` is the file or directory concerned.
    """

    where: str
    message: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "where": self.where, "message": self.message}


def check_file_hashes(
    directory: str | os.PathLike[str],
    files: Mapping[str, Any],
    progress: ProgressCallback | None = None,
) -> list[Problem]:
    """Compare each file's size and sha256 with ``files`` (the ``config.json`` record).

    ``files`` maps file names in ``directory`` to ``{"sha256": hex, "size": int}``.
    A malformed record is itself reported. Files are hashed in chunks, never
    read whole into memory; a size mismatch skips the hash. ``progress(done,
    total)`` counts the recorded bytes checked.

    >>> check_file_hashes("cnn/", record["files"])        # doctest: +SKIP
    []
    """
    from zoo_core.safetensors_io import hash_file
    from zoo_core.weights import check_files_record, stays_inside

    directory = Path(directory)
    try:
        expected = check_files_record(files, directory)
    except WeightsError as err:
        return [Problem(str(directory), err.message)]
    problems = []
    total = sum(want.size for want in expected.values())
    start = 0
    for name, want in sorted(expected.items()):
        path = directory / name
        offset, start = start, start + want.size
        if not os.path.lexists(path):
            problems.append(Problem(name, "is missing"))
            continue
        try:
            outside = not stays_inside(directory, path)
        except (OSError, RuntimeError):
            problems.append(Problem(name, "is a symlink loop"))
            continue
        if outside:
            problems.append(Problem(name, "points outside the directory"))
            continue
        if not path.is_file():
            problems.append(Problem(name, "is not a regular file"))
            continue
        size = path.stat().st_size
        if size != want.size:
            problems.append(Problem(name, f"is {size} bytes, but {want.size} were saved"))
            continue
        got = hash_file(path, part_of(progress, offset, total))
        if got.sha256 != want.sha256:
            problems.append(
                Problem(name, f"sha256 is {got.sha256}, but {want.sha256} was saved (changed)")
            )
    return problems


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
