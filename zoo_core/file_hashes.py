"""The one content check of saved files: sha256 and size against ``config.json``'s record.

``zoo verify``, ``zoo push`` (before uploading) and ``hf://`` downloads (after
fetching) all call :func:`check_file_hashes`, so a local file and a Hub file
are judged by the same rules. :mod:`zoo_core.verify` re-exports it.

The record's schema, written by :func:`zoo_core.save_model`::

    "files": {"model.safetensors": {"sha256": "<64 hex digits>", "size": <bytes>}, ...}

>>> check_file_hashes("cnn/", record["files"])        # doctest: +SKIP
[]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError
from zoo_core.progress import ProgressCallback, part_of

__all__ = ["Problem", "check_file_hashes"]


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
