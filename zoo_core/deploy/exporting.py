"""``zoo export``: a model as a ``torch.export`` program (``.pt2``) or ONNX, verified.

Any source a loader takes (a name, ``NAME.TAG``, a directory, ``hf://``) is
traced once with ``torch.export`` on its example input, with the batch
dimension dynamic (unless ``static``), and written as

- ``pt2``: ``torch.export.save``; runs with plain torch,
  ``torch.export.load(path).module()(x)``, no zoo needed;
- ``onnx``: ``torch.onnx.export(..., dynamo=True)`` of that program, the batch
  axis named ``batch``; needs the ``onnx`` extra (``pip install "zoo-core[onnx]"``).

What the model is and needs travels inside the file: ``zoo.json`` (the model,
plugin, config, inputs and outputs with the batch dimension marked, and a
variant's ``weights`` section: preprocessing, labels, dataset, license,
metrics) and, for a server that wants one thing, ``zoo.preprocessing``,
``zoo.labels`` and ``zoo.provenance``, each JSON. They are ``extra_files`` of
the ``.pt2`` archive and ``metadata_props`` of the ONNX model.

Nothing is left at ``output`` unless it verified: the file is written next to
its place, loaded back and run at two batch sizes (the exported program, and
onnxruntime for ONNX when installed) against the eager model; only then is it
moved into place.

>>> report = export_model("simple_cnn.digits", "cnn.pt2")          # doctest: +SKIP
>>> report.max_abs_diff, report.batch_sizes
(2.384185791015625e-07, [2, 3])
>>> program = torch.export.load("cnn.pt2").module()                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo_core.api import open_model
from zoo_core.deploy.diagnose import export_error
from zoo_core.deploy.programs import (
    BATCH,
    batch_shapes,
    compare_outputs,
    default_tolerance,
    flat_outputs,
    input_names,
    output_names,
    quiet,
    seeded,
    split_inputs,
    tensor_spec,
)
from zoo_core.errors import ExportError, UsageError
from zoo_core.models.build import Architecture
from zoo_core.models.config import config_to_dict
from zoo_core.models.model import call_model
from zoo_core.models.saving import identify
from zoo_core.progress import ProgressCallback
from zoo_core.version import __version__

__all__ = [
    "FORMATS",
    "ONNX_EXTRA",
    "ExportReport",
    "Traced",
    "export_model",
    "metadata_entries",
    "onnx_missing",
    "onnxruntime_available",
    "onnxruntime_runner",
    "to_onnx",
    "trace",
    "verify",
]

FORMATS = ("pt2", "onnx")
#: What to install for ONNX export and its verification.
ONNX_EXTRA = 'pip install "zoo-core[onnx]"'
#: The batch size traced by default: 1 would make torch.export specialise the batch to 1.
DEFAULT_BATCH = 2


@dataclass
class Traced:
    """A model traced by ``torch.export``, with what is needed to run and describe it."""

    program: Any  # torch.export.ExportedProgram
    model: nn.Module
    arch: Architecture
    name: str
    dynamic: bool
    batch_size: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    keyword: bool = False  # inputs are passed by keyword (example_input is a dict)

    def example(self, batch_size: int) -> Any:
        """The model's example input at ``batch_size``, the same on every call (seeded)."""
        return _example(self.arch, self.model, batch_size)

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]


