"""Stores: the system of record for channel history and accounts (SQLite embedded, MongoDB)."""
