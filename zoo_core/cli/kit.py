"""``zoo check`` and ``zoo new-plugin``: the plugin author's kit.

``check`` imports torch inside its body; ``new-plugin`` never does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo_core.cli._common import echo_json, json_option, registry, set_option, table
from zoo_core.cli.complete import complete_architectures, complete_plugin_names
from zoo_core.errors import PluginError, ZooError
from zoo_core.models.config import parse_assignments
from zoo_core.plugins.registry import PluginInfo, Registry
from zoo_core.untrusted import clean_text

# How many distinct lines a model printed during its checks zoo check shows.
_PRINTED_LINES = 5


def _targets(
    reg: Registry, names: tuple[str, ...], plugin_names: tuple[str, ...]
) -> tuple[list[str], list[PluginInfo]]:
    """Qualified model names to check, and found plugins that give no models."""
    if not names and not plugin_names:
        return [e.qualified_name for e in reg.models()], reg.unusable
    targets: list[str] = []
    problems: list[PluginInfo] = []
    for wanted in plugin_names:
        plugin = reg.plugin(wanted)
        if plugin is None:
            raise PluginError(f"no zoo plugin named {wanted!r}", hint="'zoo plugins' lists them")
        if plugin.status == "disabled":
            raise PluginError(
                f"plugin {plugin.name} is disabled (ZOO_DISABLE_PLUGINS)",
                hint="unset ZOO_DISABLE_PLUGINS to check it",
            )
        if plugin.status != "ok":
            problems.append(plugin)
        targets += [e.qualified_name for e in reg.models() if e.plugin.name == plugin.name]
    targets += [reg.resolve(name).qualified_name for name in names]
    return list(dict.fromkeys(targets)), problems


def _plugin_row(p: PluginInfo) -> dict[str, Any]:
    return {"plugin": p.name, "status": p.status, "error": p.error}


@click.command("check", short_help="Run the conformance checks on installed models.")
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_architectures)
@click.option(
    "--plugin",
    "plugin_names",
    multiple=True,
    metavar="PLUGIN",
    shell_complete=complete_plugin_names,
    help="Check every model of this plugin (repeatable).",
)
@set_option
@click.option("-v", "--verbose", is_flag=True, help="Show every check, not only problems.")
@json_option
def check_command(
    names: tuple[str, ...],
    plugin_names: tuple[str, ...],
    assignments: tuple[str, ...],
    verbose: bool,
    as_json: bool,
) -> None:
    """Run the conformance checks on models (all installed models if none is named).

    Exits 1 if any check fails; warnings (a capability that works but is not
    declared in the model's ModelSpec(supports=...), placeholders left by
    zoo new-plugin) do not fail.
    With --set, each model is checked with that config instead of its defaults.
    The plugin author's guide explains each check and how to fix it: 'zoo docs'
    prints where it is installed.
    """
    overrides = parse_assignments(assignments)
    reg = registry(warn=False)
    targets, problems = _targets(reg, names, plugin_names)
    if not targets and not problems:
        click.echo("no models to check (pip install a zoo plugin, or zoo new-plugin NAME)")
        return

    from zoo_core.models.build import Architecture
    from zoo_core.progress import ProgressBar, part_of
    from zoo_core.testing import CHECKS, run_checks

    configs = {
        name: Architecture.named(name).config(overrides, from_strings=True) if overrides else None
        for name in targets
    }
    reports = []
    total = len(CHECKS) * len(targets)
    with ProgressBar("checking", unit="check", enabled=not as_json) as bar:
        for i, name in enumerate(targets):
            bar.describe(f"checking {name.partition(':')[2] or name}")
            progress = part_of(bar, i * len(CHECKS), total)
            reports.append(run_checks(name, configs[name], progress=progress))
    failed = [r for r in reports if not r.passed]
    if as_json:
        echo_json(
            {
                "passed": not failed and not problems,
                "models": [r.as_dict() for r in reports],
                "plugins": [_plugin_row(p) for p in problems],
            }
        )
    else:
        _print_human(reports, problems, verbose)
    for report in reports:
        # What the model's own code printed (once per line): never on stdout, never 20 times.
        if report.output:
            shown = report.output[:_PRINTED_LINES]
            more = len(report.output) - len(shown)
            click.echo(f"zoo: {report.label} printed while it was checked:", err=True)
            for line in shown:
                click.echo(f"  {clean_text(line)}", err=True)
            if more:
                click.echo(f"  ... and {more} more line(s)", err=True)
    if failed or problems:
        parts = []
        if failed:
            parts.append(f"{len(failed)} of {len(reports)} model(s) failed the zoo checks")
        if problems:
            parts.append(f"{len(problems)} plugin(s) could not be loaded")
        raise ZooError(
            "; ".join(parts),
            hint="each failure above says what is wrong and how to fix it",
        )


def _print_human(reports: list[Any], problems: list[PluginInfo], verbose: bool) -> None:
    rows = [
        (r.label, r.plugin or "-", "pass" if r.passed else "FAIL", r.summary()) for r in reports
    ]
    rows += [(f"({p.name})", p.name, "FAIL", f"plugin is {p.status}") for p in problems]
    click.echo(table(rows, ("MODEL", "PLUGIN", "RESULT", "CHECKS")))
    for p in problems:
        click.echo(f"\n{p.name}: plugin is {p.status}: {p.error}")
    for report in reports:
        if verbose:
            rows = [(r.check, r.status.upper() if r.status == "fail" else r.status, r.message)
                    for r in report.results]  # fmt: skip
            click.echo(f"\n{report.label}")
            for line in table(rows, ("CHECK", "RESULT", "DETAIL")).splitlines():
                click.echo(f"  {line}")
        undeclared = report.undeclared
        for r in report.results:
            if r.status in ("fail", "warn") and r.check not in undeclared:
                word = "FAILED" if r.status == "fail" else "warning"
                click.echo(f"\n{report.label}: {r.check} {word}: {r.message}")
                click.echo(f"  why: {r.reason}")
                click.echo(f"  fix: {r.hint}")
        if undeclared:
            # One line for all of them: each is good news, not a problem to explain.
            click.echo(
                f"\n{report.label}: works with {', '.join(undeclared)}, which its ModelSpec "
                "does not declare (warning)"
            )
            click.echo(f"  fix: add supports={tuple(undeclared)!r} to its ModelSpec, so that "
                       "zoo list --supports finds it (-v shows what was verified)")  # fmt: skip


@click.command("new-plugin", short_help="Start a plugin project of your own (e.g. zoo-mlp).")
@click.argument("name")
@click.option(
    "--model", metavar="MODEL", help="The model it registers (default: NAME without 'zoo-')."
)
@click.option(
    "-o",
    "--output",
    "directory",
    type=click.Path(file_okay=False),
    help="Directory to create (default: ./NAME); must not exist or be empty.",
)
def new_plugin_command(name: str, model: str | None, directory: str | None) -> None:
    """Write a complete plugin project for distribution NAME (e.g. zoo-mlp).

    The project installs with pip install -e DIR, appears in zoo list, and
    passes zoo check and its own pytest before any edit; then replace the
    example model in PACKAGE/model.py with yours.
    """
    from zoo_core.kit.scaffold import new_plugin, plugin_names

    names = plugin_names(name, model)
    target = Path(directory) if directory is not None else Path(names.dist)
    clashes = _name_clashes(names, target)
    path = new_plugin(name, model=model, directory=directory)
    for clash in clashes:
        click.echo(f"zoo: warning: {clash}", err=True)
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    shown = Path(directory) if directory is not None else Path(names.dist)
    click.echo(f"created {names.dist} (model {names.model}) in {shown}:")
    for f in files:
        click.echo(f"  {f}")
    click.echo("next:")
    click.echo(f"  pip install -e {shown}")
    click.echo(f"  zoo check {names.model}")
    # Its tests need the test extra (pytest), which a plain install leaves out.
    click.echo(f"  pip install -e '{shown}[test]' && pytest {shown}")
    click.echo(f"  then write your model in {shown / names.package / 'model.py'}")


def _name_clashes(names: Any, target: Path) -> list[str]:
    """What already answers to the new plugin's names: installed, importable, or beside it."""
    import importlib.metadata
    import importlib.util

    found = []
    try:
        version = importlib.metadata.version(names.dist)
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        found.append(
            f"a distribution named {names.dist} {version} is already installed; "
            f"'pip install -e {target}' would replace it"
        )
    try:
        spec = importlib.util.find_spec(names.package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        where = spec.origin or ", ".join(spec.submodule_search_locations or ())
        found.append(
            f"a module named {names.package} is already importable ({where}); "
            "the two would shadow each other"
        )
    parent = target.absolute().parent
    for local in (names.package, f"{names.package}.py"):
        if (parent / local).exists():
            found.append(
                f"{parent / local} already exists next to the new project; Python started "
                f"in {parent} imports it instead of the plugin's package"
            )
    taken = [e for e in registry(warn=False).models() if e.name == names.model]
    if taken:
        found.append(
            f"a model named {names.model!r} is already registered by {taken[0].plugin.name}; "
            f"choose another with --model, or users will have to write DIST:{names.model}"
        )
    return found


COMMANDS = (check_command, new_plugin_command)
