"""Alembic migrations for the Steward schema."""
