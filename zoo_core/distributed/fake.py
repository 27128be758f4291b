"""Sharding a model in this one process, on torch's ``fake`` process group.

``torch.distributed``'s ``fake`` backend pretends to be rank 0 of a larger
job: collectives return at once without moving data. That is enough to learn
whether a model shards at all (FSDP units that implement ``forward``, a
tensor-parallel plan that fits) and whether its ``forward`` runs on the local
shapes that sharding leaves, without ``torchrun`` or a second process. The
values it computes mean nothing: only shapes and failures do.

>>> from zoo_core.models.build import Architecture
>>> arch = Architecture.named("tiny_transformer")                     # doctest: +SKIP
>>> shard_on_fake_mesh(arch, arch.config(), "tp").units               # doctest: +SKIP
['encoder.layers.*.linear1', 'encoder.layers.*.linear2']
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from zoo_core.distributed.plans import checked_parallel, fsdp_units, plan_problems, shard_module
from zoo_core.errors import DistributedError, UsageError, ZooError
from zoo_core.models.model import output_tensors
from zoo_core.models.tying import retie, tied_groups

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

__all__ = [
    "AlreadyDistributed",
    "FakeSharding",
    "fake_mesh",
    "shard_on_fake_mesh",
    "verify_sharding",
]


class AlreadyDistributed(UsageError):
    """This process already runs a ``torch.distributed`` job: no fake one beside it."""


@dataclass
class FakeSharding:
    """What sharding a model on a fake mesh showed."""

    parallel: str
    world_size: int
    #: The FSDP units (module names) or the tensor-parallel plan's patterns.
    units: list[str] = field(default_factory=list)
    #: How many parameters are split over the mesh (a DTensor placed ``Shard``, not replicated),
    #: of how many in all.
    sharded: int = 0
    parameters: int = 0
    #: The shapes of forward's output tensors (None when forward was not run).
    output_shapes: list[tuple[int, ...]] | None = None
    #: Their dtypes, and (with ``train``) the parameters backward gave no gradient.
    output_dtypes: list[torch.dtype] | None = None
    no_gradient: list[str] = field(default_factory=list)


@contextmanager
def fake_mesh(world_size: int = 2) -> Iterator[DeviceMesh]:
    """A 1-D CPU ``DeviceMesh`` of ``world_size`` over the fake process group (this is rank 0).

    The process group is created for the block and destroyed after it.

    Raises:
        UsageError: torch.distributed is unavailable, or this process already
            has a process group (a real job: shard for real instead).
    """
    import torch.distributed as dist

    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed")
    if dist.is_initialized():
        raise AlreadyDistributed(
            "a torch.distributed process group already exists in this process; "
            "the fake one cannot be created beside it",
            hint="verify sharding in a process of its own (zoo check), not inside a job",
        )
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("fake", rank=0, world_size=world_size)
    try:
        yield init_device_mesh("cpu", (world_size,))
    finally:
        dist.destroy_process_group()


def shard_on_fake_mesh(
    arch: Any,
    config: Any,
    parallel: str = "fsdp",
    *,
    world_size: int = 2,
    forward: bool = True,
    train: bool = False,
) -> FakeSharding:
    """Shard a model of ``arch`` as ``load_model(..., mesh=mesh)`` would, on a fake mesh.

    The model is built on ``meta`` and sharded there (FSDP units, or the
    tensor-parallel plan of the class or spec), then given local memory; with
    ``forward`` it runs once on its example input (buffers hold their real
    values, the sharded parameters hold noise); with ``train`` it runs in train
    mode and backward too, noting the parameters that got no gradient. ``arch``
    is a :class:`zoo_core.models.build.Architecture`.

    Raises:
        UsageError: ``parallel="tp"`` without a plan, a plan that does not fit
            ``world_size``, or a process group that already exists.
        PluginError: torch refused to shard a module (named in the message).
        PluginCodeError: forward failed on the sharded model.
    """
    from torch.distributed.tensor import DTensor

    checked_parallel(parallel)
    model = arch.build_meta(config)
    plan: dict[str, str] = {}
    result = FakeSharding(parallel, world_size)
    if parallel == "tp":
        plan = arch.tp_plan(model)
        if not plan:
            raise UsageError(f"{arch.name} declares no tensor-parallel plan (tp_plan)")
        problems = plan_problems(model, plan, mesh_size=world_size)
        if problems:
            raise UsageError(
                f"the tensor-parallel plan of {arch.name} does not fit a mesh of "
                f"{world_size}: " + "; ".join(problems)
            )
        result.units = list(plan)
    else:
        result.units = fsdp_units(model, arch.fsdp_units(model))[::-1]
    with fake_mesh(world_size) as mesh:
        shard_module(model, mesh, parallel, plan, arch.fsdp_units(model), label=arch.name)
        params = list(model.parameters())
        result.parameters = len(params)
        result.sharded = sum(
            isinstance(p, DTensor) and any(place.is_shard() for place in p.placements)
            for p in params
        )
        if not forward:
            return result
        ties = tied_groups(model)
        model.to_empty(device="cpu")
        retie(model, ties)  # to_empty gives each unsharded module a Parameter of its own
        _fill_for_forward(arch, model, config)
        inputs = arch.example_input(model, 2)
        with torch.set_grad_enabled(train):
            outputs = output_tensors(arch.forward(model.train(train), inputs))
        result.output_shapes = [tuple(t.shape) for t in outputs]
        result.output_dtypes = [t.dtype for t in outputs]
        learning = [t for t in outputs if t.is_floating_point() and t.requires_grad]
        if train and learning:
            sum(t.float().sum() for t in learning).backward()  # type: ignore[union-attr]
            result.no_gradient = [n for n, p in model.named_parameters() if p.grad is None]
    return result


def verify_sharding(arch: Any, config: Any, parallel: str, *, world_size: int = 2) -> str:
    """Shard a model on a fake mesh as a load would, train it one step; a one-line finding.

    Checked against the same model unsharded: sharding applies and shards at
    least one parameter, forward gives outputs of the same shapes and dtypes,
    and backward reaches every parameter it reaches unsharded. This is what
    the kit's ``fsdp`` and ``tp`` checks run.

    Raises:
        UsageError: no tensor-parallel plan, or one that does not fit ``world_size``.
        PluginError: torch refused to shard a module (named in the message).
        DistributedError: a process group already exists here, or the sharded
            model shards nothing, gives other shapes, or does not learn.
    """
    reference = arch.build(config, seed=0).train()
    outputs = output_tensors(arch.forward(reference, arch.example_input(reference, 2)))
    expected = [(tuple(t.shape), t.dtype) for t in outputs]
    floats = [t for t in outputs if t.is_floating_point() and t.requires_grad]
    if floats:
        sum(t.float().sum() for t in floats).backward()  # type: ignore[union-attr]
    # What learns unsharded must learn sharded; an unused layer is the gradients check's.
    learning = {n for n, p in reference.named_parameters() if p.grad is not None}
    done = shard_on_fake_mesh(arch, config, parallel, world_size=world_size, train=True)
    label = f"{parallel} on a fake mesh of {world_size}"
    if not done.sharded:
        raise DistributedError(
            f"{label} sharded no parameter",
            hint="the model has no parameters, or its plan names no layer that holds any",
        )
    got = list(zip(done.output_shapes or [], done.output_dtypes or [], strict=True))
    if got != expected:
        raise DistributedError(f"{label}: the sharded model returned {got}, unsharded {expected}")
    missing = [n for n in done.no_gradient if n in learning]
    if missing:
        raise DistributedError(
            f"{label}: {len(missing)} parameter(s) got no gradient: " + ", ".join(missing[:4])
        )
    units = f"{len(done.units)} unit(s)" if parallel == "fsdp" else "its plan"
    return (
        f"{label} ({units}): {done.sharded} of {done.parameters} parameters sharded, "
        "forward and backward run "
        "with the unsharded shapes"
    )


def _fill_for_forward(arch: Any, model: torch.nn.Module, config: Any) -> None:
    """Real buffers (an index table must hold indices), small values in the local shards."""
    from torch.distributed.tensor import DTensor

    try:
        real = dict(arch.build(config, seed=0).named_buffers())
    except ZooError:
        real = {}
    for name, buffer in model.named_buffers():
        if name in real and real[name].shape == buffer.shape:
            buffer.copy_(real[name].to(buffer.dtype))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            local = p.to_local() if isinstance(p, DTensor) else p
            if local.is_floating_point():
                local.copy_(torch.randn(local.shape, generator=generator) * 0.02)
