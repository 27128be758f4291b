"""``zoo list``, ``zoo info``, ``zoo load`` and ``zoo save``.

Only ``list`` avoids torch; the others import it inside the command body.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import click

from zoo_core.cli._common import (
    echo_json,
    human_bytes,
    json_option,
    model_output_to_stderr,
    registry,
    set_option,
    table,
)
from zoo_core.cli.complete import (
    complete_architectures,
    complete_device,
    complete_dtype,
    complete_model_names,
    complete_source,
)
from zoo_core.cli.hub import echo_card
from zoo_core.cli.variants import echo_variant, list_pretrained, variant_rows_for, variants_table
from zoo_core.models.config import parse_assignments
from zoo_core.plugins.contract import CAPABILITIES


@click.command("list", short_help="List installed models (name, plugin, summary).")
@click.argument("pattern", required=False)
@click.option(
    "--pretrained",
    is_flag=True,
    help="List weights variants (NAME.TAG) with their metric, size and license.",
)
@click.option(
    "--supports",
    metavar="CAPABILITY[,...]",
    help="Only models that declare every capability named: "
    + ", ".join(CAPABILITIES)
    + " (e.g. --supports export,compile).",
)
@json_option
def list_command(
    pattern: str | None, pretrained: bool, supports: str | None, as_json: bool
) -> None:
    """List installed models, optionally filtered by an fnmatch PATTERN (e.g. 'simple_*').

    With --supports, only the models whose plugin declares those capabilities
    (each verified by 'zoo check'); read from the plugins' specs, so this never
    imports torch.
    """
    wanted = _capabilities(supports)
    if pretrained:
        list_pretrained(pattern, as_json, supports=wanted)
        return
    entries = registry().models(pattern, supports=wanted)
    if as_json:
        echo_json([e.as_dict() for e in entries])
        return
    if not entries:
        if wanted:
            click.echo(f"no models declare {', '.join(wanted)}" + (" and match" if pattern else ""))
        else:
            click.echo(
                "no models match" if pattern else "no models installed (pip install zoo-cnn)"
            )
        return
    rows = [(e.display_name, e.plugin.name, e.spec.summary) for e in entries]
    click.echo(table(rows, ("NAME", "PLUGIN", "SUMMARY")))


def _capabilities(text: str | None) -> tuple[str, ...]:
    """``--supports export,compile`` as capability names; unknown ones are a usage error."""
    if text is None:
        return ()
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    unknown = [w for w in words if w not in CAPABILITIES]
    if unknown or not words:
        raise click.BadParameter(
            f"unknown capability {', '.join(map(repr, unknown)) or repr(text)}; "
            f"use one or more of {', '.join(CAPABILITIES)}, separated by commas",
            param_hint="'--supports'",
        )
    return tuple(c for c in CAPABILITIES if c in words)


def _tensor_stats(model: Any) -> dict[str, Any]:
    from zoo_core.storage.aliases import tensor_bytes

    state = model.state_dict()
    floats = {str(t.dtype).removeprefix("torch.") for t in state.values() if t.is_floating_point()}
    return {
        # parameters() and tensor_bytes count a tied tensor (shared embedding) once.
        "parameters": sum(p.numel() for p in model.parameters()),
        "bytes": tensor_bytes(state),
        "dtype": ",".join(sorted(floats)) or None,
    }


@click.command("info", short_help="Show a model's config fields, size and example input.")
@click.argument("source", shell_complete=complete_source)
@set_option
@json_option
def info_command(source: str, assignments: tuple[str, ...], as_json: bool) -> None:
    """Show a model's config fields, parameter count and example input.

    SOURCE is a model name, a saved model or hf://OWNER/REPO[@REVISION]; nothing
    is initialised or read beyond the config (for hf://, only config.json and
    the model card are downloaded, and the card's metadata is shown: license,
    metrics, labels), so this is cheap even for large models.
    """
    import torch

    from zoo_core.models.config import config_fields, config_to_dict, format_value
    from zoo_core.models.cost import model_cost
    from zoo_core.sources.resolve import describe_source

    registry()
    with model_output_to_stderr():
        arch, config, origin, card, file_bytes = describe_source(
            source, parse_assignments(assignments)
        )
        model = arch.build_meta(config, where=origin)
        with torch.device("meta"):
            example = arch.example_input(model, 1)
        cost = model_cost(arch, config)  # on meta: shapes only, however large the model
    entry = arch.entry
    assert entry is not None
    stats = _tensor_stats(model)
    plain = config_to_dict(config)
    fields = [
        {
            "name": f.name,
            "type": f.type,
            "default": None if f.default is dataclasses.MISSING else _plain(f.default),
            "required": f.default is dataclasses.MISSING,
            "value": plain[f.name],
            "help": f.help,
            "shown_default": "(required)"
            if f.default is dataclasses.MISSING
            else format_value(f.default),
            "shown_value": format_value(getattr(config, f.name)),
        }
        for f in config_fields(arch.Config)
    ]
    data = {
        **entry.as_dict(),
        "source": origin,
        "config": plain,
        "fields": [{k: v for k, v in f.items() if not k.startswith("shown_")} for f in fields],
        **stats,
        "flops_per_sample": cost["flops_per_sample"],
        "file_bytes": None,
        **_input_summary(example),
    }
    if card is not None:
        data["card"] = card
    variant, variants = variant_rows_for(source, entry)
    if variant is not None:
        data["variant"] = variant
        data["supports"] = variant["supports"]
        data["file_bytes"] = variant["bytes"]
    else:
        data["variants"] = variants
        data["file_bytes"] = file_bytes
    if as_json:
        echo_json(data)
        return
    if variant is not None:
        echo_variant(variant)
        click.echo("")
    version = f" {entry.plugin.version}" if entry.plugin.version else ""
    click.echo(f"{entry.display_name}  ({entry.plugin.name}{version})")
    if entry.spec.summary:
        click.echo(f"  {entry.spec.summary}")
    if origin != source:
        click.echo(f"  source      {origin}")
    click.echo(f"  class       {entry.spec.target}")
    click.echo(f"  tags        {', '.join(entry.spec.tags) or '-'}")
    click.echo(
        f"  parameters  {stats['parameters']:,} ({human_bytes(stats['bytes'])} as {stats['dtype']})"
    )
    click.echo(f"  cost        {_cost_text(data)}")
    click.echo(f"  supports    {', '.join(data['supports']) or '-'} (verified by 'zoo check')")
    click.echo(f"  input       {_inputs_text(example)}")
    click.echo("  config")
    rows = []
    for f in fields:
        changed = f["shown_value"] != f["shown_default"]
        value = f"-> {f['shown_value']}" if changed else ""
        rows.append(
            ("   ", f["name"], f["type"], f"= {f['shown_default']} {value}".rstrip(), f["help"])
        )
    click.echo(table(rows, ("", "", "", "", "")).split("\n", 1)[1])
    if card is not None:
        echo_card(card)
    if variants:
        click.echo("  pretrained weights (NAME.TAG; * default)")
        click.echo(variants_table(variants, indent="    "))


def _cost_text(data: dict[str, Any]) -> str:
    flops = data["flops_per_sample"]
    parts = [f"{flops:,} FLOPs per sample" if flops is not None else "FLOPs not countable"]
    if data["file_bytes"] is not None:
        parts.append(f"{human_bytes(data['file_bytes'])} of weight files")
    return "; ".join(parts)


def _plain(value: Any) -> Any:
    from zoo_core.models.config import config_to_dict

    return config_to_dict({"v": value})["v"]


def _input_summary(inputs: Any) -> dict[str, Any]:
    """JSON fields for a model's example input: one tensor, or several by position or name."""
    from zoo_core.models.model import input_tensors

    pairs = input_tensors(inputs)
    if len(pairs) == 1 and not isinstance(inputs, (tuple, dict)):
        t = pairs[0][1]
        return {"input_shape": list(t.shape), "input_dtype": str(t.dtype).removeprefix("torch.")}
    return {
        "input_shape": {k: list(t.shape) for k, t in pairs},
        "input_dtype": {k: str(t.dtype).removeprefix("torch.") for k, t in pairs},
    }


