"""Progress of long work: the library says how far it got, the command line draws it.

Library functions that can take a while (writing and reading weights, hashing
files, running the conformance checks) accept ``progress``, a
:data:`ProgressCallback` they call as ``progress(done, total)`` with absolute
counts (bytes, or checks). They never draw anything: :class:`ProgressBar`, used
by the ``zoo`` commands, is the only place that does, through tqdm (which
huggingface_hub's download bars already use), and only on a terminal.

>>> from zoo_core.progress import ProgressBar
>>> with ProgressBar("saving") as bar:                     # doctest: +SKIP
...     save_model(model, "big/", progress=bar)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

__all__ = ["DEFAULT_DELAY", "ProgressBar", "ProgressCallback", "binary_bar", "part_of"]

#: ``progress(done, total)``: ``done`` units of ``total`` are finished (absolute, not a step).
ProgressCallback = Callable[[int, int], None]

#: Seconds of work before a bar appears: quick commands never flash one.
#: tqdm's own ``TQDM_DELAY`` environment variable overrides it (``TQDM_DELAY=0``).
DEFAULT_DELAY = 0.5


def part_of(progress: ProgressCallback | None, start: int, total: int) -> ProgressCallback | None:
    """A callback for one part of a larger job: the part's ``done`` is reported as ``start + done``.

    Lets a function that reports on each of several files (or models) give the
    caller one running count over all of them.

    >>> seen = []
    >>> second = part_of(lambda done, total: seen.append((done, total)), 100, 300)
    >>> second(50, 200)
    >>> seen
    [(150, 300)]
    """
    if progress is None:
        return None

    def report(done: int, _part_total: int) -> None:
        progress(start + done, total)

    return report


class ProgressBar:
    """A progress callback that draws a tqdm bar on ``stream`` (stderr) when it is a terminal.

    Nothing is drawn when ``enabled`` is false (``--json``), when the stream is
    not a terminal (piped, redirected, captured), when ``TQDM_DISABLE`` is set,
    or when the work ends within :data:`DEFAULT_DELAY` seconds. The bar is
    cleared when the context exits, so the command's own output follows cleanly.

    ``unit="B"`` counts bytes, shown as zoo shows sizes (KiB, MiB, GiB, and
    MiB/s: see :func:`binary_bar`); any other unit is a plain count (``"check"``).
    """

    def __init__(
        self,
        description: str,
        *,
        unit: str = "B",
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.description = description
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.shown = enabled and _is_terminal(self.stream) and not _env_true("TQDM_DISABLE")
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.shown:
            return
        if self._bar is None:
            self._bar = self._open(total)
        if total != self._bar.total:
            self._bar.total = total
        if done != self._bar.n:
            self._bar.update(done - self._bar.n)

    def describe(self, description: str) -> None:
        """Change the words in front of the bar (e.g. the model now being checked)."""
        self.description = description
        if self._bar is not None:
            self._bar.set_description_str(description, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self, total: int) -> Any:
        from tqdm import tqdm  # imported only when a bar is really drawn

        bar_class = binary_bar(tqdm) if self.unit == "B" else tqdm
        options: dict[str, Any] = {
            "desc": self.description,
            "total": total,
            "file": self.stream,
            "leave": False,
            "dynamic_ncols": True,
        }
        if "TQDM_DELAY" not in os.environ:
            options["delay"] = DEFAULT_DELAY
        if self.unit == "B":
            options.update(unit="B", unit_scale=True, unit_divisor=1024)
        else:
            options["unit"] = self.unit
        return bar_class(**options)


_BINARY_BARS: dict[type, type] = {}
# tqdm's own right-hand side, with zoo's sizes in place of its counts and rate.
_BINARY_FORMAT = "{l_bar}{bar}| {zoo_n}/{zoo_total} [{elapsed}<{remaining}, {zoo_rate}{postfix}]"


def binary_bar(base: type) -> type:
    """A subclass of the tqdm class ``base`` whose byte bars read as zoo's sizes do.

    tqdm scales counts by ``unit_divisor`` but always scales the rate by 1000
    and names both with SI prefixes (``kB``, ``MB/s``), where zoo says KiB and
    MiB. For bars counting bytes (``unit="B"`` with ``unit_scale``), this one
    shows :func:`zoo_core.units.human_bytes` for the counts and the rate
    (``12.0 MiB/12.0 MiB [00:01<00:00, 9.5 MiB/s]``); other bars are tqdm's.
    ``huggingface_hub`` downloads take it as ``tqdm_class``.
    """
    if base not in _BINARY_BARS:

        class BinaryBar(base):  # type: ignore[misc,valid-type]
            @property
            def format_dict(self) -> dict[str, Any]:
                data = super().format_dict
                if data.get("unit") != "B" or not data.get("unit_scale"):
                    return data
                from zoo_core.units import human_bytes

                n, total, elapsed = data["n"], data["total"], data["elapsed"]
                rate = data.get("rate")
                if rate is None and elapsed:
                    rate = (n - data.get("initial", 0)) / elapsed
                data.update(
                    zoo_n=human_bytes(int(n)),
                    zoo_total=human_bytes(int(total)) if total else "?",
                    zoo_rate=f"{human_bytes(int(rate))}/s" if rate else "? B/s",
                )
                if data.get("bar_format") is None:
                    data["bar_format"] = _BINARY_FORMAT
                return data

        BinaryBar.__name__ = BinaryBar.__qualname__ = f"Binary{base.__name__}"
        _BINARY_BARS[base] = BinaryBar
    return _BINARY_BARS[base]


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
