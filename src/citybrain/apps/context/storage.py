"""Database connection set-up the context broker needs (SQLite's regexp function)."""

from __future__ import annotations

from typing import Any

from citybrain.apps.context.query import register_sqlite_functions


def on_connect(dbapi_connection: Any, dialect_name: str) -> None:
    """Give every new SQLite connection the regexp() function the q language and idPattern use."""
    if dialect_name == "sqlite":
        register_sqlite_functions(dbapi_connection)