@dataclass
class ExportReport:
    """What ``zoo export`` did: the file, how it was verified, and what it holds."""

    path: Path
    format: str
    model: str
    source: str
    dynamic_batch: bool
    batch_sizes: list[int]
    max_abs_diff: float
    tolerance: float
    verified_with: list[str]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    bytes: int
    seconds: float
    notes: list[str]
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The stable ``zoo export --json`` keys."""
        return {
            "path": str(self.path),
            "format": self.format,
            "model": self.model,
            "source": self.source,
            "dynamic_batch": self.dynamic_batch,
            "batch_sizes": self.batch_sizes,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "verified_with": self.verified_with,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "metadata_keys": sorted(metadata_entries(self.metadata)),
        }


def _example(arch: Architecture, model: nn.Module, batch_size: int) -> Any:
    # Seeded: the two runs that are compared must see the same numbers.
    with seeded(batch_size, model):
        return arch.example_input(model, batch_size)


def trace(
    model: nn.Module,
    arch: Architecture,
    *,
    name: str | None = None,
    batch_size: int | None = None,
    static: bool = False,
) -> Traced:
    """``torch.export`` ``model`` (in eval mode) on its example input, the batch dynamic.

    ``batch_size`` is the batch traced (default 2); with ``static`` it is also
    the only batch the program accepts.

    Raises:
        ExportError: the exporter failed; the message names the first failing operation.
    """
    name = name or arch.name
    model.eval()
    traced_batch = batch_size or DEFAULT_BATCH
    if not static:
        # Tracing at batch 1 would specialise the batch to 1: trace at 2 or more, and
        # verify at 1 as well when that is what was asked for.
        traced_batch = max(traced_batch, 2)
    inputs = _example(arch, model, traced_batch)
    other = _example(arch, model, traced_batch + 1)
    found = None if static else batch_shapes(inputs, other)
    notes = []
    if not static and found is None:
        notes.append("the example input has no batch dimension: exported with fixed shapes")
    shapes, batched = found if found is not None else (None, set())
    args, kwargs = split_inputs(inputs)
    try:
        with quiet(), torch.no_grad():
            program = torch.export.export(model, args, kwargs, dynamic_shapes=shapes, strict=False)
    except Exception as err:
        raise export_error(name, err, "torch.export") from err
    with torch.no_grad():
        eager, eager_other = call_model(model, inputs), call_model(model, other)
    dynamic = found is not None
    keyed = list(kwargs.items()) or [(str(i), a) for i, a in enumerate(args)]
    flags = [key in batched for key, value in keyed if isinstance(value, torch.Tensor)]
    tensors = [value for _, value in keyed if isinstance(value, torch.Tensor)]
    input_specs = [
        tensor_spec(n, t, flag)
        for n, t, flag in zip(input_names(model, inputs), tensors, flags, strict=False)
    ]
    output_specs = [
        tensor_spec(n, t, dynamic and t.dim() > 0 and t.shape[:1] != u.shape[:1])
        for n, t, u in zip(
            output_names(eager), flat_outputs(eager), flat_outputs(eager_other), strict=False
        )
    ]
    return Traced(
        program,
        model,
        arch,
        name,
        dynamic,
        traced_batch,
        input_specs,
        output_specs,
        notes,
        keyword=bool(kwargs),
    )


def verify(
    traced: Traced,
    run: Callable[[Any], Any],
    what: str,
    batch_sizes: list[int],
    tolerance: float | None = None,
) -> tuple[float, float]:
    """Run ``run(inputs)`` and the eager model at each batch size; ``(max abs diff, allowed)``.

    Raises:
        ExportError: a run failed, or its outputs differ from eager by more than allowed.
    """
    worst, allowed = 0.0, 0.0
    for batch in batch_sizes:
        inputs = traced.example(batch)
        with torch.no_grad():
            expected = flat_outputs(call_model(traced.model, inputs))
        try:
            with quiet(), torch.no_grad():
                got = run(inputs)
        except ExportError:
            raise
        except Exception as err:
            raise export_error(traced.name, err, what) from err
        diff = compare_outputs(expected, got, f"{what} at batch {batch}")
        limit = tolerance if tolerance is not None else default_tolerance(expected)
        worst, allowed = max(worst, diff), max(allowed, limit)
        if diff > limit:
            raise ExportError(
                f"{what} of {traced.name} differs from eager by {diff:.3g} at batch {batch} "
                f"(tolerance {limit:.3g})",
                model=traced.name,
                hint="a difference this large is a bug in the exporter or a model whose "
                "forward differs between calls; --tolerance raises the bound",
            )
    return worst, allowed


# --- ONNX ------------------------------------------------------------------------------


def onnx_missing() -> list[str]:
    """The packages ``torch.onnx.export(dynamo=True)`` needs that are not installed."""
    return [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def to_onnx(traced: Traced) -> Any:
    """The ONNX program (``torch.onnx.ONNXProgram``) of a traced model, batch axis ``batch``.

    Raises:
        ExportError: the onnx extra is missing, or the translation failed.
    """
    missing = onnx_missing()
    if missing:
        raise ExportError(
            f"ONNX export needs {' and '.join(missing)}, which "
            + ("is" if len(missing) == 1 else "are")
            + " not installed",
            model=traced.name,
            hint=f"install the onnx extra: {ONNX_EXTRA}",
        )
    try:
        with quiet():
            program = torch.onnx.export(
                traced.program, (), dynamo=True, output_names=traced.output_names, verbose=False
            )
    except Exception as err:
        raise export_error(traced.name, err, "torch.onnx") from err
    if traced.dynamic:
        batched = {i["name"] for i in traced.inputs if i["shape"] and i["shape"][0] == BATCH}
        dims = {
            value.shape[0]
            for value in program.model.graph.inputs
            if value.name in batched and value.shape is not None and len(value.shape)
        }
        symbols = {d: BATCH for d in dims if not isinstance(d, int)}
        if symbols:
            program.rename_axes(symbols)
    return program


def onnxruntime_runner(path: Path, traced: Traced) -> Callable[[Any], list[Any]]:
    """A function running the ONNX file at ``path`` with onnxruntime (CPU) on model inputs."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    wanted = [i.name for i in session.get_inputs()]

    def run(inputs: Any) -> list[Any]:
        args, kwargs = split_inputs(inputs)
        tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
        by_name = dict(zip(traced.input_names, tensors, strict=False))
        if all(n in by_name for n in wanted):
            feed = {n: by_name[n] for n in wanted}
        elif len(wanted) == len(tensors):
            feed = dict(zip(wanted, tensors, strict=True))
        else:
            raise ExportError(
                f"the ONNX model of {traced.name} takes inputs {wanted}; "
                f"zoo has {traced.input_names}"
            )
        return list(session.run(None, {n: t.detach().cpu().numpy() for n, t in feed.items()}))

    return run


