"""Loading and saving zoo models sharded over ``torch.distributed``.

Every rank of a ``torchrun`` job calls the same function with the same
arguments and a :class:`~torch.distributed.device_mesh.DeviceMesh`:

>>> import torch.distributed as dist
>>> from torch.distributed.device_mesh import init_device_mesh
>>> mesh = init_device_mesh("cpu", (dist.get_world_size(),))             # doctest: +SKIP
>>> model = zoo_core.load_model("big/", mesh=mesh)                        # doctest: +SKIP
>>> model = zoo_core.load_model("tt/", mesh=mesh, parallel="tp")          # doctest: +SKIP
>>> zoo_core.save_model(model, "copy/")      # on every rank; rank 0 writes  # doctest: +SKIP

The engine is torch's own: the model is built on ``meta``, sharded there by
FSDP2's ``fully_shard`` (``parallel="fsdp"``) or by ``parallelize_module``
following the tensor-parallel plan its class declares (``parallel="tp"``),
and only then given memory, each rank allocating its local shards alone. The
shards are filled by reading exactly the byte ranges each rank owns from the
safetensors files, with ``pread`` straight into the shard's own memory: as
fast as DCP's ``HuggingFaceStorageReader`` and ``safe_open`` slices, but
nothing of the file stays mapped, so a rank's memory grows by its shards
alone (half a full load on two ranks, where the others take a whole one; see
``benchmarks/bench_distributed.py``). DTensor's placement (the chunk list DCP
plans with) says which bytes those are.

A tensor-parallel plan is data on the model class, in the spirit of
transformers' ``base_model_tp_plan``: module name patterns (``*`` matches one
name part) mapped to ``"colwise"``, ``"rowwise"`` or ``"replicate"``::

    class TinyTransformer(ZooModel):
        tp_plan = {"encoder.layers.*.linear1": "colwise",
                   "encoder.layers.*.linear2": "rowwise"}

A mistake found on one rank (a file it cannot reach, a plan that does not
fit) is shared with the others before any further collective, so every rank
raises a :class:`~zoo_core.errors.ZooError` instead of hanging.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from zoo_core.errors import DistributedError, UsageError, WeightsError
from zoo_core.storage.safetensors_io import DTYPE_SIZES, Header, TensorInfo, read_header
from zoo_core.storage.weights import SavedModel, check_structure
from zoo_core.storage.writer import write_directory

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

__all__ = [
    "PARALLEL_MODES",
    "READERS",
    "TP_STYLES",
    "LoadStats",
    "agreement",
    "apply_parallel",
    "create_sharded",
    "is_sharded",
    "load_sharded",
    "open_sharded",
    "plan_problems",
    "save_sharded",
    "tp_plan",
]

PARALLEL_MODES = ("fsdp", "tp")
TP_STYLES = ("colwise", "rowwise", "replicate")
#: How local shards are read: zoo's ``pread`` of owned byte ranges (the default),
#: ``safe_open(...).get_slice(name)[...]``, or DCP's ``HuggingFaceStorageReader``.
READERS = ("pread", "slice", "dcp")
# A cast or a copy to an accelerator goes through a host buffer of at most this size.
_BLOCK_BYTES = 32 * 1024 * 1024

# safetensors dtype codes as torch dtypes (the format is little-endian).
_TORCH_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass
class LoadStats:
    """What one rank read while filling its shards (for benchmarks and ``zoo load --json``)."""

    bytes_read: int = 0
    tensors: int = 0


# --- plans --------------------------------------------------------------------


def tp_plan(cls: type) -> dict[str, str]:
    """The tensor-parallel plan a model class declares (``tp_plan``), or an empty one."""
    plan = getattr(cls, "tp_plan", None)
    return dict(plan) if isinstance(plan, Mapping) else {}


def _matches(pattern: str, name: str) -> bool:
    # parallelize_module matches one name part per pattern part, as fnmatch does here.
    parts, names = pattern.split("."), name.split(".")
    return len(parts) == len(names) and all(map(fnmatchcase, names, parts))


def plan_problems(
    model: nn.Module, plan: Mapping[str, str] | None = None, *, mesh_size: int = 2
) -> list[str]:
    """Every way a tensor-parallel plan does not fit ``model`` on a mesh of ``mesh_size``.

    Checked: the plan maps strings to a style in :data:`TP_STYLES`; each pattern
    names at least one module; sharded modules are ``nn.Linear`` or
    ``nn.Embedding`` (what torch's styles support); the sharded dimension
    divides by ``mesh_size``. Works on a model built on ``meta``.

    >>> plan_problems(model, {"encoder.layers.*.linear9": "colwise"})   # doctest: +SKIP
    ["'encoder.layers.*.linear9' matches no module"]
    """
    if plan is None:
        plan = tp_plan(type(model))
    if not isinstance(plan, Mapping):
        return [f"tp_plan must be a dict of module patterns to styles, not {type(plan).__name__}"]
    problems = []
    modules = dict(model.named_modules())
    for pattern, style in plan.items():
        if not isinstance(pattern, str) or not isinstance(style, str):
            problems.append(f"entry {pattern!r}: {style!r} must map a string to a string")
            continue
        if style not in TP_STYLES:
            problems.append(f"{pattern!r} has style {style!r}; use one of {', '.join(TP_STYLES)}")
            continue
        names = [n for n in modules if n and _matches(pattern, n)]
        if not names:
            problems.append(f"{pattern!r} matches no module")
            continue
        if style == "replicate":
            continue
        for name in names:
            problem = _shard_problem(name, modules[name], style, mesh_size)
            if problem:
                problems.append(problem)
    return problems


def _shard_problem(name: str, module: nn.Module, style: str, mesh_size: int) -> str | None:
    if isinstance(module, nn.Linear):
        # colwise splits the output features (weight dim 0), rowwise the inputs (dim 1).
        what, size = (
            ("out_features", module.out_features)
            if style == "colwise"
            else ("in_features", module.in_features)
        )
    elif isinstance(module, nn.Embedding):
        what, size = (
            ("embedding_dim", module.embedding_dim)
            if style == "colwise"
            else ("num_embeddings", module.num_embeddings)
        )
    else:
        return (
            f"{name} is a {type(module).__name__}; {style} shards only nn.Linear and nn.Embedding"
        )
    if size % mesh_size:
        return f"{name}: {style} splits {what}={size}, which a mesh of {mesh_size} does not divide"
    return None


# --- agreeing on failure ------------------------------------------------------------


def _group(mesh: DeviceMesh) -> Any:
    from torch.distributed.device_mesh import DeviceMesh

    if not isinstance(mesh, DeviceMesh):
        raise UsageError(
            f"mesh must be a torch.distributed DeviceMesh, not {type(mesh).__name__}",
            hint="mesh = torch.distributed.device_mesh.init_device_mesh('cuda', (world_size,))",
        )
    if mesh.ndim != 1:
        raise UsageError(
            f"zoo shards over a 1-D mesh; this one has {mesh.ndim} dimensions",
            hint="pass one dimension of it, e.g. mesh['tp']",
        )
    return mesh.get_group()


@contextmanager
def agreement(mesh: DeviceMesh) -> Iterator[None]:
    """Run local work, then agree across ``mesh`` whether any rank failed.

    Put everything that can fail on one rank only (files, configs, plans) in
    the block and no collective: the block ends with one ``all_gather_object``
    on every rank, after which a rank whose work failed re-raises its own
    error and the others raise :class:`DistributedError` naming it. So no rank
    is left waiting in a collective its peers never reach.

    >>> with agreement(mesh):                               # doctest: +SKIP
    ...     saved = read_saved(path)
    """
    import torch.distributed as dist

    group = _group(mesh)
    failure: BaseException | None = None
    try:
        yield
    except Exception as err:
        failure = err
    mine = None
    if failure is not None:
        text = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
        mine = (type(failure).__name__, text[:300], getattr(failure, "hint", None))
    # Between ranks of one job (trusted peers), small tuples of strings.
    reports: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(reports, mine, group=group)
    if failure is not None:
        raise failure
    failed = [(rank, r) for rank, r in enumerate(reports) if r is not None]
    if failed:
        rank, (kind, text, hint) = failed[0]
        more = f" (and {len(failed) - 1} more ranks)" if len(failed) > 1 else ""
        raise DistributedError(
            f"rank {rank} of {len(reports)} failed{more}: {text}",
            hint=hint or f"see rank {rank}'s output ({kind})",
        )


# --- sharding -----------------------------------------------------------------


def _target_device(mesh: DeviceMesh, device: torch.device | None) -> torch.device:
    kind = mesh.device_type
    if device is not None and device.type != kind:
        raise UsageError(
            f"device {str(device)!r} does not match the mesh, which is on {kind!r}",
            hint="leave device unset: each rank uses its mesh device (torch.cuda.set_device)",
        )
    if device is not None:
        return device
    if kind == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(kind)


def _check_parallel(parallel: str) -> None:
    if parallel not in PARALLEL_MODES:
        raise UsageError(
            f"unknown parallel {parallel!r}", hint=f"use one of {', '.join(PARALLEL_MODES)}"
        )


def _checked_plan(model: nn.Module, parallel: str, mesh_size: int) -> dict[str, str]:
    if parallel != "tp":
        return {}
    cls = type(model)
    plan = tp_plan(cls)
    if not plan:
        raise UsageError(
            f"{cls.__qualname__} declares no tensor-parallel plan (tp_plan)",
            hint='load it with parallel="fsdp", or declare tp_plan on the class',
        )
    problems = plan_problems(model, plan, mesh_size=mesh_size)
    if problems:
        raise UsageError(
            f"the tensor-parallel plan of {cls.__qualname__} does not fit: " + "; ".join(problems),
            hint="fix tp_plan on the class, or use a mesh size that divides the sharded sizes",
        )
    return plan


def _shard(model: nn.Module, mesh: DeviceMesh, parallel: str, plan: Mapping[str, str]) -> None:
    """Apply FSDP2 or tensor parallelism; on ``meta`` neither moves any data."""
    if parallel == "tp":
        from torch.distributed.tensor.parallel import (
            ColwiseParallel,
            RowwiseParallel,
            parallelize_module,
        )

        styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
        torch_plan = {k: styles[v]() for k, v in plan.items() if v in styles}
        # src_data_rank=None: keep local (meta) data instead of scattering from rank 0.
        parallelize_module(model, mesh, torch_plan, src_data_rank=None)
        return
    from torch.distributed.fsdp import fully_shard

    # One FSDP group per repeated block (each item of a ModuleList), as torchtitan
    # does, so a forward all-gathers one block at a time; the root takes the rest.
    for module in list(model.modules()):
        if isinstance(module, nn.ModuleList):
            for block in module:
                if any(True for _ in block.parameters()):
                    fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def apply_parallel(model: nn.Module, mesh: DeviceMesh, parallel: str) -> None:
    """Shard a built model in place over ``mesh``, as loading does: FSDP2, or its ``tp_plan``.

    Raises:
        UsageError: an unknown ``parallel``, or a plan that is missing or does not fit.
    """
    _check_parallel(parallel)
    _shard(model, mesh, parallel, _checked_plan(model, parallel, mesh.size()))


def is_sharded(model: nn.Module) -> bool:
    """Whether any parameter of ``model`` is a DTensor (sharded or placed by a mesh)."""
    # Without torch.distributed.tensor imported there can be no DTensor: don't import it.
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and any(isinstance(p, module.DTensor) for p in model.parameters())


# --- loading ------------------------------------------------------------------


def load_sharded(
    arch: Any,
    config: Any,
    saved: SavedModel,
    *,
    mesh: DeviceMesh,
    parallel: str = "fsdp",
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    reader: str = "pread",
    stats: LoadStats | None = None,
) -> nn.Module:
    """Build ``arch`` on meta, shard it over ``mesh`` and read each rank's shards.

    ``arch`` is a :class:`zoo_core.models.build.Architecture`; ``saved`` a source
    already opened (every rank opens its own). Call it on every rank. Returns
    the model in eval mode.

    Raises:
        WeightsError: the files do not fit the model or cannot be read (on any rank).
        UsageError: a bad ``parallel``, mesh or plan.
        DistributedError: another rank failed.
    """
    _group(mesh)  # a mistake every rank makes alike: raised before any collective
    _check_parallel(parallel)
    if reader not in READERS:
        raise UsageError(f"unknown reader {reader!r}", hint=f"use one of {', '.join(READERS)}")
    target = _target_device(mesh, device)
    with agreement(mesh):
        model = arch.build_meta(config, where=saved.path)
        check_structure(saved, model.state_dict())
        plan = _checked_plan(model, parallel, mesh.size())
        if dtype is not None:
            model.to(dtype)
        computed = _unsaved_buffers(arch, model, config, target, dtype)
    _shard(model, mesh, parallel, plan)
    stats = stats if stats is not None else LoadStats()
    with agreement(mesh):
        model.to_empty(device=target)  # each rank allocates its local shards only
        for name, value in computed.items():
            module_name, _, buffer_name = name.rpartition(".")
            model.get_submodule(module_name).register_buffer(buffer_name, value, persistent=False)
        if reader != "dcp":
            _fill(model.state_dict(), saved, reader, stats)
    if reader == "dcp":
        _fill_dcp(model, saved, mesh, stats)
    return model.eval()


def open_sharded(
    arch: Any,
    config: Any,
    saved: SavedModel | None,
    mesh: DeviceMesh,
    parallel: str,
    seed: int | None,
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_sharded` for a saved source, :func:`create_sharded` for a name (``saved=None``).

    Returns the model and the facts ``zoo_core.api.open_model`` reports about
    the load (files, ``bytes_read`` by this rank, ``parallel``, ``mesh_size``).
    """
    details: dict[str, Any] = {"parallel": parallel, "mesh_size": mesh.size()}
    if saved is None:
        model = create_sharded(
            arch, config, mesh=mesh, parallel=parallel, seed=seed, device=device, dtype=dtype
        )
        return model, details
    stats = LoadStats()
    model = load_sharded(
        arch, config, saved, mesh=mesh, parallel=parallel, device=device, dtype=dtype, stats=stats
    )
    files = [str(f) for f in saved.files]
    return model, {"files": files, **saved.provenance(), **details, "bytes_read": stats.bytes_read}


class _EmptyOnMeta(TorchFunctionMode):
    """Send ``torch.empty`` to ``meta``: where ``torch.nn`` layers allocate their parameters."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is torch.empty:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def _unsaved_buffers(
    arch: Any, model: nn.Module, config: Any, device: torch.device, dtype: torch.dtype | None
) -> dict[str, torch.Tensor]:
    """Values of the non-persistent buffers (in no file), computed without the parameters.

    They are computed by building the model once more, but with ``torch.empty``
    (how ``torch.nn`` layers allocate parameters) sent to ``meta``: a rank that
    must hold half a model does not allocate, even briefly, a whole one. When
    a buffer still ends up on ``meta`` (or the build fails that way), the
    model's usual real build computes them instead.
    """
    persistent = set(model.state_dict())
    names = [n for n, _ in model.named_buffers() if n not in persistent]
    if not names:
        return {}
    values: dict[str, torch.Tensor] = {}
    try:
        with torch.device(device), torch.random.fork_rng(devices=[]), _EmptyOnMeta():
            built = dict(arch.cls(config).named_buffers())
        values = {n: built[n] for n in names if n in built and not built[n].is_meta}
    except Exception:  # a layer that cannot initialise meta parameters: build for real
        values = {}
    if len(values) != len(names):
        arch.materialise_leftovers(model, config, device=device, dtype=dtype)
        return {n: b for n, b in model.named_buffers() if n in names}
    return {
        n: v.to(dtype) if dtype is not None and v.is_floating_point() else v
        for n, v in values.items()
    }


def create_sharded(
    arch: Any,
    config: Any,
    *,
    mesh: DeviceMesh,
    parallel: str = "fsdp",
    seed: int | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Fresh weights, sharded: every rank builds the same seeded model and keeps its shards.

    The weights equal a single-process ``create_model(name, seed=seed)``. Each
    rank builds the full model once (initialisation needs all of it), so this
    costs one model's memory per rank while it runs. Without ``seed``, rank 0
    draws one and shares it.
    """
    import torch.distributed as dist

    group = _group(mesh)
    _check_parallel(parallel)
    target = _target_device(mesh, device)
    if seed is None:
        drawn = [int(torch.randint(0, 2**62, ()).item())]
        dist.broadcast_object_list(drawn, src=dist.get_global_rank(group, 0), group=group)
        seed = drawn[0]
    with agreement(mesh):
        model = arch.build(config, seed=seed, device=target, dtype=dtype)
        plan = _checked_plan(model, parallel, mesh.size())
    _shard(model, mesh, parallel, plan)
    return model


def _fill(
    state: Mapping[str, torch.Tensor], saved: SavedModel, reader: str, stats: LoadStats
) -> None:
    """Read every rank-local part of ``state`` from the files of ``saved``."""
    by_file: dict[Path, list[tuple[str, str]]] = {}
    for key in state:
        stored = saved.aliases.get(key, key)
        by_file.setdefault(saved.key_to_file[stored], []).append((key, stored))
    for file, keys in by_file.items():
        header = saved.headers.get(file) or read_header(file)
        # The snapshot's own open file (see storage.snapshot), not whatever the path names now.
        source = Path(saved.readable_path(file))
        if reader == "slice" or sys.byteorder != "little":  # safetensors swaps bytes for us
            _fill_slices(state, source, keys, stats)
            continue
        try:
            fd = os.open(source, os.O_RDONLY)
        except OSError as err:
            raise WeightsError(f"cannot read {file}: {err.strerror or err}") from None
        try:
            for key, stored in keys:
                local, offsets = _local_part(state[key])
                _pread_into(fd, header, header.tensors[stored], offsets, local, stats)
        finally:
            os.close(fd)


def _local_part(tensor: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The rank's own tensor and where it sits in the global one (DCP's chunk list)."""
    from torch.distributed.tensor import DTensor

    if isinstance(tensor, DTensor):
        (chunk,) = tensor.__create_chunk_list__()
        return tensor.to_local(), tuple(chunk.offsets)
    return tensor, (0,) * tensor.dim()


def _runs(
    shape: tuple[int, ...], offsets: tuple[int, ...], sizes: tuple[int, ...]
) -> tuple[Iterator[int], int]:
    """Element offsets of the contiguous runs a chunk covers (in order), and their length."""
    partial = [d for d in range(len(shape)) if sizes[d] != shape[d]]
    if not partial:
        return iter([0]), math.prod(shape)
    k = partial[-1]  # dims after k are whole: each run spans them
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
    length = sizes[k] * strides[k]
    outer = itertools.product(*(range(offsets[d], offsets[d] + sizes[d]) for d in range(k)))
    base = offsets[k] * strides[k]
    return (
        base + sum(i * s for i, s in zip(index, strides, strict=False)) for index in outer
    ), length


def _pread_exact(fd: int, view: memoryview, offset: int, file: Path) -> None:
    while len(view):
        got = os.preadv(fd, [view], offset)
        if got <= 0:
            raise WeightsError(
                f"{file} ended early: it was truncated after its header was read",
                hint="the file may be truncated or corrupt; save or download it again",
            )
        view, offset = view[got:], offset + got


def _pread_into(
    fd: int,
    header: Header,
    info: TensorInfo,
    offsets: tuple[int, ...],
    local: torch.Tensor,
    stats: LoadStats,
) -> None:
    """``pread`` the byte ranges of ``local``'s chunk straight into it (or via a small buffer)."""
    if local.numel() == 0:
        return
    source = _TORCH_DTYPES.get(info.dtype)
    if source is None:
        raise WeightsError(f"{header.path}: zoo cannot shard tensors of dtype {info.dtype}")
    size = DTYPE_SIZES[info.dtype]
    runs, length = _runs(info.shape, offsets, tuple(local.shape))
    start = header.data_start + info.begin
    flat = local.view(-1) if local.is_contiguous() else None
    direct = flat is not None and local.device.type == "cpu" and local.dtype == source
    if direct:
        view = memoryview(flat.view(torch.uint8).numpy())
        run_bytes = length * size
        for i, run in enumerate(runs):
            _pread_exact(
                fd, view[i * run_bytes : (i + 1) * run_bytes], start + run * size, header.path
            )
    else:
        # Casts and accelerators: through one bounded host buffer.
        out = flat if flat is not None else torch.empty(local.numel(), dtype=local.dtype)
        per = max(1, min(length, _BLOCK_BYTES // size))
        buffer = torch.empty(per * size, dtype=torch.uint8)
        view = memoryview(buffer.numpy())
        done = 0
        for run in runs:
            for piece in range(0, length, per):
                n = min(per, length - piece)
                _pread_exact(fd, view[: n * size], start + (run + piece) * size, header.path)
                out[done : done + n].copy_(buffer[: n * size].view(source))
                done += n
        if flat is None:
            local.copy_(out.view(local.shape))
    stats.bytes_read += local.numel() * size
    stats.tensors += 1


def _fill_slices(
    state: Mapping[str, torch.Tensor], file: Path, keys: list[tuple[str, str]], stats: LoadStats
) -> None:
    """The same reads through ``safe_open(...).get_slice(name)[...]`` (for comparison)."""
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt") as f:
            for key, stored in keys:
                local, offsets = _local_part(state[key])
                if local.numel() == 0:
                    continue
                slices = tuple(slice(o, o + n) for o, n in zip(offsets, local.shape, strict=True))
                part = f.get_slice(stored)[slices] if slices else f.get_tensor(stored)
                local.copy_(part)
                stats.bytes_read += part.numel() * part.element_size()
                stats.tensors += 1
    except (OSError, RuntimeError) as err:
        raise WeightsError(f"cannot read {file}: {err}") from None


def _fill_dcp(model: nn.Module, saved: SavedModel, mesh: DeviceMesh, stats: LoadStats) -> None:
    """The same reads through ``torch.distributed.checkpoint`` and its Hugging Face reader."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    if saved.kind != "directory" or saved.aliases:
        raise UsageError("reader='dcp' reads only directories of untied weights")
    state = model.state_dict()
    try:
        dcp.load(
            state,
            storage_reader=HuggingFaceStorageReader(str(saved.path)),
            process_group=mesh.get_group(),
        )
    except Exception as err:  # DCP gathers every rank's failure into one exception
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"cannot read {saved.path} through DCP: {text}") from None
    for value in state.values():
        local, _ = _local_part(value)
        stats.bytes_read += local.numel() * local.element_size()
        stats.tensors += 1


# --- saving -------------------------------------------------------------------


def _mesh_of(model: nn.Module) -> DeviceMesh:
    from torch.distributed.tensor import DTensor

    for p in model.parameters():
        if isinstance(p, DTensor):
            return p.device_mesh
    raise UsageError("this model is not sharded over a mesh")


def save_sharded(
    model: nn.Module,
    directory: Path,
    record: dict[str, Any],
    *,
    max_shard_size: int | str | None = None,
) -> Path:
    """Gather full tensors to rank 0, which writes one ordinary zoo directory, atomically.

    Called on every rank. The result is byte-for-byte what a single-process
    save of the same weights writes; every rank returns once it is complete
    (or raises the same error).
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    mesh = _mesh_of(model)
    # full_state_dict + cpu_offload: all-gathered tensor by tensor, kept on rank 0 only.
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = get_model_state_dict(model, options=options)
    with agreement(mesh):
        if dist.get_rank() == 0:
            write_directory(full, record, Path(directory), max_shard_size=max_shard_size)
    return Path(os.path.abspath(directory))
