"""Reading and writing single safetensors files, strictly and fast.

:func:`read_header` parses and checks a file's header before any tensor is
touched: a file from someone else may lie about its header length, its offsets,
its dtypes or its shapes, and every such lie becomes a :class:`WeightsError`
that says what is wrong, instead of a crash, a hang or a huge allocation.

:func:`write_file` writes the standard format (8-byte little-endian header
length, JSON header, raw little-endian tensor data) laid out for aligned
memory maps: the header is padded with spaces (as the format allows) so the
data starts at a 64-byte boundary, and tensors are ordered so that each starts
at a multiple of the largest power of two, up to 64, that divides its byte
size (see :func:`tensor_order`). Every tensor whose size is a multiple of 64
bytes is then 64-byte aligned in the file, hence in a page-aligned map, and
every tensor is aligned to its element size. It computes the file's sha256
while writing: the hash runs in a second thread over the same memory the
writes read from, so recording a content hash costs (almost) no extra time.
Any safetensors reader reads these files.

>>> header = read_header("model.safetensors")          # doctest: +SKIP
>>> header.tensors["linear.weight"].shape
(1, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import struct
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_core.errors import WeightsError
from zoo_core.progress import ProgressCallback

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALIGNMENT",
    "DTYPE_SIZES",
    "FileRecord",
    "Header",
    "TensorInfo",
    "can_write",
    "hash_file",
    "read_header",
    "tensor_order",
    "write_file",
]

# safetensors dtype codes zoo reads, and their element sizes in bytes.
DTYPE_SIZES: dict[str, int] = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "C64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
_FLOATING = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
#: Where zoo's writer starts tensor data, and the alignment it gives every tensor whose byte
#: size is a multiple of it: a cache line, and what BLAS kernels and DMA engines prefer.
ALIGNMENT = 64
# safetensors refuses headers over 100 MB; so do we, before reading them.
MAX_HEADER_BYTES = 100_000_000
MAX_DIMS = 64
_CHUNK = 64 * 1024 * 1024
# Start writing dirty pages back every this many bytes, so the final fsync has little left.
_WRITEBACK_EVERY = 256 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a header describes it."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def is_floating(self) -> bool:
        return self.dtype in _FLOATING


@dataclass
class Header:
    """A checked safetensors header."""

    path: Path
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]
    data_start: int
    size: int


@dataclass(frozen=True)
class FileRecord:
    """A file's content hash and size, as ``config.json`` records them under ``files``."""

    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size}


