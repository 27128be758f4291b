"""Checks that a config bounds the work a ``config.json`` can ask of zoo (issue 19).

A saved model's ``config.json`` is untrusted: a 500-byte file asking for
``num_layers=200000`` would make ``zoo info`` and every load build for minutes
and gigabytes before any weight is read. zoo bounds that work itself (see
``zoo_core.models.build``'s meta-build budget), but the first line of defence is
the config: each size field refuses values its author would call absurd.
"""

from __future__ import annotations

import dataclasses

from zoo_core.errors import ConfigError
from zoo_core.kit import checks_plugin  # noqa: F401  (declares config-defaults, needed below)
from zoo_core.kit.framework import Failed, Skipped, Subject, check, few_names

#: The value each integer field is tried with: no honest model has 2**40 of anything.
ABSURD = 2**40


@check(
    "bounded-sizes",
    reason="a config.json from anywhere can ask for any size: a config that accepts "
    "num_layers=2**40 makes zoo info and loads build until time or memory runs out",
    hint="bound each size field in the Config's __post_init__ (raise ValueError for values "
    "above a maximum no honest model reaches, e.g. 'num_layers must be at most 1024'); "
    "the values are tried on the config alone, nothing is built",
    level="warning",
    needs=("config-defaults",),
)
def _check_bounded_sizes(s: Subject) -> str:
    base = s.config()
    sizes = [
        f.name
        for f in dataclasses.fields(base)
        if isinstance(getattr(base, f.name), int) and not isinstance(getattr(base, f.name), bool)
    ]
    if not sizes:
        raise Skipped("the config has no integer fields")
    unbounded = []
    for name in sizes:
        try:
            s.arch.config({name: ABSURD}, base=base)
        except ConfigError:
            continue
        unbounded.append(name)
    if unbounded:
        raise Failed(
            f"the config accepts {few_names(unbounded, 6)} = {ABSURD:,}; a config.json can ask "
            "for that"
        )
    return f"refuses an absurd value ({ABSURD:,}) of each of {few_names(sizes, 6)}"
