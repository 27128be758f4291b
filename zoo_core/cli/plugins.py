"""``zoo plugins``: what was discovered, and what is broken and why. Imports no torch."""

from __future__ import annotations

import click

from zoo_core.cli._common import echo_json, json_option, registry, table
from zoo_core.contract import PLUGIN_API_VERSION
from zoo_core.version import __version__


@click.command("plugins", short_help="List plugins: version, plugin API, models, problems.")
@json_option
def plugins_command(as_json: bool) -> None:
    """List discovered plugins: distribution, version, models, status and errors."""
    reg = registry(warn=False)
    if as_json:
        echo_json([p.as_dict() for p in reg.plugins])
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


COMMANDS = (plugins_command,)
