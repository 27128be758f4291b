"""Errors from torch's exporters and compiler, told as zoo errors.

``torch.export``, ``torch.onnx`` and ``torch.compile`` fail with pages of text:
graphs, stack traces, links. What a user needs is three things: which model,
the first operation that failed (a line of the model's own code, or an
operator the exporter cannot translate), and what to do. This module finds
them in the exception.

>>> try:                                                     # doctest: +SKIP
...     torch.export.export(model, (x,))
... except Exception as err:
...     raise export_error("branchy", err, "torch.export") from err
ExportError: cannot export branchy with torch.export: could not guard on a data-dependent
expression; first failing operation: `if x.sum() > 0:` (model.py:7, in forward)
"""

from __future__ import annotations

import functools
import linecache
import os
import re
import sysconfig
from types import TracebackType

from zoo_core.errors import ExportError
from zoo_core.untrusted import clean_text

__all__ = ["export_error", "failing_operation", "hint_of"]

_CALL = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s+(.+)')
_GRAPH_LINE = re.compile(r"# File: (\S+?):(\d+) in (\S+), code: (.+)")
_ONNX_OP = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)'")
_TARGET = re.compile(r"target=torch\.ops\.([\w.]+?)\.(?:default|\w+)\]")
# Where torch's first lines turn into detail that says nothing to a user.
_NOISE = re.compile(r"\s+\((?:unhinted|Size-like symbols).*$")
_SPECIALIZED = re.compile(r"specialized it to be a constant \((\d+)\)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HINTS = (
    re.compile(r"^\s*Hint: (.+)$", re.M),
    re.compile(r"^\s*(consider .+)$", re.M | re.I),
    re.compile(r"^\s*Suggested fixes?:\s*\n?\s*(.+)$", re.M),
    re.compile(r"^- (If there is a missing ONNX function, .+)$", re.M),
)

# Where frames are never "the model's code": the standard library, zoo_core itself,
# and the exporters' own packages (found by name, so none of them is imported here).
_LIBRARY_DIRS = (
    sysconfig.get_paths()["stdlib"] + os.sep,
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
)
_LIBRARY_PACKAGES = ("torch", "functorch", "sympy", "onnx", "onnxscript", "onnx_ir")


@functools.cache
def _torch_dir() -> str:
    import torch

    return os.path.dirname(torch.__file__) + os.sep


def _library(path: str) -> bool:
    if path.startswith(_LIBRARY_DIRS) or path.startswith("<"):
        return True
    parts = path.split(os.sep)
    return any(
        parts[i] in ("site-packages", "dist-packages") and parts[i + 1] in _LIBRARY_PACKAGES
        for i in range(len(parts) - 1)
    ) or path.startswith(_torch_dir())


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _text(err: BaseException) -> str:
    return _ANSI.sub("", str(err))


def _user_frame(tb: TracebackType | None) -> tuple[str, int, str] | None:
    """The deepest frame of the model's own code in ``tb``: outside torch, zoo_core and
    the standard library, and called from torch (frames above the exporter are the
    caller's: a script, the command line, a test runner)."""
    found = None
    inside = False
    while tb is not None:
        code = tb.tb_frame.f_code
        name = code.co_filename
        path = name if name.startswith("<") else os.path.abspath(name)
        if path.startswith(_torch_dir()):
            inside = True
        elif inside and not _library(path):
            found = (path, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    return found


def _describe(path: str, line: int, function: str, code: str | None = None) -> str:
    code = code if code is not None else linecache.getline(path, line).strip()
    code = code.split("  #", 1)[0]  # a trailing comment is not the operation
    where = f"{os.path.basename(path)}:{line}, in {function}"
    return f"`{clean_text(code.strip(), 120)}` ({where})" if code else where


def failing_operation(err: BaseException) -> str | None:
    """The first operation that failed: a line of the model's code, or an operator."""
    chain = _chain(err)
    for e in chain:
        text = _text(e)
        if "The following call raised this error" in text:
            match = _CALL.search(text.split("The following call raised this error", 1)[1])
            if match:
                return _describe(match[1], int(match[2]), match[3], match[4])
    for e in chain:
        text = _text(e)
        for pattern in (_ONNX_OP, _TARGET):
            match = pattern.search(text)
            if match:
                return f"operator {match[1]}"
    for e in chain:
        frame = _user_frame(e.__traceback__)
        if frame is not None:
            return _describe(*frame)
    for e in chain:
        match = _GRAPH_LINE.search(_text(e))
        if match:
            return _describe(match[1], int(match[2]), match[3], match[4])
    return None


def hint_of(err: BaseException) -> str | None:
    """The exporter's own advice, when its message gives some."""
    for e in _chain(err):
        text = _text(e)
        for pattern in _HINTS:
            match = pattern.search(text)
            if match:
                return clean_text(match[1].strip(), 240)
    return None


def _summary(err: BaseException) -> str:
    """The one line that says what went wrong (the innermost summary for ONNX)."""
    text = _text(err)
    if "## Exception summary" in text:
        lines = [
            line
            for line in text.split("## Exception summary", 1)[1].splitlines()
            if line.startswith("<class ")
        ]
        if lines:
            return re.sub(
                r"^<class '([\w.]+)'>: ", lambda m: m[1].rsplit(".", 1)[-1] + ": ", lines[0]
            )
    specialized = _SPECIALIZED.search(text)
    if specialized:
        return (
            f"the model's code fixes the batch size to {specialized[1]}, "
            "so the batch dimension cannot be dynamic"
        )
    for line in text.strip().splitlines():
        if line.strip():
            line = _NOISE.sub("", line).strip()
            return f"{type(err).__name__}: {line}"
    return type(err).__name__


def _zoo_hint(text: str, exporter: str) -> str:
    if "data-dependent" in text or "GuardOnDataDependent" in text:
        return (
            "forward branches on (or sizes by) tensor values: branch on the config instead, "
            "or use torch.cond / torch._check"
        )
    if "Constraints violated" in text or "specialized" in text or "specialize" in text:
        return "the model fixes the batch size: export with --static (static=True)"
    if "compile" in exporter:
        return "torch._dynamo.explain(model)(x) says where and why tracing stops"
    if "No ONNX function" in text or "onnx" in exporter:
        return "torch.onnx cannot translate an operator: export to pt2 instead, or register it"
    return f"see the {exporter} documentation; zoo export --debug shows the full error"


def export_error(model: str, err: BaseException, exporter: str) -> ExportError:
    """The :class:`ExportError` for ``err``, raised by ``exporter`` while exporting ``model``."""
    operation = failing_operation(err)
    text = "\n".join(_text(e) for e in _chain(err)) + type(err).__name__
    summary = clean_text(_summary(err), 300)
    verb = "compile" if "compile" in exporter else "export"
    message = f"cannot {verb} {model} with {exporter}: {summary}"
    if operation:
        message += f"; first failing operation: {operation}"
    ours = _zoo_hint(text, exporter)
    theirs = hint_of(err)
    hint = f"{ours} ({exporter} says: {theirs})" if theirs else ours
    return ExportError(message, model=model, operation=operation, hint=hint)
