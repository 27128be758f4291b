"""The conformance kit: the checks a plugin's models must pass, and the plugin scaffold.

Public entry points live in :mod:`zoo_core.testing`. Uses :mod:`zoo_core.api`
and everything below it.
"""
