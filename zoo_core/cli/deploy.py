"""``zoo export`` and ``zoo bench``: from zoo to production.

Both import torch (and :mod:`zoo_core.deploy`) only inside the command body.
"""

from __future__ import annotations

import click

from zoo_core.cli._common import echo_json, human_bytes, json_option, registry, set_option
from zoo_core.cli.complete import complete_source
from zoo_core.models.config import parse_assignments

_DTYPE_HELP = "Cast floating weights first: float32, float16, bfloat16, float64."


@click.command("export", short_help="Export a model to torch.export (.pt2) or ONNX, verified.")
@click.argument("source", shell_complete=complete_source)
@click.argument("output", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pt2", "onnx"]),
    help="pt2 (torch.export.save) or onnx; default: onnx for a .onnx OUTPUT, else pt2.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    metavar="N",
    help="The batch traced (default 2); with --static, the only batch the export takes.",
)
@click.option("--static", is_flag=True, help="Fixed shapes: no dynamic batch dimension.")
@click.option("--dtype", metavar="DTYPE", help=_DTYPE_HELP)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    metavar="X",
    help="Largest absolute difference from eager accepted (default: by dtype and magnitude).",
)
@set_option
@json_option
def export_command(
    source: str,
    output: str,
    fmt: str | None,
    batch_size: int | None,
    static: bool,
    dtype: str | None,
    tolerance: float | None,
    assignments: tuple[str, ...],
    as_json: bool,
) -> None:
    """Export SOURCE to OUTPUT and verify it against the eager model.

    SOURCE is a model name (fresh weights, with --set), a weights variant
    (simple_cnn.digits), a saved directory or hf://OWNER/REPO[@REVISION].
    The model is traced with torch.export on its example input, the batch
    dimension dynamic unless --static. pt2 files run with plain torch:
    torch.export.load(OUTPUT).module()(x). ONNX needs the onnx extra
    (pip install "zoo-core[onnx]") and names the batch axis "batch".

    Before OUTPUT is written, the export is loaded back and run at two batch
    sizes (and by onnxruntime for ONNX) against eager; the largest difference
    is printed, and beyond the tolerance the export fails and nothing is
    written. The model's config, inputs, outputs and a variant's preprocessing,
    labels and provenance travel inside the file (zoo.json; pt2 extra files,
    ONNX metadata props).
    """
    from zoo_core.deploy.exporting import export_model
    from zoo_core.models.placement import parse_dtype
    from zoo_core.progress import ProgressBar

    parse_dtype(dtype)
    overrides = parse_assignments(assignments)
    registry()
    with ProgressBar(f"exporting {source}", unit="step", enabled=not as_json) as bar:
        report = export_model(
            source,
            output,
            format=fmt,
            batch_size=batch_size,
            static=static,
            dtype=dtype,
            tolerance=tolerance,
            overrides=overrides,
            from_strings=True,
            progress=bar,
        )
    if as_json:
        echo_json(report.as_dict())
        return
    shape = ", ".join(f"{i['name']} {tuple(i['shape'])} {i['dtype']}" for i in report.inputs)
    out = ", ".join(f"{o['name']} {tuple(o['shape'])}" for o in report.outputs)
    size = human_bytes(report.bytes)
    click.echo(f"exported {report.model} to {report.path} ({report.format}, {size})")
    click.echo(f"  inputs    {shape}")
    click.echo(f"  outputs   {out}")
    batches = " and ".join(map(str, report.batch_sizes))
    click.echo(
        f"  verified  with {', '.join(report.verified_with)} at batch {batches}: "
        f"max abs difference {report.max_abs_diff:.3g} (tolerance {report.tolerance:.3g})"
    )
    for note in report.notes:
        click.echo(f"  note      {note}")
    if report.format == "pt2":
        click.echo(f"  run it    torch.export.load({str(report.path)!r}).module()(x)")
    else:
        click.echo(f"  run it    onnxruntime.InferenceSession({str(report.path)!r})")


def _batch_sizes(values: tuple[str, ...]) -> list[int]:
    sizes = []
    for value in values:
        for word in value.split(","):
            word = word.strip()
            if not word.isdigit() or int(word) < 1:
                raise click.BadParameter(
                    f"{word!r} is not a batch size (a whole number, 1 or more)",
                    param_hint="'--batch-size'",
                )
            sizes.append(int(word))
    return list(dict.fromkeys(sizes)) or [1]


@click.command("bench", short_help="Time a model eager, compiled and exported, side by side.")
@click.argument("source", shell_complete=complete_source)
@click.option(
    "--batch-size",
    "batch_sizes",
    multiple=True,
    metavar="N",
    help="Batch size to measure (repeatable, or 1,8,32); default 1.",
)
@click.option("--dtype", metavar="DTYPE", help=_DTYPE_HELP)
@click.option("--device", metavar="DEVICE", help="Where to run: cpu, cuda, cuda:N, mps.")
@click.option(
    "--modes",
    default="eager,compile,export",
    show_default=True,
    metavar="MODE[,...]",
    help="What to measure: eager, compile (torch.compile), export (torch.export).",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    metavar="N",
    default=5,
    show_default=True,
    help="Untimed calls per mode.",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    metavar="N",
    default=50,
    show_default=True,
    help="Timed calls per mode.",
)
@click.option(
    "--backend",
    metavar="NAME",
    default="inductor",
    show_default=True,
    help="torch.compile backend (aot_eager needs no C++ compiler).",
)
@set_option
@json_option
def bench_command(
    source: str,
    batch_sizes: tuple[str, ...],
    dtype: str | None,
    device: str | None,
    modes: str,
    warmup: int,
    iterations: int,
    backend: str,
    assignments: tuple[str, ...],
    as_json: bool,
) -> None:
    """Time SOURCE eager, compiled and exported, side by side in one run.

    After warm-up (compilation happens there: see PREPARE), each mode's calls
    are interleaved with the others', so a busy moment of the machine hits all
    alike. Reported per mode and batch size: median and 90th-percentile
    latency, samples per second, peak memory and the speed-up over eager.
    Compare modes within one run, not times across runs or machines.
    """
    from zoo_core.deploy.bench import benchmark
    from zoo_core.models.placement import parse_device, parse_dtype
    from zoo_core.progress import ProgressBar

    parse_dtype(dtype)
    parse_device(device)
    sizes = _batch_sizes(batch_sizes)
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    overrides = parse_assignments(assignments)
    registry()
    with ProgressBar(f"benchmarking {source}", unit="call", enabled=not as_json) as bar:
        report = benchmark(
            source,
            batch_sizes=sizes,
            modes=wanted,
            dtype=dtype,
            device=device,
            warmup=warmup,
            iterations=iterations,
            backend=backend,
            overrides=overrides,
            from_strings=True,
            progress=bar,
        )
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(report.table())


COMMANDS = (export_command, bench_command)
