"""``zoo convert`` and ``zoo verify``: bringing legacy checkpoints in, checking saved models.

Both import torch (and zoo_core's heavy modules) only inside the command body.
"""

from __future__ import annotations

import os

import click

from zoo_core.cli._common import (
    echo_json,
    json_option,
    model_output_to_stderr,
    registry,
    set_option,
)
from zoo_core.cli.complete import complete_architectures
from zoo_core.models.config import parse_assignments


@click.command("convert", short_help="Convert a PyTorch .pt/.pth state dict to a zoo model.")
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--arch",
    required=True,
    metavar="MODEL",
    shell_complete=complete_architectures,
    help="The architecture the checkpoint was trained as.",
)
@set_option
@click.option(
    "-o", "--output", "output", required=True, type=click.Path(file_okay=False),
    help="The zoo directory to write (replaced atomically if it is a zoo model).",
)  # fmt: skip
@click.option(
    "--max-shard-size", metavar="SIZE", help="Split weights into shards of at most this size."
)
def convert_command(
    checkpoint: str,
    arch: str,
    assignments: tuple[str, ...],
    output: str,
    max_shard_size: str | None,
) -> None:
    """Convert a PyTorch state-dict CHECKPOINT (.pt/.pth) into a zoo directory.

    The file is read with torch.load(weights_only=True): tensors and plain
    containers only. A checkpoint that needs full unpickling is refused.
    CHECKPOINT may also be another tool's safetensors weights (a directory or
    a .safetensors file), as 'zoo load CHECKPOINT --arch MODEL' reads them.
    """
    import warnings

    from zoo_core.errors import ZooWarning
    from zoo_core.progress import ProgressBar
    from zoo_core.sources.convert import convert_checkpoint
    from zoo_core.storage.writer import shard_limit

    overrides = parse_assignments(assignments)
    if max_shard_size is not None:
        shard_limit(max_shard_size, name="--max-shard-size")
    registry()
    with warnings.catch_warnings(record=True) as caught, ProgressBar(f"writing {output}") as bar:
        warnings.simplefilter("always", ZooWarning)
        with model_output_to_stderr():
            path = convert_checkpoint(
                checkpoint,
                arch,
                output,
                overrides=overrides,
                from_strings=True,
                max_shard_size=max_shard_size,
                progress=bar,
            )
    for w in caught:
        if issubclass(w.category, ZooWarning):
            click.echo(f"zoo: warning: {w.message}", err=True)
    click.echo(f"converted {checkpoint} to {path} ({arch})")


@click.command("verify", short_help="Check a saved model's files, tensors and hashes.")
@click.argument("directory", metavar="SOURCE", type=click.Path())
@click.option("--no-hashes", is_flag=True, help="Skip the sha256 check (structure only).")
@json_option
def verify_command(directory: str, no_hashes: bool, as_json: bool) -> None:
    """Check a saved model SOURCE: a directory, a .safetensors file, hf://OWNER/REPO, NAME.TAG.

    Checks shards, tensors, shapes, dtypes and (for directories) content hashes.
    Exits 0 when nothing is wrong (warnings allowed), 1 when a problem is found.
    """
    from zoo_core.errors import WeightsError
    from zoo_core.progress import ProgressBar
    from zoo_core.sources.verify import verify_source

    registry()
    with ProgressBar(f"hashing {directory}", enabled=not as_json) as bar, model_output_to_stderr():
        path, problems = verify_source(directory, hashes=not no_hashes, progress=bar)
    errors = [p for p in problems if p.level == "error"]
    if as_json:
        echo_json(
            {"path": directory, "ok": not errors, "problems": [p.as_dict() for p in problems]}
        )
        if errors:
            raise click.exceptions.Exit(1)
        return
    for problem in problems:
        click.echo(str(problem))
    if errors:
        # The first problem that knows what to do says it (e.g. --arch for another tool's
        # weights); otherwise the model was damaged after it was written.
        hint = next((p.hint for p in errors if p.hint), None)
        raise WeightsError(
            f"{directory}: {len(errors)} problem(s) found",
            hint=hint or "save or download the model again; 'zoo verify --json' lists them",
        )
    checked = "structure" if no_hashes or os.path.isfile(path) else "structure and content hashes"
    click.echo(f"ok: {directory} ({checked} checked)")


COMMANDS = (convert_command, verify_command)
