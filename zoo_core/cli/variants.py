"""``zoo list --pretrained``, the variant parts of ``zoo info``, and ``zoo predict``.

Listing reads only JSON and safetensors headers: it never imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from zoo_core.cli._common import (
    echo_json,
    human_bytes,
    json_option,
    model_output_to_stderr,
    registry,
    table,
)
from zoo_core.cli.complete import complete_device, complete_source
from zoo_core.pretrained.metadata import plain_text

__all__ = [
    "COMMANDS",
    "echo_variant",
    "labels_text",
    "list_pretrained",
    "variant_rows",
    "variant_rows_for",
    "variants_table",
]


def _variants(*, warn: bool = True) -> Any:
    import warnings

    from zoo_core.plugins.registry import ZooPluginWarning
    from zoo_core.pretrained.catalogue import get_variants

    registry(warn=warn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZooPluginWarning)
        found = get_variants()
    if warn:
        for w in caught:
            click.echo(f"zoo: warning: {w.message}", err=True)
    return found


def variant_rows(variants: list[Any]) -> list[dict[str, Any]]:
    """One ``describe_variant`` dict per variant (what ``--json`` prints)."""
    from zoo_core.sources.variant import describe_variant

    return [describe_variant(v) for v in variants]


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def variant_rows_for(source: str, entry: Any) -> tuple[dict[str, Any] | None, list[Any]]:
    """For ``zoo info``: the variant SOURCE names (or None), else the model's variants."""
    from zoo_core.pretrained.catalogue import is_variant_name

    found = _variants(warn=False)
    if is_variant_name(source):
        return variant_rows([found.resolve(source)])[0], []
    rows = variant_rows(found.for_model(entry))
    for r in rows:
        r.pop("config", None)
        r.pop("weights", None)
    return None, rows


def variants_table(rows: list[dict[str, Any]], indent: str = "") -> str:
    """The table ``zoo list --pretrained`` prints."""
    lines = []
    for r in rows:
        name = r["name"] + (" *" if r["default"] else "")
        status = "" if r["status"] == "ok" else f"[{r['status']}] "
        lines.append(
            (
                name,
                r.get("headline") or "-",
                _count(r["parameters"]),
                _count(r.get("flops_per_sample")),
                human_bytes(r["bytes"]) if r["bytes"] is not None else "-",
                plain_text(r["license"] or "-", 40),
                status + plain_text(r["summary"], 80),
            )
        )
    text = table(lines, ("NAME", "METRIC", "PARAMS", "FLOPS", "FILES", "LICENSE", "SUMMARY"))
    return "\n".join(indent + line for line in text.splitlines())


def list_pretrained(pattern: str | None, as_json: bool, supports: tuple[str, ...] = ()) -> None:
    """The body of ``zoo list --pretrained``: variants, the ones with every capability named."""
    rows = variant_rows(_variants().find(pattern))
    rows = [r for r in rows if all(c in r["supports"] for c in supports)]
    if as_json:
        for r in rows:
            r.pop("config", None)
        echo_json(rows)
        return
    if not rows:
        filtered = pattern or supports
        click.echo("no weights variants match" if filtered else "no weights variants installed")
        return
    click.echo(variants_table(rows))
    click.echo("(* the model's default: create_model(NAME, pretrained=True); FILES: weight files)")


def _bytes(n: int | None, what: str) -> str:
    return "-" if n is None else f"{human_bytes(n)} ({what})"


def labels_text(labels: list[str], clean: Callable[[str, int], str]) -> str:
    """The first 20 labels, each made printable by ``clean`` and cut, and how many in all."""
    shown = ", ".join(clean(label, 30) for label in labels[:20])
    return shown + (f" ... ({len(labels)} in all)" if len(labels) > 20 else "")


