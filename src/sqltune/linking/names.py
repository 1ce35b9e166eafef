"""Short table names in linked prompts: a warehouse's namespaced tables shown by their own names.

A database that holds several namespaces writes them into its table names: ``sales__orders``,
``hr__employees`` (dbt's ``source__entity``, or many databases merged into one). Once schema linking has
kept the handful of tables a question needs, the namespace is mostly noise that a small model copies
wrongly (``singer_singer`` for ``singer__singer``). With ``short_names`` on (a part of the prompt contract),
each kept table whose name is ``<namespace>__<name>`` is shown as ``<name>`` when no other kept table
would be shown by that name; of several that share one, the best-linked table takes the short name and the
others keep their full names. The prompt's record keeps the mapping (``table_names``: shown -> real); the
training target is the gold SQL written with the shown names, and every answer is read back to the real
names (:func:`sqltune.sqlutil.rename_tables`) before it runs: in predict, ask, serve, MCP and LangChain.
A schema without namespaced tables is shown unchanged.
"""

from __future__ import annotations

from dataclasses import replace

from sqltune.db.schema import Schema

SEPARATOR = "__"


def _split(table: str) -> tuple[str, str] | None:
    """(namespace, name) of ``<namespace>__<name>``; None for a name without a namespace."""
    ns, sep, rest = table.partition(SEPARATOR)
    return (ns, rest) if sep and ns and rest else None


def namespace(table: str) -> str | None:
    """``sales`` for ``sales__orders``; None for a name without a namespace."""
    parts = _split(table)
    return parts[0] if parts else None


def short_name(table: str) -> str | None:
    """``orders`` for ``sales__orders``; None for a name without a namespace."""
    parts = _split(table)
    return parts[1] if parts else None


def short_names(schema: Schema, order: list[str]) -> tuple[Schema, dict[str, str]]:
    """``schema`` with its namespaced tables renamed to their short names (``order``: the tables best
    linked first, who wins a short name two tables share), and ``{shown: real}`` for the renamed ones."""
    taken = {t.name.lower() for t in schema.tables}  # never show a name another table really has
    rank = {name: i for i, name in enumerate(order)}
    names: dict[str, str] = {}
    for t in sorted(schema.tables, key=lambda t: rank.get(t.name, len(rank))):
        short = short_name(t.name)
        if short is None or short.lower() in taken:
            continue
        taken.add(short.lower())
        names[short] = t.name
    return renamed(schema, {real: shown for shown, real in names.items()}), names


def renamed(schema: Schema, names: dict[str, str]) -> Schema:
    """``schema`` with its tables (and the foreign keys between them) renamed by ``names`` (``{old: new}``);
    a renamed table's DDL text is dropped (it names the old table), so prompts write it afresh."""
    if not names:
        return schema
    tables = tuple(replace(t, name=names[t.name], ddl="") if t.name in names else t for t in schema.tables)
    fks = tuple(
        replace(f, table=names.get(f.table, f.table), ref_table=names.get(f.ref_table, f.ref_table))
        for f in schema.foreign_keys
    )
    return replace(schema, tables=tables, foreign_keys=fks)
