"""``zoo push``, ``zoo pull`` and ``zoo search``: share and find models on the Hugging Face Hub.

huggingface_hub (and torch, for ``push``) are imported inside the commands only.
Transfers show huggingface_hub's progress bars on a terminal; ``zoo.cli.main``
turns them off when stderr is not one.
"""

from __future__ import annotations

import os
from typing import Any

import click

from zoo_core.cli._common import (
    echo_json,
    json_option,
    model_output_to_stderr,
    registry,
    set_option,
    table,
)
from zoo_core.cli.complete import complete_architectures, complete_source
from zoo_core.cli.variants import labels_text
from zoo_core.models.config import parse_assignments
from zoo_core.untrusted import clean_text


@click.command("push", short_help="Upload a saved model, a weights variant or a model name.")
@click.argument("source", metavar="SOURCE", shell_complete=complete_source)
@click.argument("repo_id")
@click.option(
    "--revision", metavar="BRANCH", help="Branch to commit to (created from main if missing)."
)
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--message", "-m", metavar="MESSAGE", help="Commit message.")
@click.option("--license", "license_", metavar="LICENSE", help="License for the card, e.g. mit.")
@click.option("--overwrite-card", is_flag=True, help="Regenerate README.md even if one exists.")
@set_option
@click.option("--seed", type=int, metavar="N", help="Seed for a freshly built model or a new head.")
def push_command(
    source: str,
    repo_id: str,
    revision: str | None,
    private: bool,
    message: str | None,
    license_: str | None,
    overwrite_card: bool,
    assignments: tuple[str, ...],
    seed: int | None,
) -> None:
    """Upload SOURCE to REPO_ID on the Hub: a saved model directory, a weights variant
    NAME.TAG (its installed files, as pinned), or a model name built fresh.

    \b
    zoo push ./cnn me/cnn-demo --license mit
    zoo push ./cnn me/cnn-demo --revision v2 -m "retrained"
    zoo push simple_cnn.digits me/digits
    zoo push simple_cnn.digits me/two-digits --set num_classes=2 --seed 0   a new head

    The commit holds config.json, the safetensors weights and a model card
    (README.md, kept if the repository has one unless --overwrite-card), which
    carries the weights' license, labels and metrics where they still apply.
    Pushing files the repository already holds makes no commit: it says so and
    exits 0. The token comes from HF_TOKEN or 'hf auth login'.
    """
    from zoo_core.api import open_model, push_to_hub
    from zoo_core.hub.download import HF_PREFIX, check_revision, parse_hf_source
    from zoo_core.sources.resolve import source_kind

    parse_hf_source(repo_id)  # a malformed id or revision is a usage error before any work
    check_revision(revision)
    overrides = parse_assignments(assignments)
    registry()
    kind = source_kind(source)
    if os.path.isdir(os.path.expanduser(source)):
        if overrides or seed is not None:
            raise click.UsageError("--set and --seed apply to model names, not saved directories")
        target: object = source
        what = source
    elif kind == "variant" and not overrides and seed is None:
        target = what = source  # the installed files, checked against their pin, as they are
    else:
        with model_output_to_stderr():
            loaded = open_model(source, overrides=overrides, from_strings=True, seed=seed)
        if loaded.source_kind not in ("name", "variant"):
            raise click.UsageError(
                f"{source} is not a directory, a weights variant NAME.TAG or a model name"
            )
        target = loaded.model
        if loaded.source_kind == "variant":
            what = f"{loaded.source} (with a new config)"
        else:
            what = f"{loaded.entry.name} (built fresh)"
    with model_output_to_stderr():
        info = push_to_hub(
            target,
            repo_id,
            revision=revision,
            private=private,
            commit_message=message,
            license=license_,
            overwrite_card=overwrite_card,
        )
    name, _ = parse_hf_source(repo_id)
    if getattr(info, "unchanged", False):
        click.echo(f"nothing to push: {HF_PREFIX}{name}@{info.oid} already holds {what}")
        if message:
            click.echo("  (no commit was made, so --message was not used)")
        return
    click.echo(f"pushed {what} to {HF_PREFIX}{name}@{info.oid}")
    click.echo(f"  {info.commit_url}")