# --- metadata --------------------------------------------------------------------------


def _metadata(
    traced: Traced, fmt: str, source: str, kind: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    entry = traced.arch.entry
    weights = getattr(traced.model, "weights_info", None) or {}
    provenance = {
        "source": source,
        "source_kind": kind,
        **{
            k: v
            for k, v in details.items()
            if k in ("variant", "variant_source", "repo_id", "commit")
        },
    }
    for key in ("dataset", "license", "training", "metrics", "tag"):
        if key in weights:
            provenance[key] = weights[key]
    dtypes = {str(p.dtype).removeprefix("torch.") for p in traced.model.parameters()}
    return {
        "zoo_export": 1,
        "format": fmt,
        "architecture": traced.arch.name,
        "qualified_name": entry.qualified_name if entry is not None else None,
        "plugin": entry.plugin.name if entry is not None else None,
        "plugin_version": entry.plugin.version if entry is not None else None,
        "zoo_core_version": __version__,
        "torch_version": torch.__version__,
        "config": config_to_dict(identify(traced.model)[1]) if entry is not None else None,
        "dtype": ",".join(sorted(dtypes)) or None,
        "dynamic_batch": traced.dynamic,
        # How the pt2 program takes its inputs: program(*tensors) or program(**tensors).
        "inputs_by": "keyword" if traced.keyword else "position",
        "inputs": traced.inputs,
        "outputs": traced.outputs,
        "weights": weights or None,
        "preprocessing": weights.get("preprocessing"),
        "labels": weights.get("labels"),
        "provenance": provenance,
    }


def metadata_entries(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The key/value strings written into an export (pt2 extra files, ONNX metadata props).

    ``zoo.json`` holds everything; ``zoo.preprocessing``, ``zoo.labels`` and
    ``zoo.provenance`` (JSON too) are there for readers that want one thing.
    """
    entries = {"zoo.json": json.dumps(dict(metadata), sort_keys=True, default=str)}
    for key in ("preprocessing", "labels", "provenance"):
        if metadata.get(key) is not None:
            entries[f"zoo.{key}"] = json.dumps(metadata[key], sort_keys=True, default=str)
    return entries


# --- the whole job ---------------------------------------------------------------------


def _format_of(output: Path, fmt: str | None) -> str:
    if fmt is None:
        return "onnx" if output.suffix.lower() == ".onnx" else "pt2"
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    return fmt


def _verify_file(
    traced: Traced, path: Path, fmt: str, sizes: list[int], tolerance: float | None
) -> tuple[float, float, list[str]]:
    """Run what was written at ``path`` against eager: ``(max diff, allowed, runtimes used)``."""

    def torch_run(module: nn.Module) -> Callable[[Any], list[torch.Tensor]]:
        return lambda x: flat_outputs(call_model(module, x))

    if fmt == "pt2":
        program = torch.export.load(path).module()
        worst, allowed = verify(traced, torch_run(program), "the saved program", sizes, tolerance)
        return worst, allowed, ["torch.export.load"]
    module = traced.program.module()
    worst, allowed = verify(traced, torch_run(module), "the exported program", sizes, tolerance)
    if not onnxruntime_available():
        traced.notes.append(f"onnxruntime is missing: the ONNX file was not run; {ONNX_EXTRA}")
        return worst, allowed, ["torch.export"]
    if any(i["dtype"] == "bfloat16" for i in traced.inputs):
        traced.notes.append("onnxruntime was not run: numpy has no bfloat16 for its inputs")
        return worst, allowed, ["torch.export"]
    try:
        runtime = onnxruntime_runner(path, traced)
    except Exception as err:
        raise export_error(traced.name, err, "onnxruntime") from err
    more, limit = verify(traced, runtime, "onnxruntime", sizes, tolerance)
    return max(worst, more), max(allowed, limit), ["torch.export", "onnxruntime"]


def export_model(
    source: str | os.PathLike[str] | nn.Module,
    output: str | os.PathLike[str],
    *,
    format: str | None = None,
    batch_size: int | None = None,
    static: bool = False,
    dtype: str | torch.dtype | None = None,
    tolerance: float | None = None,
    overrides: dict[str, Any] | None = None,
    from_strings: bool = False,
    progress: ProgressCallback | None = None,
) -> ExportReport:
    """Export a model to ``output`` as ``pt2`` or ``onnx`` and verify it against eager.

    Args:
        source: anything :func:`~zoo_core.load_model` takes, or a model zoo built.
        output: the file to write (its parent directories are created); the
            format defaults to ``onnx`` for a ``.onnx`` name, else ``pt2``.
        batch_size: the batch traced (default 2); with ``static`` the only
            batch the export accepts. Verification runs at this batch and the
            next (dynamic), or at this one (static).
        dtype: cast floating weights first (``"bfloat16"``).
        tolerance: the largest absolute difference from eager accepted
            (default: by dtype and the outputs' magnitude).
        overrides: config fields, for a source that is a model name.
        progress: ``progress(done, total)`` over the steps.

    Raises:
        ExportError: the exporter failed (naming the first failing operation),
            the onnx extra is missing, or the export differs from eager.

    >>> export_model("tiny_transformer", "tt.onnx").verified_with   # doctest: +SKIP
    ['torch.export', 'onnxruntime']
    """
    started = time.perf_counter()
    output = Path(os.path.expanduser(os.fspath(output)))
    fmt = _format_of(output, format)
    if output.is_dir():
        raise UsageError(f"{output} is a directory", hint="give the file to write, e.g. model.pt2")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"batch size must be at least 1, not {batch_size}")
    steps = 5 if fmt == "pt2" else 6
    report = progress or (lambda done, total: None)
    if isinstance(source, nn.Module):
        model = source if dtype is None else source.to(dtype)
        arch = identify(model)[0]
        text, kind, details = f"<{type(model).__name__}>", "model", {}
        name = arch.name
    else:
        loaded = open_model(source, dtype=dtype, overrides=overrides, from_strings=from_strings)
        model, arch = loaded.model, Architecture.of(loaded.entry)
        text, kind, details = loaded.source, loaded.source_kind, loaded.details
        name = loaded.source if kind == "variant" else loaded.entry.display_name
    report(1, steps)
    traced = trace(model, arch, name=name, batch_size=batch_size, static=static)
    if kind == "name":
        traced.notes.append("built fresh from its name: the weights are random")
    report(2, steps)
    onnx_program = to_onnx(traced) if fmt == "onnx" else None
    if onnx_program is not None:
        report(3, steps)
    metadata = _metadata(traced, fmt, text, kind, details)
    entries = metadata_entries(metadata)
    sizes = [traced.batch_size, traced.batch_size + 1] if traced.dynamic else [traced.batch_size]
    if traced.dynamic and batch_size == 1:
        sizes = [1, 2]
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        staged = staging / output.name
        if onnx_program is None:
            torch.export.save(traced.program, staged, extra_files=entries)
        else:
            onnx_program.model.metadata_props.update(entries)
            with quiet():
                onnx_program.save(staged)
        report(steps - 2, steps)
        worst, allowed, verified_with = _verify_file(traced, staged, fmt, sizes, tolerance)
        report(steps - 1, steps)
        size = sum(f.stat().st_size for f in staging.iterdir())
        for produced in sorted(staging.iterdir()):
            os.replace(produced, output.parent / produced.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report(steps, steps)
    if not traced.dynamic:
        traced.notes.append(f"fixed shapes: verified at batch {traced.batch_size} only")
    return ExportReport(
        path=output.resolve(),
        format=fmt,
        model=traced.name,
        source=text,
        dynamic_batch=traced.dynamic,
        batch_sizes=sorted(set(sizes)),
        max_abs_diff=worst,
        tolerance=allowed,
        verified_with=verified_with,
        inputs=traced.inputs,
        outputs=traced.outputs,
        bytes=size,
        seconds=time.perf_counter() - started,
        notes=traced.notes,
        metadata=metadata,
    )
