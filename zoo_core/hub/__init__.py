"""The Hugging Face Hub: transport (every huggingface_hub call), card, download, push, search.

Uses the layers below (storage, plugins, models, pretrained metadata); never
executes anything it downloads.
"""
