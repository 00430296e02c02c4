"""Alembic migrations of the alert store (PostgreSQL and SQLite); see :mod:`alerts.store.schema`."""