def _inputs_text(inputs: Any) -> str:
    from zoo_core.models.model import input_tensors

    pairs = input_tensors(inputs)
    if len(pairs) == 1 and not isinstance(inputs, (tuple, dict)):
        t = pairs[0][1]
        return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"
    return ", ".join(
        f"{k}: {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for k, t in pairs
    )


def _output_shape(output: Any) -> Any:
    if hasattr(output, "shape"):
        return list(output.shape)
    if isinstance(output, (tuple, list)):
        return [_output_shape(o) for o in output]
    if isinstance(output, dict):
        return {k: _output_shape(v) for k, v in output.items()}
    return None


@click.command("load", short_help="Load or build a model, time it and one forward pass.")
@click.argument("source", shell_complete=complete_source)
@set_option
@click.option(
    "--device",
    metavar="DEVICE",
    shell_complete=complete_device,
    help="Where to put the weights: cpu, cuda, cuda:N, mps.",
)
@click.option(
    "--dtype",
    metavar="DTYPE",
    shell_complete=complete_dtype,
    help="Cast floating weights: float32, float16, bfloat16, float64.",
)
@click.option(
    "--seed", type=int, metavar="N", help="Seed for a freshly built model (model names only)."
)
@click.option(
    "--arch",
    metavar="MODEL",
    shell_complete=complete_architectures,
    help="Architecture of weights saved by other tools (a Hugging Face directory, a bare file).",
)
@json_option
def load_command(
    source: str,
    assignments: tuple[str, ...],
    device: str | None,
    dtype: str | None,
    seed: int | None,
    arch: str | None,
    as_json: bool,
) -> None:
    """Build or load a model, run one forward pass on its example input, summarise it.

    SOURCE is a saved model directory, a .safetensors file with zoo metadata,
    hf://OWNER/REPO[@REVISION] on the Hugging Face Hub, or a model name (built
    fresh, with --set overrides). With --arch, SOURCE may come from another
    tool (PyTorchModelHubMixin, save_torch_model): config fields are read from
    its config.json where they match, and --set adds to them.

    Two times are reported: "ready in" (load_seconds in --json) until the model
    is usable, and "first forward" (forward_seconds). A saved model loaded on
    the CPU without --dtype is memory-mapped (memory_mapped: true): its weights
    are read from disk during the first forward, not before.
    """
    import torch

    from zoo_core.api import open_model
    from zoo_core.models.build import Architecture, origin_of
    from zoo_core.models.placement import parse_device, parse_dtype
    from zoo_core.progress import ProgressBar

    # Check the words first: a typo in --dtype is a usage error, whatever SOURCE is.
    parse_dtype(dtype)
    parse_device(device)
    overrides = parse_assignments(assignments)
    registry()
    with ProgressBar("reading weights", enabled=not as_json) as bar, model_output_to_stderr():
        loaded = open_model(
            source,
            device=device,
            dtype=dtype,
            overrides=overrides,
            from_strings=True,
            seed=seed,
            arch=arch,
            progress=bar,
        )
    model = loaded.model
    ref = next(iter(model.state_dict().values()), None)
    on_cuda = ref is not None and ref.device.type == "cuda"
    origin = origin_of(model)
    arch = origin.arch if origin is not None else Architecture.of(loaded.entry)
    with torch.inference_mode(), model_output_to_stderr():
        example = arch.example_input(model, 1)
        started = time.perf_counter()
        output = arch.forward(model, example)
        if on_cuda:
            torch.cuda.synchronize()  # kernels run asynchronously: wait for the real end
        forward_seconds = time.perf_counter() - started
    stats = _tensor_stats(model)
    entry = loaded.entry
    data = {
        "source": loaded.source,
        "source_kind": loaded.source_kind,
        "architecture": entry.name,
        "qualified_name": entry.qualified_name,
        "plugin": entry.plugin.name,
        "plugin_version": entry.plugin.version,
        **stats,
        "device": str(ref.device) if ref is not None else "cpu",
        "load_seconds": round(loaded.load_seconds, 6),
        "forward_seconds": round(forward_seconds, 6),
        "memory_mapped": False,
        **_input_summary(example),
        "output_shape": _output_shape(output),
        **loaded.details,
    }
    if as_json:
        echo_json(data)
        return
    where = "built fresh" if loaded.source_kind == "name" else f"loaded from {loaded.source}"
    version = f" {entry.plugin.version}" if entry.plugin.version else ""
    click.echo(f"{entry.name} ({entry.plugin.name}{version}), {where}")
    click.echo(f"  parameters     {stats['parameters']:,}")
    click.echo(
        f"  tensors        {human_bytes(stats['bytes'])} of {stats['dtype']} on {data['device']}"
    )
    if loaded.source_kind == "name":
        how = "built and initialised"
    elif data["memory_mapped"]:
        how = "weights memory-mapped, read from disk during the first forward"
    else:
        how = f"weights read into memory on {data['device']}"
    click.echo(f"  ready in       {loaded.load_seconds:.3f} s ({how})")
    shapes = f"{_inputs_text(example)} -> {_shape_text(data['output_shape'])}"
    click.echo(f"  first forward  {forward_seconds:.3f} s ({shapes})")
    if data.get("realigned"):
        click.echo(
            f"  realigned      {len(data['realigned'])} tensor(s) the file placed off their "
            "element size, copied into aligned memory"
        )