def echo_variant(row: dict[str, Any]) -> None:
    """``zoo info NAME.TAG`` for people: everything the weights section says."""
    weights = row.get("weights") or {}
    click.echo(f"{row['name']}  (weights by {row['publisher']}; model {row['model']})")
    if row["summary"]:
        click.echo(f"  {plain_text(row['summary'])}")
    facts = [
        ("status", row["status"]),
        ("default", "yes" if row["default"] else "no"),
        ("source", row["source"]),
        ("sha256", f"{row['sha256']} (config.json)"),
        ("parameters", _count(row["parameters"])),
        ("FLOPs/sample", _count(row.get("flops_per_sample"))),
        ("supports", ", ".join(row.get("supports") or []) or "-"),
        ("tensors", _bytes(row.get("tensor_bytes"), "in memory as stored")),
        ("files", _bytes(row["bytes"], "weight files on disk, headers included")),
        ("license", row["license"] or "-"),
        ("task", weights.get("task", "-")),
    ]
    for key, value in facts:
        click.echo(f"  {key:<13} {plain_text(str(value))}")
    dataset = weights.get("dataset") or {}
    if dataset:
        click.echo("  dataset")
        for key, value in dataset.items():
            click.echo(f"    {key:<11} {plain_text(value)}")
    for m in weights.get("metrics") or []:
        split = f" ({plain_text(m['split'], 40)})" if m.get("split") else ""
        click.echo(f"  metric        {plain_text(m['name'], 40)} = {m['value']:.6g}{split}")
    labels = weights.get("labels")
    if labels:
        click.echo(f"  labels        {labels_text(labels, plain_text)}")
    if weights.get("head"):
        click.echo(f"  head          {', '.join(weights['head'])} (re-initialised for new classes)")
    pre = weights.get("preprocessing")
    if pre:
        click.echo(f"  preprocessing {plain_text(json.dumps(pre, sort_keys=True), 300)}")
    training = weights.get("training") or {}
    if training:
        click.echo("  training")
        for key, value in training.items():
            click.echo(f"    {key:<11} {plain_text(str(value), 300)}")
    if row.get("config"):
        click.echo(f"  config        {plain_text(json.dumps(row['config'], sort_keys=True), 300)}")


@click.command("predict", short_help="Run a model on real inputs and print what it predicts.")
@click.argument("source", shell_complete=complete_source)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    metavar="K",
    default=5,
    show_default=True,
    help="Labels to show per input (classifiers with labels).",
)
@click.option(
    "--device",
    metavar="DEVICE",
    shell_complete=complete_device,
    help="Where to run: cpu, cuda, cuda:N, mps.",
)
@click.option(
    "--random",
    "random_weights",
    is_flag=True,
    help="With a model name: predict with freshly initialised weights, on purpose.",
)
@json_option
def predict_command(
    source: str,
    inputs: tuple[str, ...],
    top_k: int,
    device: str | None,
    random_weights: bool,
    as_json: bool,
) -> None:
    """Run a model on real inputs and print what it predicts.

    SOURCE is a weights variant (simple_cnn.digits), a saved model directory,
    hf://OWNER/REPO[@REVISION], or a model name, which means its default
    variant (said on stderr; 'variant' in --json): predictions never come from
    random weights unless --random asks for them. Each INPUT is a .npy array
    with a leading batch dimension holding raw values as the data set stores
    them, or an image file when the variant declares image preprocessing
    (needs zoo-core[images]). The recorded preprocessing is applied by zoo.
    """
    from zoo_core.api import predict
    from zoo_core.models.placement import parse_device
    from zoo_core.sources.resolve import source_kind

    parse_device(device)
    registry()
    by_name = source_kind(source) == "name"
    if random_weights and not by_name:
        raise click.UsageError(f"--random applies to model names; {source} has its own weights")
    with model_output_to_stderr():
        result = predict(
            source, list(inputs), top_k=top_k, device=device, pretrained=not random_weights
        )
    if by_name and not as_json:
        if result.random_weights:
            click.echo(f"zoo: warning: {source} predicts with random weights (--random)", err=True)
        else:
            click.echo(
                f"zoo: predicting with {result.source}, the default weights of {source}", err=True
            )
    if as_json:
        echo_json(
            {
                "source": result.source,
                "architecture": result.architecture,
                "variant": result.variant,
                "random_weights": result.random_weights,
                "output_shape": list(result.outputs.shape),
                "predictions": result.rows,
            }
        )
        return
    for row in result.rows:
        if "top_k" in row:
            best = ", ".join(
                f"{plain_text(t['label'], 40)} {t['probability']:.3f}" for t in row["top_k"]
            )
            click.echo(f"{row['input']}: {best}")
        else:
            values = ", ".join(f"{v:.6g}" for v in row["values"])
            more = ""
            if "summary" in row:
                s = row["summary"]
                more = f", ... (min {s['min']:.4g}, max {s['max']:.4g}, mean {s['mean']:.4g})"
            click.echo(f"{row['input']}: shape {tuple(row['shape'])} [{values}{more}]")


COMMANDS = (predict_command,)
