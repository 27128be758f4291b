"""Sources: any way of naming a model, resolved once into an opened snapshot.

A path, a lone ``.safetensors`` file, ``package://``, ``hf://``, ``NAME.TAG``
or foreign weights with ``arch=`` become one resolved object: the opened files,
the record and the expected hashes. Everything above reads from it; nothing
below asks what kind of source it was. Uses hub, pretrained, models, storage.
"""