def _shape_text(shape: Any) -> str:
    return str(tuple(shape)) if isinstance(shape, list) else str(shape)


@click.command("save", short_help="Save a model by name, or a weights variant, to a directory.")
@click.argument("name", metavar="NAME", shell_complete=complete_model_names)
@click.argument("directory", type=click.Path(file_okay=False))
@set_option
@click.option(
    "--seed", type=int, metavar="N", help="Initialise from this seed (reproducible weights)."
)
@click.option(
    "--max-shard-size",
    metavar="SIZE",
    help="Split weights into shards of at most this size (bytes, or e.g. 500MB).",
)
def save_command(
    name: str,
    directory: str,
    assignments: tuple[str, ...],
    seed: int | None,
    max_shard_size: str | None,
) -> None:
    """Save NAME to DIRECTORY, atomically: a model built fresh, or a weights variant.

    \b
    zoo save simple_cnn ./cnn --set num_classes=5 --seed 0    built fresh
    zoo save simple_cnn.digits ./digits                       a variant, with its metadata
    zoo save simple_cnn.digits ./two --set num_classes=2      fine-tuned: a new head

    A variant is saved with its weights section (labels, preprocessing, license,
    metrics), so 'zoo predict DIRECTORY' works as on the variant; a new head
    drops the labels and metrics and records the variant as its base.
    """
    from zoo_core.api import open_model, save_model
    from zoo_core.progress import ProgressBar
    from zoo_core.sources.resolve import source_kind

    overrides = parse_assignments(assignments)
    if source_kind(name) in ("path", "missing", "hub"):
        raise click.UsageError(
            f"{name} is a saved model; 'zoo save' takes a model name or a weights variant "
            "NAME.TAG (copy a saved directory as it is, or 'zoo pull' a Hub model)"
        )
    registry()
    with model_output_to_stderr():
        loaded = open_model(
            name, overrides=overrides, from_strings=True, seed=seed, names_only=True
        )
    import warnings

    from zoo_core.errors import ZooWarning
    from zoo_core.storage.record import is_zoo_file
    from zoo_core.storage.writer import shard_limit

    if max_shard_size is not None:
        shard_limit(max_shard_size, name="--max-shard-size")

    what = loaded.source if loaded.source_kind == "variant" else loaded.entry.name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZooWarning)
        with ProgressBar(f"saving {what}") as bar, model_output_to_stderr():
            path = save_model(loaded.model, directory, max_shard_size=max_shard_size, progress=bar)
    for w in caught:
        if issubclass(w.category, ZooWarning):
            click.echo(f"zoo: warning: {w.message}", err=True)
    # Only what this save wrote: files the user keeps in the directory are theirs.
    files = sorted(p.name for p in path.iterdir() if is_zoo_file(p.name))
    total = sum((path / f).stat().st_size for f in files)
    click.echo(f"saved {what} to {path} ({', '.join(files)}; {human_bytes(total)} on disk)")


COMMANDS = (list_command, info_command, load_command, save_command)
