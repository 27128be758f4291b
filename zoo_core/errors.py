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


class ZooWarning(UserWarning):
    """Something the user should know that did not stop the work (the CLI prints one line)."""


class HubError(ZooError):
    """A Hugging Face Hub transfer failed: not found, no permission, offline, or not a zoo model."""


class DistributedError(ZooError):
    """Another rank of a ``torch.distributed`` job failed; its own message says why."""
