"""Alembic migrations of the enhancerd schema."""
