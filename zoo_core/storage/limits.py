"""The limits zoo enforces on untrusted input, in one place (SECURITY.md documents them).

Files, configs, index files, checkpoints and Hub responses are never trusted:
each limit below is checked *before* the work it guards (a parse, an
allocation, a download), so a hostile or damaged input costs little and ends
in a clear :class:`~zoo_core.errors.ZooError`. Each can be raised through the
environment variable named next to it, for the rare honest model that needs
more. This module imports nothing heavy: the Hub code and the CLI use it too.

>>> from zoo_core import limits
>>> limits.max_config_bytes()
1048576
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "LIMITS",
    "MAX_SECONDS",
    "Limit",
    "buffer_problem",
    "env_seconds",
    "lock_timeout",
    "max_buffer_bytes",
    "max_card_bytes",
    "max_checkpoint_overhead",
    "max_config_bytes",
    "max_image_pixels",
    "max_index_bytes",
    "max_tensors",
]


class Limit:
    """One documented limit: a default, overridable by an environment variable."""

    def __init__(self, env: str, default: float, what: str) -> None:
        self.env = env
        self.default = default
        self.what = what

    def __call__(self) -> float:
        text = os.environ.get(self.env)
        if text:
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if value > 0:
                return value
        return self.default


# name -> Limit. SECURITY.md's table lists the same rows.
LIMITS: dict[str, Limit] = {
    "config": Limit("ZOO_MAX_CONFIG_BYTES", 1024 * 1024, "bytes of config.json"),
    "index": Limit(
        "ZOO_MAX_INDEX_BYTES", 64 * 1024 * 1024, "bytes of model.safetensors.index.json"
    ),
    "tensors": Limit("ZOO_MAX_TENSORS", 200_000, "tensors in one model (all shards together)"),
    "card": Limit("ZOO_MAX_CARD_BYTES", 1024 * 1024, "bytes of a model card (README.md)"),
    "buffers": Limit(
        "ZOO_MAX_BUFFER_BYTES",
        1024**3,
        "bytes of non-persistent buffers a config makes zoo compute at load (no file holds them)",
    ),
    "checkpoint": Limit(
        "ZOO_MAX_CHECKPOINT_OVERHEAD",
        64 * 1024 * 1024,
        "bytes a .pt checkpoint may unpack to beyond its own size (torch.save does not compress)",
    ),
    "lock": Limit("ZOO_LOCK_TIMEOUT", 300, "seconds a save waits for another save's lock"),
    "build_seconds": Limit(
        "ZOO_MAX_BUILD_SECONDS",
        60,
        "seconds a model's constructor may run when zoo builds it on meta from a config",
    ),
    "image_pixels": Limit(
        "ZOO_MAX_IMAGE_PIXELS", 4096 * 4096, "pixels of an image given to zoo predict"
    ),
}


def buffer_problem(model: Any, persistent: Any) -> str | None:
    """Why a meta-built ``model``'s non-persistent buffers are too big to compute, or None.

    ``persistent`` is its state dict (names that files hold). Sizes are read
    from meta tensors, so measuring allocates nothing.
    """
    total = 0
    for name, buffer in model.named_buffers():
        if name not in persistent:
            total += buffer.numel() * buffer.element_size()
    limit = max_buffer_bytes()
    if total <= limit:
        return None
    return (
        f"its config makes zoo compute {total} bytes of buffers that no file holds; "
        f"the limit is {limit}"
    )


def max_config_bytes() -> int:
    return int(LIMITS["config"]())


def max_index_bytes() -> int:
    return int(LIMITS["index"]())


def max_tensors() -> int:
    return int(LIMITS["tensors"]())


def max_card_bytes() -> int:
    return int(LIMITS["card"]())


def max_buffer_bytes() -> int:
    return int(LIMITS["buffers"]())


def max_image_pixels() -> int:
    return int(LIMITS["image_pixels"]())


def max_checkpoint_overhead() -> int:
    return int(LIMITS["checkpoint"]())


# The longest any of zoo's time limits may be set to (a week): beyond it, a value is a mistake
# (and the OS timers it would reach overflow).
MAX_SECONDS = 7 * 24 * 3600.0


def env_seconds(variable: str, default: float, *, maximum: float = MAX_SECONDS) -> float:
    """A positive number of seconds from the environment variable ``variable``, else ``default``.

    Unlike the size limits above, a malformed value here is refused rather than
    ignored: a timeout the user meant to set and mistyped would otherwise hang.
    So is one above ``maximum`` (default :data:`MAX_SECONDS`).

    Raises:
        UsageError: the variable is set to something other than a positive number,
            or to more than ``maximum``.

    >>> env_seconds("ZOO_PLUGIN_TIMEOUT", 20.0)                # doctest: +SKIP
    20.0
    """
    from zoo_core.errors import UsageError
    from zoo_core.untrusted import clean_text

    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise UsageError(
            f"{variable}={clean_text(raw, 40)} is not a number of seconds",
            hint=f"set {variable} to a positive number, e.g. {default:g}, or unset it",
        )
    if value > maximum:
        raise UsageError(
            f"{variable}={clean_text(raw, 40)} is more than zoo allows ({maximum:g} s)",
            hint=f"set {variable} to a number of seconds up to {maximum:g}, or unset it",
        )
    return value


def lock_timeout() -> float:
    return LIMITS["lock"]()
