"""Reading safetensors files onto a GPU: threaded reads into a ring of pinned buffers.

``safetensors.torch.load_file(device="cuda")`` reads each tensor from a
memory map into pageable memory and copies it to the device, one after the
other: the copy waits for the read and the read for the copy, and a copy from
pageable memory is itself staged by the driver. This pipeline overlaps them:

1. the byte ranges to read are cut into *chunks* of at most one buffer
   (neighbouring tensors share a chunk, a large tensor spans several);
2. reader threads take chunks in file order and ``os.preadv`` each into a free
   buffer of a small *ring* (pinned host memory for a CUDA target, so the copy
   runs at full bus speed and without the CPU);
3. the calling thread copies each filled buffer to the destination tensors
   asynchronously on a side CUDA stream, records an event, and hands the
   buffer back to the ring; a reader waits for that event before it reuses
   the buffer;
4. a tensor whose last byte has been copied is cast (on the device) if a
   floating ``dtype`` was asked for. Everything is on the device, and
   synchronised, when :func:`load_tensors` returns.

Steps 1 to 4 run just the same with a CPU target (plain buffers, plain
copies): that is how the tests check the reader and the ring bit for bit
without a GPU. The load path uses the pipeline only for CUDA devices (the CPU
path keeps safetensors' memory map, which is already free); ``ZOO_GPU_PIPELINE=0``
turns it off.

>>> import torch
>>> from zoo_core.storage.safetensors_io import read_header
>>> header = read_header("model.safetensors")                 # doctest: +SKIP
>>> tensors = read_files({header.path: (header, list(header.tensors))},
...                      torch.device("cuda"), dtype=torch.bfloat16)  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import WeightsError
from zoo_core.storage.safetensors_io import Header

__all__ = [
    "DEFAULT_SLOT_BYTES",
    "TensorRead",
    "load_tensors",
    "pipeline_enabled",
    "read_files",
    "torch_dtype",
]

#: Size of one ring buffer. Big enough that a copy runs at full bus speed, small
#: enough that the ring (``2 x threads`` buffers) stays a few hundred MiB of pinned memory.
DEFAULT_SLOT_BYTES = 8 * 1024 * 1024
_MAX_THREADS = 8

_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "C64": "complex64",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}


def torch_dtype(code: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype code (``"BF16"`` -> ``torch.bfloat16``)."""
    return getattr(torch, _DTYPES[code])


def pipeline_enabled(device: torch.device | None) -> bool:
    """Whether loads to ``device`` go through this pipeline: CUDA, unless ``ZOO_GPU_PIPELINE=0``."""
    return (
        device is not None
        and device.type == "cuda"
        and os.environ.get("ZOO_GPU_PIPELINE", "1") != "0"
    )


@dataclass(frozen=True)
class TensorRead:
    """One tensor to read: ``nbytes`` at absolute ``offset`` of the open file ``fd``.

    ``source`` names the file in error messages.
    """

    key: str
    fd: int
    offset: int
    nbytes: int
    dtype: str
    shape: tuple[int, ...]
    source: str = ""


@dataclass
class _Chunk:
    fd: int
    offset: int
    length: int
    source: str
    # (index into the reads, offset in the destination, offset in the chunk, bytes)
    pieces: list[tuple[int, int, int, int]]


class _Slot:
    """One ring buffer: a host tensor, a writable view of its bytes, and the copy using it."""

    def __init__(self, nbytes: int, pinned: bool) -> None:
        self.tensor = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
        # os.preadv wants a writable buffer; torch has no buffer protocol without numpy.
        raw = (ctypes.c_char * nbytes).from_address(self.tensor.data_ptr()) if nbytes else b""
        self.view = memoryview(raw).cast("B") if nbytes else memoryview(bytearray())
        self.event: Any = None


