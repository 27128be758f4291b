"""Trying a sharding in one process, on torch's ``fake`` process group.

The ``fake`` backend lets one process act as one rank of a larger job: every
collective returns at once without moving data. That is enough to find out
whether a model *can* be sharded — FSDP2 wraps it, a tensor-parallel plan fits
its layers, forward and backward run on the local shards and give outputs of
the right shapes — without ``torchrun``, a second process or a GPU. The values
it computes are meaningless (no rank ever sees another's shards), so nothing
here compares them.

>>> from zoo_core.distributed.fake import verify_sharding
>>> verify_sharding(lambda: create_model("tiny_transformer", seed=0),   # doctest: +SKIP
...                 lambda m: m.example_input(2), "tp")
'tp on a fake mesh of 2: 8 of 29 parameters sharded, forward and backward run'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from torch import nn

from zoo_core.distributed.sharding import apply_parallel
from zoo_core.errors import DistributedError
from zoo_core.models.model import call_model, output_tensors

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

__all__ = ["fake_mesh", "verify_sharding"]


@contextmanager
def fake_mesh(world_size: int = 2) -> Iterator[DeviceMesh]:
    """A 1-D CPU mesh of ``world_size`` ranks on the ``fake`` backend; this process is rank 0.

    The process group is created for the block and destroyed after it.

    Raises:
        DistributedError: this process already has a process group (a real job
            must not be replaced by a fake one).
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed")
    if dist.is_initialized():
        raise DistributedError(
            "a torch.distributed process group is already initialised in this process",
            hint="verify sharding in a process of its own (zoo check), not inside a job",
        )
    dist.init_process_group("fake", rank=0, world_size=world_size)
    try:
        yield init_device_mesh("cpu", (world_size,))
    finally:
        dist.destroy_process_group()


def verify_sharding(
    build: Callable[[], nn.Module],
    inputs_for: Callable[[nn.Module], Any],
    parallel: str,
    *,
    world_size: int = 2,
) -> str:
    """Shard a fresh model on a fake mesh and run it; return a one-line finding.

    ``build()`` makes a model on the CPU (called twice: once for the eager
    reference, once to shard); ``inputs_for(model)`` its example input.
    ``parallel`` is ``"fsdp"`` (FSDP2's ``fully_shard``, one group per
    ``ModuleList`` item, as loading does) or ``"tp"`` (the class's ``tp_plan``).
    Checked: sharding applies, at least one parameter becomes a DTensor
    sharded over the mesh, forward gives outputs of the eager shapes and dtypes, and backward
    reaches every parameter it reaches unsharded.

    Raises:
        UsageError: no ``tp_plan``, or one that does not fit a mesh of ``world_size``.
        DistributedError: sharding, forward or backward failed (the message says which).
    """
    from torch.distributed.tensor import DTensor, Shard

    reference = build().train()
    inputs = inputs_for(reference)
    outputs = output_tensors(call_model(reference, inputs))
    expected = [(tuple(t.shape), t.dtype) for t in outputs]
    floats = [t for t in outputs if t.is_floating_point() and t.requires_grad]
    if floats:
        sum(t.float().sum() for t in floats).backward()  # type: ignore[union-attr]
    # What learns unsharded must learn sharded; an unused layer is the gradients check's.
    learning = {n for n, p in reference.named_parameters() if p.grad is not None}
    with fake_mesh(world_size) as mesh:
        model = build().train()
        apply_parallel(model, mesh, parallel)  # UsageError for a plan that does not fit
        params = list(model.named_parameters())
        sharded = [
            n
            for n, p in params
            if isinstance(p, DTensor) and any(isinstance(pl, Shard) for pl in p.placements)
        ]
        if not sharded:
            raise DistributedError(
                f"{parallel} on a fake mesh of {world_size} sharded no parameter",
                hint="the model has no parameters, or its plan names no layer that holds any",
            )
        try:
            got = output_tensors(call_model(model, inputs_for(reference)))
        except Exception as err:
            raise DistributedError(
                f"forward of the {parallel}-sharded model raised {type(err).__name__}: "
                + (str(err).strip().splitlines() or [""])[0][:200]
            ) from err
        shapes = [(tuple(t.shape), t.dtype) for t in got]
        if shapes != expected:
            raise DistributedError(
                f"the {parallel}-sharded model returned {shapes}, the unsharded one {expected}"
            )
        floats = [t for t in got if t.is_floating_point() and t.requires_grad]
        if floats:
            try:
                sum(t.float().sum() for t in floats).backward()  # type: ignore[union-attr]
            except Exception as err:
                raise DistributedError(
                    f"backward through the {parallel}-sharded model raised {type(err).__name__}: "
                    + (str(err).strip().splitlines() or [""])[0][:200]
                ) from err
            missing = [n for n, p in params if n in learning and p.grad is None]
            if missing:
                raise DistributedError(
                    f"after sharding ({parallel}), {len(missing)} parameter(s) got no gradient: "
                    + ", ".join(missing[:4])
                )
    return (
        f"{parallel} on a fake mesh of {world_size}: {len(sharded)} of {len(params)} "
        "parameters sharded, forward and backward run"
    )
