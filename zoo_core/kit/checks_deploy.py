"""Checks of the capabilities a model declares: export, ONNX, compile, FSDP, tensor parallelism.

Each capability in :data:`~zoo_core.plugins.contract.CAPABILITIES` has a check
of its own name that tries it for real (see :mod:`zoo_core.deploy.capabilities`):

- declared in ``ModelSpec(supports=...)`` and it works: pass;
- declared and it does not: fail, naming what broke;
- not declared but it works: a warning saying to declare it, so that
  ``zoo list --supports`` finds the model;
- not declared and it does not work: skipped, with the reason;
- not declared, on a model that failed an earlier check: skipped untried.

A class checked on its own (no spec) declares nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from zoo_core.deploy.capabilities import (
    Unavailable,
    verify_compile,
    verify_export,
    verify_onnx,
    verify_parallel,
)
from zoo_core.errors import ZooError
from zoo_core.kit.framework import (
    Failed,
    Skipped,
    Subject,
    Undeclared,
    check,
    describe_error,
)


def _declared(s: Subject, capability: str) -> bool:
    if s.entry is not None and capability in s.entry.spec.supports:
        return True
    # A tensor-parallel plan on the class or its spec offers parallel="tp": it must work.
    return capability == "tp" and bool(s.memo.get("tp_plan"))


def _capability(s: Subject, capability: str, verify: Callable[[], str]) -> str:
    declared = _declared(s, capability)
    failed = s.memo.get("failed")
    if not declared and failed:
        # Trying export, ONNX or compile costs seconds; what a broken model could
        # declare is worth knowing once it works.
        raise Skipped(f"not declared; not tried while {', '.join(failed)} fail")
    try:
        found = verify()
    except Unavailable as err:
        raise Skipped(f"{err.message} ({err.hint})" if err.hint else err.message) from err
    except Exception as err:  # the model's code or torch's can fail in any way
        text = err.message if isinstance(err, ZooError) else describe_error(err)
        if declared:
            raise Failed(text) from err
        raise Skipped(f"not declared, and it does not work: {text}") from err
    if declared:
        return found
    raise Undeclared(
        f"works but is not declared ({found}); add {capability!r} to ModelSpec(supports=...)"
    )


@check(
    "export",
    reason="zoo export and any server built on torch.export need a model that traces with a "
    "dynamic batch and gives eager's outputs when loaded back",
    hint="avoid Python control flow on tensor values in forward (if x.sum() > 0: ...; use "
    "torch.where or torch.cond) and sizes read from tensors (.item(), .tolist())",
    needs=("forward-finite",),
)
def _check_export(s: Subject) -> str:
    def run() -> str:
        found, traced = verify_export(s.arch, s.config())
        s.memo["traced"] = traced
        return found

    return _capability(s, "export", run)


@check(
    "onnx",
    reason="zoo export --format onnx translates the torch.export program to ONNX for "
    "onnxruntime and other runtimes",
    hint="use operators torch.onnx can translate (the message names the first one it cannot); "
    "or do not declare 'onnx'",
    needs=("export",),
)
def _check_onnx(s: Subject) -> str:
    return _capability(s, "onnx", lambda: verify_onnx(s.arch, s.config(), s.memo.get("traced")))


@check(
    "compile",
    reason="torch.compile(fullgraph=True) speeds a model up only when forward traces as one "
    "graph; each graph break falls back to Python",
    hint="keep forward free of data-dependent Python control flow, prints, numpy and .item(); "
    "torch._dynamo.explain(model)(x) lists the breaks",
    needs=("forward-finite",),
)
def _check_compile(s: Subject) -> str:
    return _capability(s, "compile", lambda: verify_compile(s.arch, s.config()))


@check(
    "fsdp",
    reason="load_model(..., mesh=mesh, parallel='fsdp') shards the model with FSDP2; it must "
    "wrap, run forward and backward on its shards",
    hint="keep every parameter in a submodule's registered parameters and forward free of "
    "in-place changes to them",
    needs=("forward-finite",),
)
def _check_fsdp(s: Subject) -> str:
    return _capability(s, "fsdp", lambda: verify_parallel(s.arch, s.config(), "fsdp"))


@check(
    "tp",
    reason="load_model(..., mesh=mesh, parallel='tp') applies the class's tp_plan; sharded, "
    "forward and backward must still run",
    hint="declare tp_plan on the class (colwise then rowwise for each MLP block) and keep "
    "sharded sizes divisible by the mesh",
    needs=("forward-finite", "tp-plan"),
)
def _check_tp(s: Subject) -> str:
    s.memo["tp_plan"] = s.arch.tp_plan(s.arch.build_meta(s.config()))
    if not s.memo["tp_plan"]:
        if _declared(s, "tp"):
            raise Failed("declares 'tp', but neither its class nor its spec has a tp_plan")
        raise Skipped("declares no tp_plan (parallel='tp' is not offered)")
    return _capability(s, "tp", lambda: verify_parallel(s.arch, s.config(), "tp"))
