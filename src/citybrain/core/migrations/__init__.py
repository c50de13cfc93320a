"""Alembic migrations: one environment, one branch for the kernel and one per app."""
