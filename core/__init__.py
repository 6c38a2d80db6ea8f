"""Core of ragctl: settings, encoder, vector store, shared records and errors.

Import-light on purpose: nothing here imports torch, transformers or fastapi at import time.
"""
