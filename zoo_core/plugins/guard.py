"""The plugin guard: third-party hook code runs here, contained.

A plugin is trusted code, but its mistakes must not become zoo's. Each call
(a hook module's import, a hook) runs under :func:`run_guarded`: an alarm in
the main thread, a worker thread elsewhere. Whatever it prints goes to
stderr; ``sys.exit`` and any other ``BaseException`` it raises are recorded
instead of ending the process; a call running past the timeout is stopped (or,
in a worker thread, abandoned). A user's Ctrl-C still interrupts.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import warnings
from typing import Any

__all__ = ["PluginStdout", "run_guarded"]


class PluginStdout:
    """``sys.stdout`` while plugins run: their threads write to stderr, every other one as before.

    An abandoned plugin thread may print at any later moment, so this stays in
    place after such a thread (it is transparent for every other thread).
    """

    def __init__(self, original: Any) -> None:
        self.original = original
        self.plugin_threads: set[int] = set()

    def _target(self) -> Any:
        if threading.get_ident() in self.plugin_threads:
            return sys.stderr
        return self.original

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


class _OutOfTime(BaseException):
    """Raised into a plugin's import or hook by the alarm: a BaseException, so
    ``except Exception`` in the plugin does not swallow it."""


def run_guarded(calls: list[Any], timeout: float) -> list[tuple[str, Any, float]]:
    """Run each plugin's call, none for longer than ``timeout`` seconds; see :func:`_run_alarmed`.

    Returns, per call, ("ok", value, seconds), ("raised", exception, seconds) or
    ("timeout", None, seconds). In the main thread of a Unix process whose
    SIGALRM and SIGINT are free, the calls run right there under an alarm (no
    thread to hand over to, which costs milliseconds on a busy machine);
    elsewhere in worker threads (:func:`_run_threaded`).
    """
    if (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        return _run_alarmed(calls, timeout)
    return _run_threaded(calls, timeout)


def _run_alarmed(calls: list[Any], timeout: float) -> list[tuple[str, Any, float]]:
    """The calls in this thread: an alarm ends one that runs too long, prints go to stderr.

    A ``KeyboardInterrupt`` the plugin raises itself marks it broken; one from
    the user's Ctrl-C (seen by zoo's own SIGINT handler) still interrupts.
    """
    results: list[tuple[str, Any, float]] = []
    saved = (sys.stdout, sys.stderr, list(warnings.filters))
    pressed = {"ctrl_c": False}

    def on_alarm(signum: int, frame: Any) -> None:
        raise _OutOfTime

    def on_interrupt(signum: int, frame: Any) -> None:
        pressed["ctrl_c"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGINT, on_interrupt)
    try:
        for call in calls:
            started = time.perf_counter()
            try:
                sys.stdout = saved[1]
                signal.setitimer(signal.ITIMER_REAL, timeout)
                try:
                    outcome: tuple[str, Any] = ("ok", call())
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except _OutOfTime:
                outcome = ("timeout", None)
            except KeyboardInterrupt as err:
                if pressed["ctrl_c"]:
                    raise
                outcome = ("raised", err)
            except BaseException as err:  # SystemExit and the like included: record, never exit
                outcome = ("raised", err)
            finally:
                sys.stdout, sys.stderr = saved[0], saved[1]
                warnings.filters[:] = saved[2]
            results.append((*outcome, time.perf_counter() - started))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return results


def _run_threaded(calls: list[Any], timeout: float) -> list[tuple[str, Any, float]]:
    """Run each plugin's call in a worker thread, none for longer than ``timeout`` seconds.

    Returns, per call, ("ok", value, seconds), ("raised", exception, seconds) or
    ("timeout", None, seconds). One worker runs the calls in turn (a thread per
    call would cost a hand-over each); the main thread wakes only when the
    worker is done or the call it runs is out of time, and then leaves that
    worker behind and starts a fresh one on the next call. The workers' prints
    go to stderr; ``sys.stderr`` and the warning filters are put back after
    each call if a plugin changed them.
    """
    results: list[tuple[str, Any, float] | None] = [None] * len(calls)
    lock = threading.Lock()
    state = {"index": 0, "started": 0.0, "abandoned": -1}
    saved_stdout = sys.stdout
    proxy = saved_stdout if isinstance(saved_stdout, PluginStdout) else PluginStdout(saved_stdout)
    saved = (sys.stderr, list(warnings.filters))
    left_behind = False

    def work(first: int) -> None:
        ident = threading.get_ident()
        proxy.plugin_threads.add(ident)
        for index in range(first, len(calls)):
            with lock:
                if state["abandoned"] >= first:
                    return  # the main thread gave up on this worker: a new one took over
                state["index"], state["started"] = index, time.perf_counter()
            try:
                outcome: tuple[str, Any] = ("ok", calls[index]())
            except BaseException as err:  # SystemExit and the like included: record, never exit
                outcome = ("raised", err)
            with lock:
                if state["abandoned"] >= first:
                    return
                results[index] = (*outcome, time.perf_counter() - state["started"])
            sys.stderr = saved[0]
            warnings.filters[:] = saved[1]
        proxy.plugin_threads.discard(ident)

    sys.stdout = proxy
    try:
        first = 0
        while first < len(calls):
            worker = threading.Thread(target=work, args=(first,), name="zoo-plugins", daemon=True)
            with lock:
                state["index"], state["started"] = first, time.perf_counter()
            worker.start()
            while True:
                with lock:
                    index, started = state["index"], state["started"]
                    late = time.perf_counter() - started >= timeout and results[index] is None
                    if late:
                        state["abandoned"] = first
                if late:
                    results[index] = ("timeout", None, time.perf_counter() - started)
                    left_behind = True
                    first = index + 1
                    break
                worker.join(max(started + timeout - time.perf_counter(), 0.0))
                if not worker.is_alive():
                    first = len(calls)
                    break
    finally:
        sys.stdout = proxy if left_behind else saved_stdout
        sys.stderr = saved[0]
        warnings.filters[:] = saved[1]
    return [r if r is not None else ("timeout", None, 0.0) for r in results]
