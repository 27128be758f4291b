"""The zoo-core version: a leaf module, so nothing needs the package ``__init__`` for it."""

__version__ = "0.1.0"
