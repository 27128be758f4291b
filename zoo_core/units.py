"""Sizes written for people."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``; whole bytes below 1 KiB.

    >>> human_bytes(512), human_bytes(3 * 1024**3)
    ('512 B', '3.0 GiB')
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
