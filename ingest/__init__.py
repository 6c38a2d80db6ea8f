"""Ingestion: load documents (txt, md, html, pdf, jsonl), chunk them by tokens, embed, store.

Import-light on purpose: the submodules import their heavy dependencies where they need them.
"""
