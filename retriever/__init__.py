"""The HTTP retriever: search, feedback, documents, health/metrics and admin over FastAPI.

Import-light on purpose: `from retriever.app import create_app` pulls in FastAPI; this package
itself does not.
"""