def _chunks(reads: Sequence[TensorRead], slot_bytes: int) -> list[_Chunk]:
    """Cut the reads into chunks of at most ``slot_bytes``, in file order."""
    chunks: list[_Chunk] = []
    order = sorted(range(len(reads)), key=lambda i: (reads[i].fd, reads[i].offset))
    current: _Chunk | None = None
    for i in order:
        read = reads[i]
        done = 0
        while done < read.nbytes:
            position = read.offset + done
            if (
                current is None
                or current.fd != read.fd
                or current.offset + current.length != position
                or current.length == slot_bytes
            ):
                current = _Chunk(read.fd, position, 0, read.source, [])
                chunks.append(current)
            take = min(read.nbytes - done, slot_bytes - current.length)
            current.pieces.append((i, done, current.length, take))
            current.length += take
            done += take
    return chunks


def _read_chunk(chunk: _Chunk, view: memoryview) -> None:
    done = 0
    while done < chunk.length:
        n = os.preadv(chunk.fd, [view[done : chunk.length]], chunk.offset + done)
        if n == 0:
            raise WeightsError(
                f"{chunk.source or 'a weights file'} ended at byte {chunk.offset + done}, "
                f"before the tensor data its header promises",
                hint="the file was truncated or replaced while loading; load it again",
            )
        done += n


