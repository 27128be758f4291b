"""Every rank of a sharded load reads the same model: one snapshot, agreed on before reading.

Each rank of a ``torchrun`` job opens the source itself (its own snapshot, see
:mod:`zoo_core.storage.snapshot`), and reads only its own byte ranges. Two
things could then give the ranks different models: a save replacing the
directory between the ranks' opens (rank 0 would hold one save's half and rank
1 another's), and files that differ between nodes at the same path (a per-node
copy that was changed on one node). :func:`agree_on_source` rules both out
before any tensor is read:

1. Every rank opens the source; a failure on one fails all (no hang).
2. The ranks compare fingerprints of what they opened (``all_gather_object``):
   the sha256 of the ``config.json`` bytes (which record every weight file's
   sha256), and the layout of every safetensors header. If they differ and a
   rank's snapshot was replaced by a save meanwhile, every rank opens the
   source again, at most :data:`ATTEMPTS` times; if they differ otherwise, the
   ranks hold different models and every rank raises a :class:`WeightsError`.
3. The files are checked against the sha256 ``config.json`` records, each
   physical file once (by the ranks that share it: on one node the ranks split
   the work, a node with its own copy checks its own), and any mismatch fails
   every rank. A variant's files were checked against the publisher's pin
   already and are not hashed again.

>>> found = agree_on_source(mesh, lambda: resolve("big/"))     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from zoo_core.distributed.sharding import agreement
from zoo_core.errors import WeightsError
from zoo_core.storage.hashes import check_opened
from zoo_core.storage.record import FILES_KEY

__all__ = ["ATTEMPTS", "agree_on_source", "fingerprint"]

#: How often the ranks open the source again when saves keep replacing it under them.
ATTEMPTS = 10


def _node() -> str:
    """This machine: its host name and boot id (inode numbers mean nothing across machines)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def fingerprint(saved: Any) -> dict[str, Any] | None:
    """What must be equal on every rank for them to hold one model (None: nothing saved).

    ``config``: the sha256 of the ``config.json`` bytes; ``layout``: the sha256
    of every safetensors header (names, dtypes, shapes, offsets, metadata);
    ``replaced``: whether a save replaced the directory since it was opened;
    ``files``: per recorded file, its identity on this node (who may hash it).
    """
    if saved is None:
        return None
    layout = hashlib.sha256()
    for file in saved.files:
        header = saved.headers.get(file)
        if header is None:
            continue
        tensors = {k: [v.dtype, list(v.shape), v.begin, v.end] for k, v in header.tensors.items()}
        layout.update(json.dumps([file.name, header.metadata, tensors], sort_keys=True).encode())
    opened = saved.opened
    config = saved.config_bytes
    files: dict[str, list[Any]] = {}
    recorded = saved.record.get(FILES_KEY)
    if opened is not None and isinstance(recorded, dict):
        node = _node()
        for name, entry in sorted(recorded.items()):
            fd = opened.open(name) if isinstance(name, str) else None
            if fd is None:
                continue  # missing: the hash check reports it
            st = os.fstat(fd)
            size = entry.get("size", 0) if isinstance(entry, dict) else 0
            files[name] = [node, st.st_dev, st.st_ino, st.st_mtime_ns, size]
    return {
        "config": None if config is None else hashlib.sha256(config).hexdigest(),
        "layout": layout.hexdigest(),
        "replaced": bool(opened is not None and opened.replaced()),
        "files": files,
    }


def _gather(group: Any, value: Any) -> list[Any]:
    import torch.distributed as dist

    # Between ranks of one job (trusted peers): small dicts of strings and numbers.
    out: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, value, group=group)
    return out


