"""Alembic's environment and scripts for aidc's schema (driven by `aidc.store.migrate`)."""
