"""Alembic migrations of the result store, run from code by aegis_app.serving.store.upgrade."""