def _bad(path: Path, what: str) -> WeightsError:
    return WeightsError(
        f"{path} is not a readable safetensors file: {what}",
        hint="the file may be truncated or corrupt; save or download it again",
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


class _Duplicate(Exception):
    pass


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_header(path: str | os.PathLike[str], *, fd: int | None = None) -> Header:
    """Parse and check the header of the safetensors file at ``path``.

    Checks: the length prefix fits the file and the 100 MB limit; the header
    names at most :func:`zoo_core.storage.limits.max_tensors` tensors (counted before
    parsing); the header is UTF-8 JSON without duplicate keys; metadata maps
    strings to strings; every tensor has a known dtype, a non-negative shape
    whose byte size equals its offsets, and the offsets tile the data section
    exactly (no gaps, overlaps or bytes past the end).

    ``fd``, when given, is an open descriptor of the file to read instead of
    opening ``path`` (which then only names it in messages).

    Raises:
        WeightsError: any check fails, or the file cannot be read.
    """
    path = Path(path)
    try:
        if fd is None:
            from zoo_core.storage.snapshot import open_regular

            own = open_regular(path)
            try:
                size, length, raw = _read_raw_header(path, own)
            finally:
                os.close(own)
        else:
            size, length, raw = _read_raw_header(path, fd)
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _bad(path, f"its header is not UTF-8 ({err.reason} at byte {err.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except _Duplicate as dup:
        raise _bad(path, f"its header names {dup.args[0]!r} twice") from None
    except (ValueError, RecursionError) as err:
        raise _bad(path, f"its header is not JSON ({str(err).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise _bad(path, "its header is not a JSON object")
    metadata = data.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _bad(path, "its __metadata__ must map strings to strings")
    tensors = {name: _tensor_info(path, name, entry) for name, entry in data.items()}
    data_start = 8 + length
    _check_layout(path, tensors, size - data_start)
    return Header(path, metadata, tensors, data_start, size)


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, min(length - done, 1 << 30), offset + done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def _read_raw_header(path: Path, fd: int) -> tuple[int, int, bytes]:
    from zoo_core.storage.limits import max_tensors

    size = os.fstat(fd).st_size
    prefix = _pread_exact(fd, 8, 0)
    if len(prefix) < 8:
        raise _bad(path, f"it is {size} bytes long, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        raise _bad(path, f"it claims a {length}-byte header (the limit is 100 MB)")
    if 8 + length > size:
        raise _bad(path, f"it claims a {length}-byte header but holds only {size - 8} bytes after")
    raw = _pread_exact(fd, length, 8)
    if len(raw) < length:
        raise _bad(path, "it was cut short while being read")
    # Every tensor entry spells "data_offsets": counting them is cheap; parsing is not.
    limit = max_tensors()
    if raw.count(b'"data_offsets"') > limit:
        raise WeightsError(
            f"{path} describes more than {limit} tensors; zoo refuses it before parsing",
            hint="if the file is genuine, raise the limit: ZOO_MAX_TENSORS=N (see SECURITY.md)",
        )
    return size, length, raw


def _tensor_info(path: Path, name: str, entry: Any) -> TensorInfo:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _bad(path, f"tensor {name!r} must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise _bad(path, f"tensor {name!r} has an unknown dtype {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(_is_int(d) and d >= 0 for d in shape)
    ):
        raise _bad(path, f"tensor {name!r} has an invalid shape {str(shape)[:80]}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _bad(path, f"tensor {name!r} has invalid data_offsets {str(offsets)[:80]}")
    numel = 1
    for d in shape:
        numel *= d  # Python ints: an absurd shape cannot overflow into a plausible size
    if numel * DTYPE_SIZES[dtype] != offsets[1] - offsets[0]:
        raise _bad(
            path,
            f"tensor {name!r} of shape {shape} and dtype {dtype} needs "
            f"{numel * DTYPE_SIZES[dtype]} bytes, but its offsets span {offsets[1] - offsets[0]}",
        )
    return TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])


def _check_layout(path: Path, tensors: dict[str, TensorInfo], data_size: int) -> None:
    position = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.begin != position:
            what = "overlaps the tensor before it" if info.begin < position else "leaves a gap"
            raise _bad(path, f"tensor {name!r} at offset {info.begin} {what}")
        position = info.end
    if position != data_size:
        if position > data_size:
            raise _bad(
                path, f"its tensors need {position} bytes of data but only {data_size} are there"
            )
        raise _bad(path, f"{data_size - position} bytes follow the last tensor")


def hash_file(
    path: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
    *,
    fd: int | None = None,
) -> FileRecord:
    """sha256 and size of a file, read in chunks (never whole into memory).

    ``fd``, when given, is an open descriptor of the file, read with ``pread``
    (its offset is left alone) instead of opening ``path``. ``progress(done,
    total)`` is called with the bytes hashed so far.
    """
    digest = hashlib.sha256()
    buffer = bytearray(8 * 1024 * 1024)
    view = memoryview(buffer)
    size = 0
    if fd is not None:
        total = os.fstat(fd).st_size
        while n := os.preadv(fd, [buffer], size):
            digest.update(view[:n])
            size += n
            if progress is not None:
                progress(size, max(total, size))
        return FileRecord(digest.hexdigest(), size)
    with open(path, "rb", buffering=0) as f:
        total = os.fstat(f.fileno()).st_size
        while n := f.readinto(buffer):
            digest.update(view[:n])
            size += n
            if progress is not None:
                progress(size, max(total, size))
    return FileRecord(digest.hexdigest(), size)


# Writing ------------------------------------------------------------------------------------


def torch_codes() -> dict[Any, str]:
    import torch

    codes = {
        torch.float64: "F64",
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.int64: "I64",
        torch.int32: "I32",
        torch.int16: "I16",
        torch.int8: "I8",
        torch.uint8: "U8",
        torch.bool: "BOOL",
    }
    for name, code in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2")):
        if hasattr(torch, name):
            codes[getattr(torch, name)] = code
    return codes


def _alias_key(t: torch.Tensor) -> tuple[Any, ...]:
    """What makes two tensors the same tensor (tied weights), not just neighbours in memory."""
    return (str(t.device), t.data_ptr(), t.dtype, tuple(t.shape), t.stride())


def can_write(tensors: dict[str, torch.Tensor]) -> bool:
    """Whether :func:`write_file` handles these tensors (dense, known dtypes, no tied aliases).

    Tensors that merely share a storage (cuDNN packs an RNN's weights into one
    flat CUDA buffer, for example) are written one by one like any other.
    Aliases (two names for one tensor, as tied weights are), exotic dtypes and
    big-endian machines go through huggingface_hub's writer instead, which
    drops aliases and notes them in the metadata.
    """
    import torch

    if sys.byteorder != "little":
        return False
    codes = torch_codes()
    seen: set[tuple[Any, ...]] = set()
    for t in tensors.values():
        if t.dtype not in codes or t.layout != torch.strided or t.is_meta:
            return False
        if t.numel() == 0:
            continue
        key = _alias_key(t)
        if key in seen:
            return False
        seen.add(key)
    return True


def separate_views(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy the tensors that share storage with others without being their alias.

    huggingface_hub's writer refuses storage shared by tensors that are not
    the same tensor ("found no suitable names to remove"). Each such view is
    copied once, and names that alias one view keep sharing the copy, so only
    true aliases are left for that writer to drop.
    """
    by_storage: dict[tuple[str, int], set[tuple[Any, ...]]] = {}
    for t in tensors.values():
        if t.numel():
            storage = (str(t.device), t.untyped_storage().data_ptr())
            by_storage.setdefault(storage, set()).add(_alias_key(t))
    copies: dict[tuple[Any, ...], torch.Tensor] = {}
    out = {}
    for name, t in tensors.items():
        storage = (str(t.device), t.untyped_storage().data_ptr())
        if t.numel() and len(by_storage[storage]) > 1:
            key = _alias_key(t)
            if key not in copies:
                copies[key] = t.clone()
            t = copies[key]
        out[name] = t
    return out


def _bytes_of(t: torch.Tensor) -> memoryview:
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()  # one tensor at a time: never a second copy of the whole model
    if not t.is_contiguous():
        t = t.contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    import torch

    # numpy gives a zero-copy buffer; a uint8 view also covers bfloat16 and bool.
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def _alignment(nbytes: int) -> int:
    """The largest power of two up to :data:`ALIGNMENT` that divides ``nbytes`` (0: all)."""
    return ALIGNMENT if nbytes % ALIGNMENT == 0 else nbytes & -nbytes


def tensor_order(sizes: dict[str, int]) -> list[str]:
    """The order :func:`write_file` lays tensors out in, from each name's byte size.

    Larger alignment first, then larger size, then name. Data starts 64-byte
    aligned, and every tensor of alignment ``a`` follows only tensors whose
    sizes are multiples of ``a`` (those of larger or equal alignment), so it
    starts at a multiple of ``a``: a tensor whose size is a multiple of 64
    starts 64-byte aligned, and every tensor at a multiple of its element size
    (which divides its size). The first tensor after those sized in multiples
    of 64 starts 64-byte aligned too: the largest of the next alignment, the
    matrix a kernel most likely reads. Ties are broken by name, so the order,
    and with it the file's bytes, depend only on the tensors, never on the order
    a state dict lists them in.

    >>> tensor_order({"bias": 20, "weight": 740, "big": 256, "a": 128})
    ['big', 'a', 'weight', 'bias']
    """
    return sorted(sizes, key=lambda name: (-_alignment(sizes[name]), -sizes[name], name))


def _header_bytes(
    tensors: dict[str, torch.Tensor], order: list[str], metadata: dict[str, str] | None
) -> bytes:
    codes = torch_codes()
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))  # the same bytes every time
    offset = 0
    for name in order:
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        header[name] = {
            "dtype": codes[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Trailing spaces are part of the JSON text (the format's own padding): the data that
    # follows starts on a 64-byte boundary of the file, so of any page-aligned map of it.
    text += b" " * (-(8 + len(text)) % ALIGNMENT)
    return struct.pack("<Q", len(text)) + text


def _start_writeback(fd: int, start: int, length: int) -> None:
    """Ask Linux to start writing a range back now (sync_file_range), so fsync waits less."""
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, start, length, 2)  # SYNC_FILE_RANGE_WRITE: start, do not wait


_SFR: list[Any] = []


def _sync_file_range() -> Any:
    if not _SFR:
        fn = None
        if sys.platform.startswith("linux"):
            import ctypes
            import ctypes.util

            name = ctypes.util.find_library("c")
            libc = ctypes.CDLL(name, use_errno=True) if name else None
            fn = getattr(libc, "sync_file_range", None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        _SFR.append(fn)
    return _SFR[0]


@dataclass
class _Hasher:
    """sha256 in a second thread: hashlib releases the GIL, so it overlaps the writes."""

    digest: Any = field(default_factory=hashlib.sha256)
    pending: queue.Queue[memoryview | None] = field(default_factory=lambda: queue.Queue(8))

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="zoo-sha256", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.pending.get()) is not None:
            self.digest.update(chunk)

    def feed(self, chunk: memoryview) -> None:
        self.pending.put(chunk)

    def finish(self) -> str:
        self.pending.put(None)
        self.thread.join()
        return self.digest.hexdigest()


def write_file(
    path: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> FileRecord:
    """Write ``tensors`` as a new safetensors file at ``path`` and return its hash and size.

    The file is created with mode ``0o666`` minus the umask and must not exist.
    Tensors on other devices are copied to the CPU one at a time. Check
    :func:`can_write` first. ``progress(done, total)`` counts tensor bytes written.

    >>> write_file("w.safetensors", {"w": torch.zeros(2)}, {"format": "pt"})  # doctest: +SKIP
    FileRecord(sha256='...', size=136)
    """
    order = tensor_order({k: t.numel() * t.element_size() for k, t in tensors.items()})
    head = _header_bytes(tensors, order, metadata)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    hasher = _Hasher()
    written = 0
    flushed = 0
    data_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    try:
        with open(fd, "wb", buffering=0, closefd=True) as f:
            for chunk in _chunks(head, tensors, order):
                hasher.feed(chunk)
                view = chunk
                while view:
                    n = f.write(view)
                    view = view[n:]
                written += len(chunk)
                if progress is not None:
                    progress(written - len(head), data_bytes)
                if written - flushed >= _WRITEBACK_EVERY:
                    _start_writeback(f.fileno(), flushed, written - flushed)
                    flushed = written
    except BaseException:
        hasher.finish()
        raise
    return FileRecord(hasher.finish(), written)


def _chunks(head: bytes, tensors: dict[str, torch.Tensor], order: list[str]) -> Any:
    yield memoryview(head)
    for name in order:
        data = _bytes_of(tensors[name])
        for start in range(0, len(data), _CHUNK):
            yield data[start : start + _CHUNK]
