"""``python -m zoo_core`` runs the ``zoo`` command."""

from zoo_core.cli import main

main()
