"""Small output helpers shared by the commands."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import click

from zoo_core.cli.complete import complete_set_keys
from zoo_core.plugins.registry import Registry, ZooPluginWarning, get_registry
from zoo_core.units import human_bytes
from zoo_core.untrusted import clean_lines, clean_text, redact

__all__ = [
    "echo_error",
    "echo_json",
    "human_bytes",
    "json_option",
    "model_output_to_stderr",
    "registry",
    "set_option",
    "show_warning",
    "table",
]

set_option = click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field (repeatable), parsed to the field's type: "
    "n=5, stem.width=64 (nested), layers=3,4,6,3 or (3,4,6,3), widths=a:1,b:2.",
    shell_complete=complete_set_keys,
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@contextlib.contextmanager
def model_output_to_stderr() -> Iterator[None]:
    """Send what a model's own code prints (``print`` in ``__init__`` or ``forward``) to stderr.

    stdout is the command's: ``--json`` must stay JSON, and a table a table.
    """
    with contextlib.redirect_stdout(sys.stderr):
        yield


def registry(*, warn: bool = True) -> Registry:
    """The registry, with one ``zoo: warning:`` line per broken plugin unless ``warn`` is off."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZooPluginWarning)
        reg = get_registry()
    if warn:
        for w in caught:
            if issubclass(w.category, ZooPluginWarning):
                click.echo(f"zoo: warning: {clean_lines(str(w.message))}", err=True)
    return reg


def echo_error(message: str, hint: str | None = None, *, prefix: str = "zoo: error: ") -> None:
    """Print an error and its hint to stderr, with any control character escaped.

    Messages quote file and server text; :func:`zoo_core.untrusted.clean_text`
    has escaped it where it was quoted, and this is the net under that: no
    terminal escape, and no line a file wrote, reaches the terminal.
    """
    click.echo(f"{prefix}{clean_lines(redact(message))}", err=True)
    if hint:
        click.echo(f"  {clean_text(hint, None)}", err=True)


def show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """``warnings.showwarning`` for the command line: zoo's own warnings as ``zoo: warning:``."""
    text = clean_lines(redact(str(message)))
    if getattr(category, "__module__", "").startswith("zoo_core"):
        click.echo(f"zoo: warning: {text}", err=True)
    else:
        click.echo(f"warning: {category.__name__}: {text}", err=True)


def echo_json(data: Any) -> None:
    """Print ``data`` as JSON; a non-finite float (NaN, infinity) is written as ``null``.

    Python's ``json`` would write a bare ``NaN``, which is not JSON: a model's
    output may hold one, and ``--json`` output must stay parseable.
    """
    click.echo(json.dumps(_finite(data), indent=2, default=str, allow_nan=False))
    JSON_WRITTEN.append(True)


#: Set once a command has written its JSON result: an error after it (``zoo check`` that
#: failed) goes to stderr, so stdout stays one JSON document. ``main`` clears it.
JSON_WRITTEN: list[bool] = []


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Left-aligned columns; the last column is not padded."""
    all_rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header) - 1)]
    lines = []
    for r in all_rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
