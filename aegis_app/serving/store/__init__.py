"""The result store: decisions (one row per transaction id), their alert status and
analyst labels, in SQLite (default) or PostgreSQL (AEGIS_DB_URL), migrated with Alembic."""

from aegis_app.serving.store.repository import Store, StoreError, upgrade

__all__ = ["Store", "StoreError", "upgrade"]
