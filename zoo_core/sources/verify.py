"""Checking a saved model directory: completeness, structure and content hashes.

:func:`verify_directory` is what ``zoo verify DIR`` runs. It reports every
problem it finds instead of stopping at the first, so one run tells the whole
story. :func:`check_file_hashes` is the content check alone (sha256 and size of
each file ``config.json`` records under ``files``); it lives in
:mod:`zoo_core.storage.hashes`, below both this module and the Hub code, which
calls it on downloaded snapshots and before a push.

The record's schema, written by :func:`zoo_core.save_model`::

    "files": {"model.safetensors": {"sha256": "<64 hex digits>", "size": <bytes>}, ...}

>>> from zoo_core.sources.verify import verify_directory
>>> for problem in verify_directory("cnn/"):            # doctest: +SKIP
...     print(problem)
error: model.safetensors: sha256 is 3f2a..., but 9c1b... was saved
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo_core.errors import SourceNotFoundError, WeightsError, ZooError
from zoo_core.hub.download import is_hf_source, resolve_hf_source
from zoo_core.pretrained.catalogue import get_variants, is_variant_name
from zoo_core.progress import ProgressCallback
from zoo_core.sources.variant import locate
from zoo_core.storage.hashes import Problem, check_file_hashes, check_opened, message_about
from zoo_core.storage.snapshot import OpenedDirectory, Vanished

__all__ = ["Problem", "check_file_hashes", "verify_directory", "verify_source"]

# How often a check starts again because saves kept replacing the directory under it.
_ATTEMPTS = 50


def verify_source(
    source: str | os.PathLike[str],
    *,
    hashes: bool = True,
    progress: ProgressCallback | None = None,
) -> tuple[Path, list[Problem]]:
    """Every problem with the saved model a source names, and where its files are.

    ``source`` is a directory or lone ``.safetensors`` file, ``hf://owner/repo[@rev]``
    (fetched into the Hub cache first, allow-listed files only) or a weights
    variant ``NAME.TAG`` (its ``config.json`` checked against the publisher's
    pin, then its files as :func:`verify_directory` checks a directory).

    Raises:
        SourceNotFoundError: a path that does not exist and is no variant name.
        HubError, PluginError: the source could not be fetched or located.
    """
    text = os.fspath(source)
    if is_hf_source(text):
        path = resolve_hf_source(text, check_plugin=False).path
        return path, verify_directory(path, hashes=hashes, progress=progress)
    if not os.path.exists(text) and is_variant_name(text):
        try:
            located = locate(get_variants().resolve(text), weights=False)
        except WeightsError as err:  # a shipped copy that fails its pin: a finding, not a crash
            return Path(text), [Problem(text, err.message, hint=err.hint)]
        return located.path, verify_directory(located.path, hashes=hashes, progress=progress)
    if not os.path.exists(text):
        raise SourceNotFoundError(
            f"no such file or directory: {text}",
            hint="give a saved model directory, a .safetensors file, hf://OWNER/REPO or NAME.TAG",
        )
    return Path(text), verify_directory(text, hashes=hashes, progress=progress)


def verify_directory(
    path: str | os.PathLike[str], *, hashes: bool = True, progress: ProgressCallback | None = None
) -> list[Problem]:
    """Every problem with the saved model at ``path``; an empty list means sound.

    ``path`` is a directory or a lone ``.safetensors`` file. For a directory:
    checks that ``config.json`` is zoo's, that every shard the index names is
    present and has a valid header, that the index and shards agree, that the
    architecture's plugin is installed and every tensor it needs is there with
    the right shape and dtype, and (with ``hashes``) that every recorded file
    still has the sha256 and size recorded at save time (``progress(done,
    total)`` counts the bytes hashed). All of it is read from one snapshot of
    the directory, so a save replacing it meanwhile is never mistaken for
    damage. A lone file has its header, zoo metadata and tensors checked (it
    records no hashes).
    """
    directory = Path(path)
    if directory.is_file():
        return _verify_file(directory)
    if not directory.is_dir():
        return [Problem(str(directory), "is not a directory")]
    for _ in range(_ATTEMPTS):
        try:
            opened = OpenedDirectory(directory)
        except OSError as err:
            return [Problem(str(directory), f"cannot be read: {err.strerror or err}")]
        try:
            return _unique(_verify_opened(opened, hashes, progress))
        except Vanished:
            continue
        finally:
            opened.close()
    return [Problem(str(directory), f"was replaced {_ATTEMPTS} times while being checked")]


def _verify_opened(
    opened: OpenedDirectory, hashes: bool, progress: ProgressCallback | None = None
) -> list[Problem]:
    from zoo_core.storage.record import CONFIG_NAME, FILES_KEY
    from zoo_core.storage.weights import read_opened

    directory = opened.path
    problems: list[Problem] = []
    try:
        saved = read_opened(opened)
    except WeightsError as err:
        # Name every broken shard; the first error alone only when no shard explains it.
        problems += _shard_problems(opened) or [Problem(str(directory), err.message, hint=err.hint)]
        saved = None
    record = saved.record if saved is not None else _raw_record(opened, CONFIG_NAME)
    files = record.get(FILES_KEY) if isinstance(record, dict) else None
    if files is None:
        problems.append(
            Problem(CONFIG_NAME, "records no content hashes; contents were not checked", "warning")
        )
    else:
        if hashes:
            problems += check_opened(opened, files, progress)
        if isinstance(files, dict):
            for extra in sorted(_weight_files(opened) - set(files)):
                problems.append(Problem(extra, "is not recorded in config.json"))
    if saved is not None:
        problems += _architecture_problems(saved)
    return problems


def _verify_file(path: Path) -> list[Problem]:
    from zoo_core.storage.weights import read_saved

    try:
        saved = read_saved(path)
    except WeightsError as err:
        return [Problem(str(path), err.message, hint=err.hint)]
    try:
        return _unique(_architecture_problems(saved))
    finally:
        saved.close()


def _raw_record(opened: OpenedDirectory, name: str) -> Any:
    import json

    from zoo_core.storage.limits import max_config_bytes

    try:
        data = opened.read(name, limit=max_config_bytes(), what="a config", env="")
        return None if data is None else json.loads(data.decode("utf-8"))
    except (OSError, ValueError, RecursionError, WeightsError):
        return None


def _weight_files(opened: OpenedDirectory) -> set[str]:
    return {
        name
        for name in opened.names()
        if name.endswith(".safetensors") or name.endswith(".safetensors.index.json")
    }


def _shard_problems(opened: OpenedDirectory) -> list[Problem]:
    """Header problems of each weight file, so a broken directory shows every broken shard."""
    from zoo_core.storage.safetensors_io import read_header

    problems = []
    for name in sorted(_weight_files(opened)):
        if name.endswith(".json"):
            continue
        try:
            fd = opened.open(name)
            if fd is not None:
                read_header(opened.path / name, fd=fd)
        except WeightsError as err:
            problems.append(
                Problem(name, message_about(err.message.split(": ", 1)[-1], opened.path))
            )
    return problems


def _architecture_problems(saved: Any) -> list[Problem]:
    from zoo_core.sources.resolve import saved_architecture
    from zoo_core.storage.limits import buffer_problem
    from zoo_core.storage.weights import structure_problems

    try:
        arch, config = saved_architecture(saved)
        model = arch.build_meta(config, where=saved.path)
    except ZooError as err:
        return [Problem(str(saved.path), message_about(err.message, saved.path), hint=err.hint)]
    expected = model.state_dict()
    problems = [
        Problem(str(saved.path), f"does not fit {arch.name}: {p}")
        for p in structure_problems(saved, expected)
    ]
    too_big = buffer_problem(model, expected)
    if too_big is not None:
        problems.append(Problem(str(saved.path), too_big))
    return problems


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