def _assign(prints: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Which rank hashes which file: each physical file once, spread by bytes (same on all)."""
    holders: dict[tuple[Any, ...], list[tuple[int, str]]] = {}
    sizes: dict[tuple[Any, ...], int] = {}
    for rank, found in enumerate(prints):
        for name, (node, dev, ino, mtime, size) in found["files"].items():
            key = (node, dev, ino, mtime, name)
            holders.setdefault(key, []).append((rank, name))
            sizes[key] = size if isinstance(size, int) else 0
    load = [0] * len(prints)
    work: dict[int, list[str]] = {rank: [] for rank in range(len(prints))}
    for key in sorted(holders, key=lambda k: (-sizes[k], repr(k))):
        rank, name = min(holders[key], key=lambda rn: (load[rn[0]], rn[0]))
        load[rank] += sizes[key]
        work[rank].append(name)
    return work


def agree_on_source(mesh: Any, open_source: Callable[[], Any]) -> Any:
    """Open the source on every rank until all ranks hold the same snapshot; check its files.

    ``open_source()`` resolves the source on this rank (a
    :class:`~zoo_core.sources.resolve.Source`: ``saved`` and ``kind``). Call
    on every rank. Returns this rank's source, which the caller closes.

    Raises:
        WeightsError: the ranks opened different models (per-node copies that
            differ), a rank's files do not match ``config.json``, or saves kept
            replacing the directory for :data:`ATTEMPTS` tries; on every rank.
        DistributedError: another rank failed to open it.
    """
    import torch.distributed as dist

    group = mesh.get_group()
    rank = dist.get_rank(group)
    dist.barrier(group=group)  # open at (nearly) the same moment: fewer saves in between
    for attempt in range(ATTEMPTS):
        found = None
        try:
            with agreement(mesh):  # a failure on any rank, fingerprint included, fails all
                found = open_source()
                mine = fingerprint(found.saved)
            prints = _gather(group, mine)
        except BaseException:
            if found is not None:
                found.close()
            raise
        if prints[0] is None or all(
            (p["config"], p["layout"]) == (prints[0]["config"], prints[0]["layout"]) for p in prints
        ):
            try:
                _check_files(group, rank, found, prints)
            except BaseException:
                found.close()
                raise
            return found
        # Asked again now, after every rank opened: a save landing between two ranks' opens
        # leaves the first rank's snapshot replaced only by the time the second one opened.
        opened = found.saved.opened if found.saved is not None else None
        replaced_now = _gather(group, bool(opened is not None and opened.replaced()))
        found.close()
        if not any(p["replaced"] for p in prints) and not any(replaced_now):
            raise _different(found, prints)
        time.sleep(0.005 * (attempt + 1))  # a save replaced it under a rank: open again
    raise WeightsError(
        f"{found.display} was replaced by saves {ATTEMPTS} times while the ranks opened it",
        hint="wait until the saves into it finish, then load again",
    )


def _different(found: Any, prints: list[dict[str, Any]]) -> WeightsError:
    configs = ", ".join(
        f"rank {r}: {(p['config'] or p['layout'])[:12]}" for r, p in enumerate(prints)
    )
    return WeightsError(
        f"the ranks opened different models at {found.display} (config.json sha256 {configs})",
        hint="every rank must read the same files: a per-node copy differs; copy the model "
        "to every node again",
    )


def _check_files(group: Any, rank: int, found: Any, prints: list[dict[str, Any]]) -> None:
    """Hash each recorded file once (split between the ranks that share it); fail all on any
    mismatch."""
    saved = found.saved
    recorded = None if saved is None else saved.record.get(FILES_KEY)
    if found.kind == "variant" or saved is None or saved.opened is None:
        return  # a variant was checked against its pin; nothing else records hashes
    if not isinstance(recorded, dict):
        return
    mine = _assign(prints)[rank]
    try:
        problems = [
            f"{p.where}: {p.message}"
            for p in check_opened(saved.opened, {n: recorded[n] for n in mine if n in recorded})
        ]
    except Exception as err:  # never leave the other ranks waiting in the gather below
        problems = [f"{type(err).__name__}: {err}"]
    told = _gather(group, problems)
    bad = [(r, text) for r, texts in enumerate(told) for text in texts]
    if bad:
        who, text = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise WeightsError(
            f"rank {who}'s copy of {found.display} does not match its config.json: {text}{more}",
            hint="the files changed after they were saved, or a node's copy differs; "
            "save or copy the model again",
        )
