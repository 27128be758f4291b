"""Sharded loading and saving on ``torch.distributed`` (FSDP2, tensor parallel).

Uses :mod:`zoo_core.models` and :mod:`zoo_core.storage`; takes an already
opened source from above and reads only each rank's byte ranges.
"""
