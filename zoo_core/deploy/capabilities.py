"""Verifying what a model can be deployed with: export, ONNX, compile, FSDP, TP.

Each function builds the model (seeded, on the CPU) with a config, tries one
capability for real and returns a one-line finding, or raises a
:class:`~zoo_core.errors.ZooError` saying what failed (:class:`Unavailable`
when this machine cannot tell: the onnx extra is missing, a process group is
already running). The conformance kit runs them for every model
(:mod:`zoo_core.kit.checks_deploy`); a declared capability must pass.

- ``export``: ``torch.export`` with a dynamic batch, saved, loaded back and run
  at two batch sizes other than the traced one, against eager;
- ``onnx``: that program through ``torch.onnx.export(dynamo=True)``, run by
  onnxruntime at the same two batch sizes;
- ``compile``: ``torch.compile(fullgraph=True)``: no graph break, and the
  compiled model's outputs equal eager's at two batch sizes. The backend is
  ``aot_eager`` unless ``ZOO_COMPILE_BACKEND`` names another (``inductor``
  compiles C++ and takes tens of seconds per model on a CPU);
- ``fsdp``, ``tp``: sharded on torch's ``fake`` process group in this process
  (:func:`zoo_core.distributed.fake.verify_sharding`).

>>> from zoo_core.deploy.capabilities import verify_capability
>>> verify_capability(arch, arch.config(), "compile")       # doctest: +SKIP
'no graph breaks (fullgraph, aot_eager); outputs within 0 of eager at batch 1 and 3'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo_core.deploy.diagnose import export_error
from zoo_core.deploy.exporting import (
    ONNX_EXTRA,
    Traced,
    onnx_missing,
    onnxruntime_available,
    onnxruntime_runner,
    to_onnx,
    trace,
    verify,
)
from zoo_core.deploy.programs import flat_outputs, quiet, split_inputs
from zoo_core.distributed.fake import AlreadyDistributed, verify_sharding
from zoo_core.errors import ZooError
from zoo_core.models.build import Architecture
from zoo_core.models.model import call_model
from zoo_core.plugins.contract import CAPABILITIES
from zoo_core.untrusted import clean_text

__all__ = [
    "COMPILE_BACKEND_ENV",
    "VERIFY_BATCH_SIZES",
    "CapabilityError",
    "Unavailable",
    "verify_capability",
    "verify_compile",
    "verify_export",
    "verify_onnx",
]

#: Batch sizes a capability is verified at: neither is the one traced (2).
VERIFY_BATCH_SIZES = [1, 3]
COMPILE_BACKEND_ENV = "ZOO_COMPILE_BACKEND"
SEED = 0


class CapabilityError(ZooError):
    """A capability did not work; ``capability`` says which."""

    def __init__(self, message: str, *, capability: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.capability = capability


class Unavailable(CapabilityError):
    """A capability cannot be verified here (a missing extra, a running process group)."""


def _build(arch: Architecture, config: Any) -> nn.Module:
    return arch.build(config, seed=SEED, device="cpu").eval()


def verify_export(arch: Architecture, config: Any) -> tuple[str, Traced]:
    """``torch.export`` round trip: trace, save, load, run at two batch sizes.

    Returns the finding and the traced program (which :func:`verify_onnx` reuses).

    Raises:
        ExportError: tracing failed (naming the first failing operation) or the
            loaded program's outputs differ from eager.
    """
    traced = trace(_build(arch, config), arch)
    with tempfile.TemporaryDirectory(prefix="zoo-check-") as tmp:
        path = Path(tmp) / "model.pt2"
        try:
            with quiet():
                torch.export.save(traced.program, path)
                program = torch.export.load(path).module()
        except Exception as err:
            raise export_error(traced.name, err, "torch.export.save/load") from err
        worst, _ = verify(
            traced,
            lambda x: flat_outputs(call_model(program, x)),
            "the exported program",
            VERIFY_BATCH_SIZES if traced.dynamic else [traced.batch_size],
        )
    batch = "a dynamic" if traced.dynamic else "a fixed"
    sizes = " and ".join(map(str, VERIFY_BATCH_SIZES)) if traced.dynamic else traced.batch_size
    return (
        f"torch.export with {batch} batch, saved and loaded: outputs within "
        f"{worst:.2g} of eager at batch {sizes}",
        traced,
    )


def verify_onnx(arch: Architecture, config: Any, traced: Traced | None = None) -> str:
    """ONNX through ``torch.onnx.export(dynamo=True)``, run by onnxruntime at two batch sizes.

    Raises:
        Unavailable: the onnx extra (with onnxruntime) is not installed.
        ExportError: the translation failed, or onnxruntime's outputs differ from eager.
    """
    missing = onnx_missing() + ([] if onnxruntime_available() else ["onnxruntime"])
    if missing:
        raise Unavailable(
            f"cannot verify ONNX: {', '.join(missing)} not installed",
            capability="onnx",
            hint=ONNX_EXTRA,
        )
    if traced is None:
        traced = trace(_build(arch, config), arch)
    program = to_onnx(traced)
    with tempfile.TemporaryDirectory(prefix="zoo-check-") as tmp:
        path = Path(tmp) / "model.onnx"
        with quiet():
            program.save(path)
        sizes = VERIFY_BATCH_SIZES if traced.dynamic else [traced.batch_size]
        try:
            runtime = onnxruntime_runner(path, traced)
        except Exception as err:
            raise export_error(traced.name, err, "onnxruntime") from err
        worst, _ = verify(traced, runtime, "onnxruntime", sizes)
    shown = " and ".join(map(str, sizes))
    return f"ONNX runs in onnxruntime: outputs within {worst:.2g} of eager at batch {shown}"


def _graph_breaks(model: nn.Module, inputs: Any) -> tuple[int, str | None]:
    """How many graph breaks ``torch._dynamo.explain`` finds, and the first one's reason."""
    import torch._dynamo

    args, kwargs = split_inputs(inputs)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(*args, **kwargs)
    reasons = list(getattr(explained, "break_reasons", []) or [])
    if not reasons:
        return max(int(explained.graph_break_count), 0), None
    first = reasons[0]
    text = clean_text(str(getattr(first, "reason", first)).strip().splitlines()[0], 200)
    stack = list(getattr(first, "user_stack", []) or [])
    if stack:
        frame = stack[-1]
        line = (frame.line or "").split("  #", 1)[0].strip()
        where = f"{os.path.basename(frame.filename)}:{frame.lineno}"
        text += f" at `{clean_text(line, 120)}` ({where})" if line else f" at {where}"
    return max(int(explained.graph_break_count), len(reasons)), text


