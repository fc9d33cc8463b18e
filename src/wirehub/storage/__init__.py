"""Stores: the system of record for channel history (and, later, accounts)."""
