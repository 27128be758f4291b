"""Pretrained weights: the variant catalogue (``NAME.TAG``), its metadata, transforms, predict.

Uses :mod:`zoo_core.models`, :mod:`zoo_core.plugins` and :mod:`zoo_core.storage`.
Locating a variant's files (package data or the Hub) is :mod:`zoo_core.sources`' job.
"""
