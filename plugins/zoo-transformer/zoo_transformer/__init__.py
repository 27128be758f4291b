"""zoo-transformer: a zoo plugin.

Kept empty on purpose: zoo imports zoo_transformer.plugin to list models, and
anything imported here would be paid for by every `zoo list`.
"""