def load_tensors(
    reads: Sequence[TensorRead],
    device: torch.device | str,
    *,
    dtype: torch.dtype | None = None,
    threads: int | None = None,
    slot_bytes: int = DEFAULT_SLOT_BYTES,
    slots: int | None = None,
) -> dict[str, torch.Tensor]:
    """Read ``reads`` onto ``device`` through the reader threads and the buffer ring.

    Floating tensors are cast to ``dtype`` on the device; others keep theirs.
    ``threads`` defaults to the CPU count (at most 8), ``slots`` (the ring's
    length) to twice the threads; buffers are pinned for a CUDA device.

    Raises:
        WeightsError: a file ends before the data its header promises, or cannot be read.

    >>> reads = [TensorRead("w", fd, 128, 24, "F32", (2, 3))]     # doctest: +SKIP
    >>> load_tensors(reads, "cpu", threads=2)["w"].shape           # doctest: +SKIP
    torch.Size([2, 3])
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if slot_bytes < 1:
        raise ValueError("slot_bytes must be positive")
    total = sum(r.nbytes for r in reads)
    # A small load gets small buffers: never pin more than it reads.
    slot_bytes = min(slot_bytes, max(total, 1))
    chunks = _chunks(reads, slot_bytes)
    threads = max(1, min(threads or min(os.cpu_count() or 1, _MAX_THREADS), len(chunks) or 1))
    slots = max(1, min(slots or 2 * threads, len(chunks) or 1))

    remaining = [r.nbytes for r in reads]
    flat: list[torch.Tensor | None] = [None] * len(reads)
    out: dict[str, torch.Tensor] = {}
    stream = torch.cuda.Stream(device) if cuda else None
    current = torch.cuda.current_stream(device) if cuda else None

    def allocate(i: int) -> torch.Tensor:
        read = reads[i]
        tensor = torch.empty(read.shape, dtype=torch_dtype(read.dtype), device=device)
        flat[i] = tensor.reshape(-1).view(torch.uint8)
        out[read.key] = tensor
        return flat[i]

    def finish(i: int) -> None:
        tensor = out[reads[i].key]
        if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
            if current is not None:
                current.wait_stream(stream)  # the cast (on the current stream) reads copied bytes
            out[reads[i].key] = tensor.to(dtype)
        flat[i] = None

    for i, read in enumerate(reads):
        if read.nbytes == 0:
            allocate(i)
            finish(i)
    if not chunks:
        return out

    free: queue.Queue[_Slot | None] = queue.Queue()
    for _ in range(slots):
        free.put(_Slot(slot_bytes, pinned=cuda))
    filled: queue.Queue[tuple[int, _Slot, BaseException | None]] = queue.Queue()
    next_chunk = iter(range(len(chunks)))
    lock = threading.Lock()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            with lock:
                index = next(next_chunk, None)
            if index is None:
                return
            slot = free.get()
            if slot is None or stop.is_set():
                return
            try:
                if slot.event is not None:
                    slot.event.synchronize()  # its last copy to the device must be done
                _read_chunk(chunks[index], slot.view)
            except BaseException as err:  # handed to the calling thread, which raises it
                filled.put((index, slot, err))
                return
            filled.put((index, slot, None))

    workers = [threading.Thread(target=reader, daemon=True) for _ in range(threads)]
    try:
        for worker in workers:
            worker.start()
        for _ in range(len(chunks)):
            index, slot, err = filled.get()
            if err is not None:
                if isinstance(err, OSError):
                    chunk = chunks[index]
                    raise WeightsError(
                        f"cannot read {chunk.source or 'a weights file'}: {err.strerror or err}"
                    ) from None
                raise err
            _copy(chunks[index], slot, flat, allocate, stream, current)
            completed = []
            for i, _, _, n in chunks[index].pieces:
                remaining[i] -= n
                if remaining[i] == 0:
                    completed.append(i)
            if stream is not None:
                slot.event = torch.cuda.Event()
                slot.event.record(stream)
            free.put(slot)
            for i in completed:
                finish(i)
        if stream is not None:
            current.wait_stream(stream)
            stream.synchronize()
    finally:
        stop.set()
        for _ in workers:
            free.put(None)  # wakes a reader waiting for a buffer
        for worker in workers:
            if worker.ident is not None:  # started
                worker.join()
    return out


def _copy(
    chunk: _Chunk,
    slot: _Slot,
    flat: list[torch.Tensor | None],
    allocate: Any,
    stream: Any,
    current: Any,
) -> None:
    targets = []
    fresh = False
    for i, dest_offset, chunk_offset, n in chunk.pieces:
        dest = flat[i]
        if dest is None:
            dest, fresh = allocate(i), True
        source = slot.tensor[chunk_offset : chunk_offset + n]
        targets.append((dest[dest_offset : dest_offset + n], source))
    if stream is None:
        for dest, src in targets:
            dest.copy_(src)
        return
    if fresh:
        # New memory may still be in use by work queued on the current stream (a cast
        # that freed it): the side stream starts writing after that work.
        stream.wait_stream(current)
    with torch.cuda.stream(stream):
        for dest, src in targets:
            dest.copy_(src, non_blocking=True)


def read_files(
    files: Mapping[str | os.PathLike[str], tuple[Header, Sequence[str]]],
    device: torch.device | str,
    *,
    dtype: torch.dtype | None = None,
    **tuning: Any,
) -> dict[str, torch.Tensor]:
    """Read the named tensors of each safetensors file, whose checked header is given.

    ``files`` maps a path to ``(header, keys)``. Each file is opened once and
    must still be the size its header was read from. ``tuning`` goes to
    :func:`load_tensors` (``threads``, ``slot_bytes``, ``slots``).

    Raises:
        WeightsError: a file is missing, unreadable, or changed since its header was read.
    """
    fds: list[int] = []
    try:
        reads = []
        for path, (header, keys) in files.items():
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as err:
                raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None
            fds.append(fd)
            if os.fstat(fd).st_size != header.size:
                raise WeightsError(
                    f"{path} changed while loading (it is no longer {header.size} bytes)",
                    hint="load it again once whatever writes it has finished",
                )
            for key in keys:
                info = header.tensors[key]
                reads.append(
                    TensorRead(
                        key,
                        fd,
                        header.data_start + info.begin,
                        info.end - info.begin,
                        info.dtype,
                        info.shape,
                        str(Path(path)),
                    )
                )
        return load_tensors(reads, device, dtype=dtype, **tuning)
    finally:
        for fd in fds:
            os.close(fd)
