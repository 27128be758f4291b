"""The errors zoo raises for things a user can fix.

Every error carries a message that says what was wrong and, where one helps, a
``hint`` that says what to do. The command line prints both on one or two lines
without a traceback; Python callers can catch :class:`ZooError` for all of them.

>>> try:
...     raise ModelNotFoundError("no model named 'simple_cnx'", hint="did you mean 'simple_cnn'?")
... except ZooError as err:
...     print(err)
no model named 'simple_cnx' (did you mean 'simple_cnn'?)
"""

from __future__ import annotations

from zoo_core.untrusted import redact


class ZooError(Exception):
    """Base class of every error zoo raises on purpose.

    ``exit_code`` is what the ``zoo`` command exits with: 1 for a problem with
    the work, 2 for a mistake on the command line itself. Message and hint
    never hold a credential: a token quoted by a server is redacted here
    (:func:`zoo_core.untrusted.redact`).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = redact(message)
        hint = redact(hint) if hint else hint
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        # Python callers see the advice too (the CLI prints message and hint on two lines).
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(ZooError):
    """A value given by the caller is malformed (a bad dtype or device word, say)."""

    exit_code = 2


class ConfigError(UsageError):
    """A config override names an unknown field or has the wrong type or value."""


class ModelNotFoundError(ZooError):
    """No installed plugin registers the requested model name."""


class AmbiguousModelError(ZooError):
    """A bare model name is registered by several plugins; qualify it as DIST:NAME."""


class PluginError(ZooError):
    """A plugin is broken, disabled, or missing for the architecture asked for."""


class PluginCodeError(PluginError):
    """A plugin's own code (constructor, forward, example input) raised: report it to the plugin.

    ``distribution`` and ``model`` say whose code it was; the original exception
    is chained as ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        distribution: str | None = None,
        model: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.distribution = distribution
        self.model = model


class PluginNotInstalledError(PluginError):
    """Weights name an architecture whose plugin distribution is not installed."""

    def __init__(
        self, message: str, *, distribution: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.distribution = distribution


class SourceNotFoundError(ZooError):
    """A path given as a model source does not exist."""


class WeightsError(ZooError):
    """A weights file or directory is not readable, not zoo's, or does not fit the model."""


class InputShapeError(ZooError, ValueError):
    """A model's ``forward`` received a tensor of the wrong shape or rank."""


class DeviceError(ZooError):
    """The requested device does not exist on this machine."""


class MissingDependencyError(ZooError):
    """An optional dependency (an extra, such as ``zoo-core[images]``) is not installed."""


class ZooWarning(UserWarning):
    """Something the user should know that did not stop the work (the CLI prints one line)."""


class HubError(ZooError):
    """A Hugging Face Hub transfer failed: not found, no permission, offline, or not a zoo model."""


class DistributedError(ZooError):
    """Another rank of a ``torch.distributed`` job failed; its own message says why."""


_NATIVE_TRACE = ("Exception raised from ", "frame #")


def error_text(err: BaseException, *, lines: int = 20, chars: int = 2000) -> str:
    """``TypeName: message`` of an exception, for a zoo message quoting it.

    Multi-line messages keep up to ``lines`` lines and ``chars`` characters;
    a cut falls between words (never inside one) and is marked with ``…``.

    >>> error_text(ValueError("image size must be divisible\\nby the patch size"), lines=1)
    'ValueError: image size must be divisible …'
    """
    kept: list[str] = []
    cut = False
    for line in str(err).strip().splitlines():
        if line.startswith(_NATIVE_TRACE):
            break  # torch's C++ errors carry their native backtrace: not the model's words
        if len(kept) == lines:
            cut = True
            break
        kept.append(line.rstrip())
    short = shorten("\n".join(kept).strip(), chars)
    if cut and not short.endswith("…"):
        short += " …"
    return f"{type(err).__name__}: {short}" if short else type(err).__name__


def shorten(text: str, chars: int) -> str:
    """``text`` cut to at most about ``chars`` characters at a space, marked with ``…``."""
    if len(text) <= chars:
        return text
    cut = text[:chars]
    head, space, _ = cut.rpartition(" ")
    return (head if space and len(head) > chars // 2 else cut).rstrip() + " …"


class ExportError(ZooError):
    """A model could not be exported (``torch.export``, ONNX), or its export did not verify.

    ``model`` names the model, ``operation`` the first operation that failed
    (a line of the model's code, or an operator), when the exporter said which.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        operation: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.model = model
        self.operation = operation