@click.command("pull", short_help="Download a model from the Hub into the local cache.")
@click.argument("repo_id")
@click.option("--revision", metavar="REVISION", help="Branch, tag or commit sha (default: main).")
@json_option
def pull_command(repo_id: str, revision: str | None, as_json: bool) -> None:
    """Download REPO_ID (owner/repo or hf://owner/repo[@rev]) into the Hugging Face cache.

    Only config.json, the safetensors weights and README.md are fetched. Prints
    the local path and the resolved commit; with HF_HUB_OFFLINE=1 it answers
    from the cache.
    """
    from zoo_core.hub.download import pull_snapshot

    snap = pull_snapshot(repo_id, revision)
    if as_json:
        echo_json({**snap.as_dict(), "source": snap.uri})
        return
    click.echo(snap.path)
    click.echo(f"  commit  {snap.commit} ({snap.uri})")
    click.echo(f"  files   {', '.join(snap.files)}")


@click.command("search", short_help="Find zoo models on the Hub, and whether they load here.")
@click.argument("query", required=False)
@click.option(
    "--arch",
    metavar="NAME",
    shell_complete=complete_architectures,
    help="Only models of this architecture: NAME, or DIST:NAME for one plugin's.",
)
@click.option("--author", metavar="USER", help="Only models owned by this user or organisation.")
@click.option(
    "--sort",
    type=click.Choice(["downloads", "likes", "updated"]),
    default="downloads",
    show_default=True,
    help="Most downloaded, most liked or most recently updated first.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    metavar="N",
    help="Show at most N models (up to 1000).",
)
@json_option
def search_command(
    query: str | None,
    arch: str | None,
    author: str | None,
    sort: str,
    limit: int,
    as_json: bool,
) -> None:
    """Find models published with zoo on the Hub (HF_ENDPOINT); QUERY is part of the repo id.

    \b
    zoo search                         the most downloaded zoo models
    zoo search digits --sort updated
    zoo search --arch simple_cnn       one architecture (zoo-cnn:simple_cnn: one plugin's)
    zoo search --author me --json

    Each model names its architecture and the plugin that provides it, and
    says whether that plugin is installed here (with the pip command when it
    is not). Nothing is downloaded: see a model's card with
    'zoo info hf://OWNER/REPO', load it with 'zoo load hf://OWNER/REPO'.
    """
    from zoo_core.hub.search import search

    registry()  # broken plugins are reported once, before the table
    results = search(query, arch=arch, author=author, sort=sort, limit=limit)
    if as_json:
        echo_json([r.as_dict() for r in results])
        return
    if not results:
        from zoo_core.hub.transport import endpoint

        click.echo(f"no zoo models on {endpoint()} match")
        return
    rows = [
        (
            r.source,
            r.architecture or "?",
            r.plugin or "?",
            _installed(r),
            f"{r.downloads:,}" if r.downloads is not None else "-",
            f"{r.likes:,}" if r.likes is not None else "-",
            r.last_modified.strftime("%Y-%m-%d") if r.last_modified else "-",
        )
        for r in results
    ]
    header = ("SOURCE", "ARCHITECTURE", "PLUGIN", "INSTALLED", "DOWNLOADS", "LIKES", "UPDATED")
    click.echo(table([[clean_text(c, 120) for c in row] for row in rows], header))
    commands = list(dict.fromkeys(r.install for r in results if r.install))
    if len(commands) == 1:
        click.echo(f"to load the models marked no: {commands[0]}")
    elif commands:
        click.echo("to load the models marked no:")
        for command in commands:
            click.echo(f"  {command}")


def _installed(result: Any) -> str:
    if result.installed:
        return "yes"
    if result.plugin_status == "unknown":
        return "?"
    if result.plugin_status == "not-installed":
        return "no"
    return f"no ({result.plugin_status})"


def echo_card(card: dict[str, Any]) -> None:
    """The model card part of ``zoo info hf://...``: what its metadata says about the weights."""
    if not any(card.values()):
        click.echo("  model card (README.md): no metadata")
        return
    click.echo("  model card (README.md)")
    facts = [
        ("license", card.get("license")),
        ("library", card.get("library_name")),
        ("task", card.get("pipeline_tag")),
        ("datasets", ", ".join(card.get("datasets") or []) or None),
    ]
    for key, value in facts:
        if value:
            click.echo(f"    {key:<11} {clean_text(value, 300)}")
    for m in card.get("metrics") or []:
        value = m["value"]
        shown = f"{value:.6g}" if isinstance(value, (int, float)) else clean_text(value, 40)
        where = ", ".join(clean_text(x, 80) for x in (m.get("split"), m.get("dataset")) if x)
        click.echo(
            f"    metric      {clean_text(m['name'], 80)} = {shown}"
            + (f" ({where})" if where else "")
        )
    if card.get("labels"):
        click.echo(f"    labels      {labels_text(card['labels'], clean_text)}")
    if card.get("tags"):
        click.echo(f"    tags        {clean_text(', '.join(card['tags']), 300)}")


COMMANDS = (push_command, pull_command, search_command)
