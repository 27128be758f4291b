"""How a model is cut up: tensor-parallel plans, FSDP units, and applying them.

A tensor-parallel plan is data on the model class (``tp_plan``, in the spirit
of transformers' ``base_model_tp_plan``) or in its ``ModelSpec``: module name
patterns (``*`` matches one name part) mapped to ``"colwise"``, ``"rowwise"``
or ``"replicate"``::

    class TinyTransformer(ZooModel):
        tp_plan = {"encoder.layers.*.linear1": "colwise",
                   "encoder.layers.*.linear2": "rowwise"}

FSDP2 shards a model in units, each all-gathered as one piece in ``forward``.
zoo makes a unit of each block of a ``ModuleList`` that implements ``forward``,
looking into containers that do not (a ``ModuleList`` of ``ModuleList``\\ s, a
``ModuleDict``), as torchtitan does by hand; a class (``fsdp_units``) or a spec
may name its units instead. Either way the root module takes what is left.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from torch import nn

from zoo_core.errors import PluginError, UsageError, ZooError, error_text
from zoo_core.models.tying import retie, tied_groups

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

__all__ = [
    "PARALLEL_MODES",
    "TP_STYLES",
    "checked_parallel",
    "fsdp_units",
    "implements_forward",
    "plan_problems",
    "shard_module",
    "tp_plan",
]

PARALLEL_MODES = ("fsdp", "tp")
TP_STYLES = ("colwise", "rowwise", "replicate")
_UNITS_HINT = (
    "FSDP shards modules that implement forward, holding parameters of at least one "
    "dimension; name such units with fsdp_units=('blocks.*', ...) on the class or in its "
    "ModelSpec, or load the model unsharded"
)


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


def implements_forward(module: nn.Module) -> bool:
    """Whether ``module`` has a ``forward`` of its own (containers like ``ModuleList`` do not)."""
    return type(module).forward is not nn.Module.forward


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _blocks(container: nn.Module, prefix: str) -> Iterator[str]:
    for child_name, child in container.named_children():
        name = f"{prefix}.{child_name}" if prefix else child_name
        if not _has_parameters(child):
            continue
        if implements_forward(child):
            yield name
        elif not isinstance(child, nn.ModuleList):  # a ModuleList is visited on its own
            yield from _blocks(child, name)


def fsdp_units(model: nn.Module, declared: Sequence[str] = ()) -> list[str]:
    """The modules FSDP shards as units (the root aside), in the order they must be sharded.

    ``declared`` patterns (``"blocks.*"``) name them; by default each block
    of every ``ModuleList`` is one, looking into blocks without a ``forward``.
    Nested units come before the units holding them, as ``fully_shard`` needs.

    Raises:
        PluginError: a declared pattern matches nothing, or a module without ``forward``.
    """
    modules = dict(model.named_modules())
    units: list[str] = []
    if declared:
        for pattern in declared:
            names = [n for n in modules if n and _matches(pattern, n)]
            if not names:
                raise PluginError(f"fsdp_units pattern {pattern!r} matches no module")
            for name in names:
                if not implements_forward(modules[name]):
                    raise PluginError(
                        f"fsdp_units pattern {pattern!r} matches {name}, a "
                        f"{type(modules[name]).__name__}, which has no forward to shard around",
                        hint=f"name the blocks inside it instead ('{pattern}.*')",
                    )
                units.append(name)
    else:
        for name, module in modules.items():
            if isinstance(module, nn.ModuleList):
                units.extend(_blocks(module, name))
    order = list(modules)
    unique = sorted(set(units), key=order.index)
    return unique[::-1]  # a module's descendants come after it in named_modules()


def shard_module(
    model: nn.Module,
    mesh: DeviceMesh,
    parallel: str,
    plan: Mapping[str, str],
    units: Sequence[str] = (),
    *,
    label: str = "the model",
) -> None:
    """Apply FSDP2 (in units) or tensor parallelism; on ``meta`` neither moves any data.

    Tied weights stay one Parameter: FSDP2 keeps them so, and after tensor
    parallelism each alias is tied to the sharded kept one again.

    Raises:
        PluginError: torch refused to shard a module (named), or tied weights
            would be sharded differently.
    """
    if parallel == "tp":
        from torch.distributed.tensor.parallel import (
            ColwiseParallel,
            RowwiseParallel,
            parallelize_module,
        )

        groups = tied_groups(model)
        styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
        for pattern, style in plan.items():
            if style not in styles:
                continue
            try:
                # src_data_rank=None: keep local (meta) data instead of scattering from rank 0.
                parallelize_module(model, mesh, {pattern: styles[style]()}, src_data_rank=None)
            except ZooError:
                raise
            except Exception as err:
                raise PluginError(
                    f"tensor parallelism cannot shard {pattern!r} ({style}) of {label}: "
                    f"{error_text(err, lines=3)}",
                    hint="fix tp_plan on the class or in its ModelSpec",
                ) from err
        retie(model, groups)
        return
    from torch.distributed.fsdp import fully_shard

    modules = dict(model.named_modules())
    for name in [*fsdp_units(model, units), ""]:
        module = modules[name]
        try:
            fully_shard(module, mesh=mesh)
        except ZooError:
            raise
        except Exception as err:
            where = name or "its root module"
            raise PluginError(
                f"FSDP cannot shard {where} ({type(module).__name__}) of {label}: "
                f"{error_text(err, lines=3)}",
                hint=_UNITS_HINT,
            ) from err


def checked_parallel(parallel: str) -> None:
    """Raise UsageError unless ``parallel`` is one of :data:`PARALLEL_MODES`."""
    if parallel not in PARALLEL_MODES:
        raise UsageError(
            f"unknown parallel {parallel!r}", hint=f"use one of {', '.join(PARALLEL_MODES)}"
        )
