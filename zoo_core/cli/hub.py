"""``zoo push`` and ``zoo pull``: share models through the Hugging Face Hub.

huggingface_hub (and torch, for ``push``) are imported inside the commands only.
Transfers show huggingface_hub's progress bars on a terminal; ``zoo.cli.main``
turns them off when stderr is not one.
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
from zoo_core.cli.complete import complete_source
from zoo_core.models.config import parse_assignments


@click.command("push", short_help="Upload a saved model (or a model name) to the Hub.")
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
@click.option(
    "--seed", type=int, metavar="N", help="Seed for a freshly built model (model names only)."
)
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
    """Upload SOURCE to REPO_ID on the Hub: a saved model directory, or a model name built fresh.

    \b
    zoo push ./cnn me/cnn-demo --license mit
    zoo push ./cnn me/cnn-demo --revision v2 -m "retrained"

    The commit holds config.json, the safetensors weights and a model card
    (README.md, kept if the repository has one unless --overwrite-card). The
    token comes from HF_TOKEN or 'hf auth login'.
    """
    from zoo_core.api import open_model, push_to_hub
    from zoo_core.hub.download import HF_PREFIX, check_revision, parse_hf_source

    parse_hf_source(repo_id)  # a malformed id or revision is a usage error before any work
    check_revision(revision)
    overrides = parse_assignments(assignments)
    registry()
    if os.path.isdir(os.path.expanduser(source)):
        if overrides or seed is not None:
            raise click.UsageError("--set and --seed apply to model names, not saved directories")
        target: object = source
        what = source
    else:
        with model_output_to_stderr():
            loaded = open_model(source, overrides=overrides, from_strings=True, seed=seed)
        if loaded.source_kind != "name":
            raise click.UsageError(f"{source} is not a directory or a model name")
        target = loaded.model
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


COMMANDS = (push_command, pull_command)
