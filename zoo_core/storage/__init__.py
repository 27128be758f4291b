"""The bottom layer: bytes on disk.

safetensors reading and writing, the directory snapshot every read goes
through, atomic directory writes, the limits on untrusted sizes, content
hashes, the saved-model record (``config.json``) and the GPU reader. Nothing
here knows about plugins, models or sources; it uses only the leaf modules.
"""
