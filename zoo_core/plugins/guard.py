"""The plugin guard: third-party hook code runs here, contained.

A plugin is trusted code, but its mistakes must not become zoo's. Each call
(a hook module's import, a hook) runs under :func:`run_guarded`, in a worker
thread while the calling thread waits for it. Whatever it prints goes to
stderr; ``sys.exit`` and any other ``BaseException`` it raises are recorded
instead of ending the process; a call still running when ``timeout`` seconds
are up is abandoned, and the caller goes on at once. That bound holds
whatever the call does: a loop that catches every exception (a bare
``except:`` retrying forever) or code blocked in C cannot hold the caller
longer, which an alarm raised into the calling thread could not promise. A
user's Ctrl-C interrupts the waiting thread at once.

Python cannot kill a thread: an abandoned call is told to stop (an exception
raised into it, which a hook catching only ``Exception`` does not swallow), and
otherwise keeps running in the background until the process exits; the
plugin is reported broken and never called again.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
import time
import warnings
from typing import Any

__all__ = ["PluginStdout", "call_hook", "describe", "run_guarded"]


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
    """Raised into an abandoned plugin call: a BaseException, so ``except Exception`` in the
    plugin does not swallow it."""


def _stop(thread: threading.Thread) -> None:
    """Ask an abandoned worker to stop: raise :class:`_OutOfTime` in it (best effort)."""
    ident = thread.ident
    if ident is None or not thread.is_alive():
        return
    # Not CPython (no pythonapi): the thread is left to run.
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(_OutOfTime)
        )


def run_guarded(calls: list[Any], timeout: float) -> list[tuple[str, Any, float]]:
    """Run each plugin's call in a worker thread, none for longer than ``timeout`` seconds.

    Returns, per call, ("ok", value, seconds), ("raised", exception, seconds) or
    ("timeout", None, seconds). The caller waits at most ``timeout`` seconds per
    call (plus the hand-over), however the call behaves; see the module docstring.
    """
    if not calls:
        return []
    return _run_threaded(calls, timeout)


def call_hook(hook: str, impls: list[Any], timeout: float, env: str) -> list[Any] | Exception:
    """Call a plugin's implementations of ``hook`` under the guard, as discovery does.

    Returns their results, or the exception to report: what it raised (an
    ``Exception``), or a :class:`~zoo_core.errors.PluginError` for a
    ``BaseException`` such as ``SystemExit`` or a ``KeyboardInterrupt`` it raised
    itself, or for a call still running after ``timeout`` seconds (set by ``env``).
    """
    from zoo_core.errors import PluginError

    ((outcome, value, _),) = run_guarded([lambda: [impl.function() for impl in impls]], timeout)
    if outcome == "ok":
        return value
    if outcome == "timeout":
        return PluginError(f"its {hook} hook did not finish within {env}={timeout:g} s")
    if isinstance(value, Exception):
        return value
    return PluginError(f"its {hook} hook raised {describe(value)}")


def describe(err: BaseException) -> str:
    """``Type: first line of the message`` of what a plugin raised."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _run_threaded(calls: list[Any], timeout: float) -> list[tuple[str, Any, float]]:
    """Run each plugin's call in a worker thread, none for longer than ``timeout`` seconds.

    Returns, per call, ("ok", value, seconds), ("raised", exception, seconds) or
    ("timeout", None, seconds). One worker runs the calls in turn (a thread per
    call would cost a hand-over each); the main thread wakes when the worker
    is done, when the call it runs is out of time (it then leaves that worker
    behind and starts a fresh one on the next call), and twice a second to
    handle a signal such as Ctrl-C, which the workers block. The workers' prints
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
        with contextlib.suppress(_OutOfTime):  # landed after its call ended: nothing to stop
            run_from(first)

    def run_from(first: int) -> None:
        if hasattr(signal, "pthread_sigmask"):
            # Ctrl-C and a TERM go to the waiting main thread, never to this one: a signal
            # the kernel hands to the thread that happens to run would not wake the wait.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
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
                    _stop(worker)
                    first = index + 1
                    break
                # Woken at least twice a second: a pending signal is handled then at the latest.
                worker.join(min(max(started + timeout - time.perf_counter(), 0.0), 0.5))
                if not worker.is_alive():
                    first = len(calls)
                    break
    finally:
        sys.stdout = proxy if left_behind else saved_stdout
        sys.stderr = saved[0]
        warnings.filters[:] = saved[1]
    return [r if r is not None else ("timeout", None, 0.0) for r in results]
