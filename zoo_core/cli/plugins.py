"""``zoo plugins``: what was discovered, and what is broken and why. Imports no torch."""

from __future__ import annotations

import warnings

import click

from zoo_core.cli._common import echo_json, json_option, registry, table
from zoo_core.plugins.contract import PLUGIN_API_VERSION
from zoo_core.plugins.registry import ZooPluginWarning
from zoo_core.pretrained.catalogue import get_variants
from zoo_core.version import __version__


@click.command("plugins", short_help="List plugins: version, plugin API, models, problems.")
@json_option
def plugins_command(as_json: bool) -> None:
    """List discovered plugins: distribution, version, models, status and errors."""
    reg = registry(warn=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZooPluginWarning)  # listed below instead
        variants = get_variants()
    published: dict[str, list[str]] = {}
    for v in variants.find():
        published.setdefault(v.publisher.name, []).append(v.name)
    if as_json:
        echo_json([{**p.as_dict(), "weights": published.get(p.name, [])} for p in reg.plugins])
        return
    if not reg.plugins:
        click.echo("no zoo plugins installed (pip install zoo-cnn)")
        return
    rows = [
        (
            p.name,
            p.version or "-",
            "-" if p.api_version is None else str(p.api_version),
            p.status,
            ", ".join(p.models) or "-",
        )
        for p in sorted(reg.plugins, key=lambda p: p.name)
    ]
    click.echo(table(rows, ("PLUGIN", "VERSION", "API", "STATUS", "MODELS")))
    click.echo(f"\nzoo-core {__version__} provides plugin API {PLUGIN_API_VERSION}")
    for p in reg.plugins:
        if p.error and p.status != "ok":
            click.echo(f"\n{p.name} ({p.module}) is {p.status}: {p.error}")
    conflicts = reg.conflicts()
    for name, entries in conflicts.items():
        where = ", ".join(e.qualified_name for e in entries)
        click.echo(
            f"\nconflict: {name!r} is registered by several plugins ({where}); use DIST:NAME"
        )
    for problem in variants.problems:
        click.echo(f"\n{problem}")


COMMANDS = (plugins_command,)
