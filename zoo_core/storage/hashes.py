"""The one content check of saved files: sha256 and size against ``config.json``'s record.

``zoo verify``, ``zoo push`` (before uploading) and ``hf://`` downloads (after
fetching) all call :func:`check_file_hashes`, so a local file and a Hub file
are judged by the same rules. :mod:`zoo_core.sources.verify` re-exports it.

The record's schema, written by :func:`zoo_core.save_model`::

    "files": {"model.safetensors": {"sha256": "<64 hex digits>", "size": <bytes>}, ...}

>>> check_file_hashes("cnn/", record["files"])        # doctest: +SKIP
[]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_core.errors import WeightsError
from zoo_core.progress import ProgressCallback, part_of
from zoo_core.storage.snapshot import OpenedDirectory

__all__ = ["Problem", "check_file_hashes", "check_opened", "message_about"]


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
    hint: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        out = {"level": self.level, "where": self.where, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


def check_file_hashes(
    directory: str | os.PathLike[str] | OpenedDirectory,
    files: Mapping[str, Any],
    progress: ProgressCallback | None = None,
) -> list[Problem]:
    """Compare each file's size and sha256 with ``files`` (the ``config.json`` record).

    ``files`` maps file names in ``directory`` to ``{"sha256": hex, "size": int}``.
    A malformed record is itself reported. Files are hashed in chunks, never
    read whole into memory; a size mismatch skips the hash. ``directory`` may
    be an :class:`~zoo_core.storage.snapshot.OpenedDirectory`, so the files hashed are
    the very ones a load or verify already opened. ``progress(done, total)``
    counts the recorded bytes checked.

    >>> check_file_hashes("cnn/", record["files"])        # doctest: +SKIP
    []
    """

    if isinstance(directory, OpenedDirectory):
        return check_opened(directory, files, progress)
    with OpenedDirectory(directory) as opened:
        return check_opened(opened, files, progress)


def check_opened(
    opened: OpenedDirectory,
    files: Mapping[str, Any],
    progress: ProgressCallback | None = None,
) -> list[Problem]:
    """:func:`check_file_hashes` on a directory already opened (one snapshot of it)."""
    from zoo_core.storage.record import check_files_record
    from zoo_core.storage.safetensors_io import hash_file

    try:
        expected = check_files_record(files, opened.path)
    except WeightsError as err:
        return [Problem(str(opened.path), err.message)]
    problems = []
    total = sum(want.size for want in expected.values())
    start = 0
    for name, want in sorted(expected.items()):
        offset, start = start, start + want.size
        try:
            fd = opened.open(name)
        except WeightsError as err:
            problems.append(Problem(name, message_about(err.message, opened.path / name)))
            continue
        if fd is None:
            problems.append(Problem(name, "is missing"))
            continue
        size = os.fstat(fd).st_size
        if size != want.size:
            problems.append(Problem(name, f"is {size} bytes, but {want.size} were saved"))
            continue
        got = hash_file(opened.path / name, part_of(progress, offset, total), fd=fd)
        if got.sha256 != want.sha256:
            problems.append(
                Problem(name, f"sha256 is {got.sha256}, but {want.sha256} was saved (changed)")
            )
    return problems


def message_about(message: str, shown: Path) -> str:
    """A message about ``shown`` without its name in front (the Problem names it)."""
    return message.removeprefix(f"{shown}: ").removeprefix(f"{shown} ")