def verify_compile(arch: Architecture, config: Any, backend: str | None = None) -> str:
    """``torch.compile(fullgraph=True)``: no graph breaks, and outputs equal to eager's.

    Raises:
        CapabilityError: a graph break (counted and the first one named), a
            compiler error, or outputs that differ from eager.
    """
    import torch._dynamo

    backend = backend or os.environ.get(COMPILE_BACKEND_ENV) or "aot_eager"
    model = _build(arch, config)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    traced = Traced(None, model, arch, arch.name, True, 2, [], [])
    try:
        run = lambda x: flat_outputs(call_model(compiled, x))  # noqa: E731
        worst, _ = verify(traced, run, "torch.compile", VERIFY_BATCH_SIZES)
    except ZooError as err:
        cause = err.__cause__ or err
        try:
            with quiet():
                breaks, reason = _graph_breaks(model, traced.example(VERIFY_BATCH_SIZES[0]))
        except Exception:
            breaks, reason = 0, None
        if breaks:
            raise CapabilityError(
                f"torch.compile(fullgraph=True) of {arch.name} fails: {breaks} graph "
                f"break{'s' if breaks > 1 else ''}" + (f"; the first: {reason}" if reason else ""),
                capability="compile",
                hint="keep forward free of Python control flow on tensor values, prints, "
                "numpy and .item(); torch._dynamo.explain(model)(x) lists every break",
            ) from cause
        raise CapabilityError(
            f"{err.message} (fullgraph=True, backend {backend!r})",
            capability="compile",
            hint=err.hint,
        ) from cause
    finally:
        torch._dynamo.reset()
    sizes = " and ".join(map(str, VERIFY_BATCH_SIZES))
    return (
        f"no graph breaks (fullgraph, {backend}); outputs within {worst:.2g} of eager "
        f"at batch {sizes}"
    )


def verify_parallel(arch: Architecture, config: Any, parallel: str) -> str:
    """FSDP2 or the tensor-parallel plan, sharded as a load does, on a fake mesh of 2.

    Raises:
        Unavailable: this process already runs a process group.
        UsageError: no ``tp_plan``, or one that does not fit.
        PluginError, DistributedError: sharding, forward or backward failed.
    """
    try:
        return verify_sharding(arch, config, parallel)
    except AlreadyDistributed as err:
        raise Unavailable(err.message, capability=parallel, hint=err.hint) from err


def verify_capability(
    arch: Architecture, config: Any, capability: str, *, traced: Traced | None = None
) -> str:
    """Verify one of :data:`~zoo_core.plugins.contract.CAPABILITIES`; a finding, or an error."""
    if capability == "export":
        return verify_export(arch, config)[0]
    if capability == "onnx":
        return verify_onnx(arch, config, traced)
    if capability == "compile":
        return verify_compile(arch, config)
    if capability in ("fsdp", "tp"):
        return verify_parallel(arch, config, capability)
    raise ValueError(f"unknown capability {capability!r}; the known ones are {CAPABILITIES}")
