"""``zoo docs``: where the guides are, for an installed zoo as much as for a source checkout.

The plugin author's guide ships inside the package (``zoo_core/guide`` is the
repository's ``docs/`` folder, packaged as data), so the path printed here
exists wherever zoo-core is installed.
"""

from __future__ import annotations

from importlib import resources

import click

from zoo_core.errors import ZooError

GUIDES = {"plugin-authors": "plugin-authors.md"}


def guide_path(name: str = "plugin-authors") -> str:
    """The file system path of an installed guide.

    >>> guide_path().endswith("plugin-authors.md")   # doctest: +SKIP
    True
    """
    path = resources.files("zoo_core") / "guide" / GUIDES[name]
    if not path.is_file():
        raise ZooError(
            f"the {name} guide is missing from this installation ({path})",
            hint="reinstall zoo-core",
        )
    return str(path)


@click.command("docs", short_help="Print where the plugin author's guide is installed.")
def docs_command() -> None:
    """Print the path of the plugin author's guide (what each check means, how to fix it).

    \b
    less "$(zoo docs)"
    """
    click.echo(guide_path())


COMMANDS = (docs_command,)
