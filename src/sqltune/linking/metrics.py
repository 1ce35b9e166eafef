"""How well a filtered schema serves a query: the gold query's tables, columns and values that it kept.

Columns are resolved to their tables by sqlglot's qualifier with the database's schema (aliases,
unqualified names, subqueries); values are the string literals the query compares a column with
(``=``, ``IN``, ``LIKE`` without its wildcards).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from sqltune.db.schema import Schema
from sqltune.sqlutil import parse


def gold_parts(sql: str, schema: Schema, dialect: str = "sqlite") -> tuple[set[str], set[tuple[str, str]], set[str]]:
    """(tables, (table, column) pairs, lower-cased compared values) a query uses; names lower-cased."""
    from sqlglot.errors import OptimizeError, SqlglotError
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import traverse_scope

    tree = parse(sql, dialect)
    if tree is None:
        return set(), set(), set()
    mapping: dict[str, Any] = {t.name.lower(): {c.name.lower(): "text" for c in t.columns} for t in schema.tables}
    tables: set[str] = set()
    columns: set[tuple[str, str]] = set()
    try:
        q = qualify(
            tree.copy(),
            schema=mapping,
            dialect=dialect,
            validate_qualify_columns=False,
            quote_identifiers=False,
            identify=False,
        )
        for scope in traverse_scope(q):
            for src in scope.sources.values():
                if isinstance(src, exp.Table) and src.name.lower() in mapping:
                    tables.add(src.name.lower())
            for col in scope.columns:
                owner = scope.sources.get(col.table)
                if isinstance(owner, exp.Table) and col.name.lower() in mapping.get(owner.name.lower(), {}):
                    columns.add((owner.name.lower(), col.name.lower()))
    except (SqlglotError, OptimizeError, KeyError, ValueError, RecursionError):
        tables = {t.name.lower() for t in tree.find_all(exp.Table) if t.name.lower() in mapping}
    values: set[str] = set()
    for node in tree.find_all(exp.EQ, exp.NEQ, exp.Like, exp.ILike, exp.In):
        lits = [node.args.get("expression")] if not isinstance(node, exp.In) else list(node.expressions)
        for lit in lits:
            if isinstance(lit, exp.Literal) and lit.is_string:
                v = lit.this.strip("%").strip().lower()
                if v and any(ch.isalpha() for ch in v):
                    values.add(v)
    return tables, columns, values


def recall(linked: Any, sql: str, full: Schema, dialect: str = "sqlite") -> dict[str, Any]:
    """Schema recall of one filtered prompt (``linked``: a :class:`sqltune.linking.link.Linked`):
    ``tables``/``columns``/``values``: the gold query's kept, of its total (None where it has none);
    ``all_columns``: whether every gold column was kept."""
    g_tables, g_cols, g_values = gold_parts(sql, full, dialect)
    kept_t, kept_c = linked.kept_tables(), linked.kept()
    shown = {str(v["value"]).lower() for v in linked.values}
    hit_values = {g for g in g_values if any(g == s or (len(g) >= 3 and g in s) for s in shown)}
    return {
        "tables": [len(g_tables & kept_t), len(g_tables)],
        "columns": [len(g_cols & kept_c), len(g_cols)],
        "values": [len(hit_values), len(g_values)],
        "all_columns": g_cols <= kept_c and g_tables <= kept_t,
        "kept_columns": [linked.kept_columns, linked.full_columns],
    }


def _share(parts: list[list[int]]) -> float | None:
    total = sum(p[1] for p in parts)
    return round(sum(p[0] for p in parts) / total, 4) if total else None


def recall_summary(settings: Any, recalls: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Recall over many prompts (micro-averaged: kept gold columns of all gold columns), and the share of the
    schema's columns the prompts kept; None when linking is off."""
    if not settings.active or not recalls:
        return None
    return {
        "settings": settings.to_dict(),
        "n": len(recalls),
        "table_recall": _share([r["tables"] for r in recalls]),
        "column_recall": _share([r["columns"] for r in recalls]),
        "value_recall": _share([r["values"] for r in recalls]),
        "all_columns_kept": round(sum(1 for r in recalls if r["all_columns"]) / len(recalls), 4),
        "kept_columns_share": _share([r["kept_columns"] for r in recalls]),
    }
