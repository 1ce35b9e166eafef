"""Databases: open read-only, read the schema from the live database, run untrusted SQL safely."""

from sqltune.db.execute import QueryResult, execute, open_readonly
from sqltune.db.schema import Column, ForeignKey, Schema, Table, introspect

__all__ = ["Column", "ForeignKey", "QueryResult", "Schema", "Table", "execute", "introspect", "open_readonly"]
