"""Persistence: SQLAlchemy models, sessions, migrations and queries (SQLAlchemy only)."""
