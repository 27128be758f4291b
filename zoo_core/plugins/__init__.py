"""Plugins: the contract (hook specs, ``ModelSpec``, ``WeightsSpec``), discovery and the cache.

Everything in this folder stays free of torch: ``zoo list`` runs on it alone.
It uses only :mod:`zoo_core.storage` (limits) and the leaf modules.
"""
