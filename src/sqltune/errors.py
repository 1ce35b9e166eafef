"""The error hierarchy. Library code raises these; only the CLI turns them into exit codes.

Every message names the thing that is wrong (file, record, field, value) and the fix.
"""

from __future__ import annotations


class SqltuneError(Exception):
    """Base class of every error sqltune reports to a user (exit code 2, no traceback)."""


class ConfigError(SqltuneError):
    """A bad option or configuration value."""


class DataError(SqltuneError):
    """Bad input data: malformed files, missing fields, unknown databases."""


class ExecutionError(SqltuneError):
    """A database could not be opened or a query could not be run."""


class ModelError(SqltuneError):
    """A model could not be found, fetched or loaded."""
