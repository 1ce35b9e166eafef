"""The learned column ranker of ``schema_filter=auto``: a logistic regression over what the rule-based ranker
measures (BM25 of the words, the embedder's cosine, an exact name match, value hits, the table's scores, the
column's rank, keys, type and position), fitted on Spider train's questions with their gold columns
(``python benchmarks/linker_fit.py``, never on a dev set); it says how likely a question needs each column,
and ``auto`` keeps the columns at least ``threshold`` likely.

The weights are ``ranker.json`` beside this module: one set for words alone and one with an embedder (its
cosines are features of their own), each with the features' names, means and scales.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqltune.db.schema import PerSchema
from sqltune.errors import ConfigError

WEIGHTS_FILE = Path(__file__).with_name("ranker.json")

FEATURES = (
    "bm25",
    "bm25_rel",
    "cosine",
    "cosine_gap",
    "name_in_question",
    "value_hit",
    "table_bm25",
    "table_rel",
    "table_best_rel",
    "table_cosine_gap",
    "primary_key",
    "foreign_key",
    "log_columns",
    "name_words",
    "inv_rank",
    "inv_table_rank",
    "position",
    "numeric",
    "numeric_and_aggregate",
    "tables",
    "table_columns",
)

_AGGREGATE = (
    "average",
    "total",
    "sum",
    "most",
    "least",
    "maximum",
    "minimum",
    "highest",
    "lowest",
    "max",
    "min",
    "more than",
    "less than",
    "older",
    "younger",
    "greater",
    "larger",
    "smaller",
)
_NUMERIC = ("int", "real", "num", "float", "double", "dec")


def variant(embedder: str) -> str:
    """The weight set for an embedder setting ("" -> words; any encoder -> embedder)."""
    return "embedder" if embedder else "words"


_STATIC = PerSchema(256)
"""Each recent schema's per-column facts that no question changes."""


def _static(schema: Any) -> Any:
    """Per column: table index, primary key, foreign key, log of the schema's columns, position in its table,
    numeric type, the schema's tables, its table's columns (a numpy array, built once per schema)."""
    return _STATIC.get(schema, lambda: _static_facts(schema))


def _static_facts(schema: Any) -> Any:
    import numpy as np

    fk = {(f.table, f.column) for f in schema.foreign_keys} | {(f.ref_table, f.ref_column) for f in schema.foreign_keys}
    n = sum(len(t.columns) for t in schema.tables)
    rows = []
    for ti, t in enumerate(schema.tables):
        for j, c in enumerate(t.columns):
            rows.append(
                [
                    ti,
                    1.0 if c.primary_key else 0.0,
                    1.0 if (t.name, c.name) in fk else 0.0,
                    math.log(max(1, n)),
                    j / max(1, len(t.columns) - 1),
                    1.0 if any(k in (c.type or "").lower() for k in _NUMERIC) else 0.0,
                    float(len(schema.tables)),
                    float(len(t.columns)),
                ]
            )
    return np.array(rows, dtype=np.float64).reshape(-1, 8)


def _group_max(values: Any, groups: Any, n_groups: int, floor: float) -> Any:
    import numpy as np

    out = np.full(n_groups, floor)
    np.maximum.at(out, groups, values)
    return out


def features(schema: Any, question: str, parts: dict[str, Any]) -> Any:
    """One row of :data:`FEATURES` per column (schema order), from :func:`sqltune.linking.link.rank`'s parts
    (a numpy array)."""
    import numpy as np

    st = _static(schema)
    n_cols = st.shape[0]
    if n_cols == 0:
        return np.zeros((0, len(FEATURES)))
    table = st[:, 0].astype(np.int64)
    n_tables = len(schema.tables)
    bm = np.asarray(parts["bm25"], dtype=np.float64)
    sims = np.asarray(parts["cosine"], dtype=np.float64)
    final = np.asarray(parts["final"], dtype=np.float64)
    t_scores = np.array([parts["tables"][t.name] for t in schema.tables], dtype=np.float64)
    max_bm, max_sim, max_t = bm.max(), sims.max(), t_scores.max()
    t_bm = _group_max(bm, table, n_tables, 0.0)
    t_sim = _group_max(sims, table, n_tables, -1.0)
    t_final = _group_max(final, table, n_tables, -1e9)
    col_rank = np.empty(n_cols)
    col_rank[np.argsort(-final, kind="stable")] = np.arange(n_cols)
    table_rank = np.empty(n_tables)
    table_rank[np.argsort(-t_final, kind="stable")] = np.arange(n_tables)
    ql = f" {question.lower()} "
    aggregate = 1.0 if any(w in ql for w in _AGGREGATE) else 0.0
    names = np.array([len(x) for x in parts["names"]], dtype=np.float64)
    return np.column_stack(
        [
            bm,
            bm / max_bm if max_bm else np.zeros(n_cols),
            sims,
            sims - max_sim,
            np.asarray(parts["exact"], dtype=np.float64),
            np.asarray(parts["value"], dtype=np.float64),
            t_scores[table],
            t_scores[table] / max_t if max_t else np.zeros(n_cols),
            t_bm[table] / max_bm if max_bm else np.zeros(n_cols),
            t_sim[table] - max_sim,
            st[:, 1],
            st[:, 2],
            st[:, 3],
            names,
            1.0 / (1.0 + col_rank),
            1.0 / (1.0 + table_rank[table]),
            st[:, 4],
            st[:, 5],
            st[:, 5] * aggregate,
            st[:, 6],
            st[:, 7],
        ]
    )


@lru_cache(maxsize=1)
def _weights() -> dict[str, Any]:
    try:
        w: dict[str, Any] = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{WEIGHTS_FILE}: the learned ranker's weights cannot be read ({e}); reinstall sqltune"
        ) from None
    return w


def probabilities(schema: Any, question: str, parts: dict[str, Any], embedder: str) -> list[float]:
    """How likely the question needs each column (schema order), by the fitted weights."""
    w = _weights()[variant(embedder)]
    if tuple(w["features"]) != FEATURES:
        raise ConfigError(f"{WEIGHTS_FILE}: fitted for other features; refit with python benchmarks/linker_fit.py")
    import numpy as np

    x = features(schema, question, parts)
    z = ((x - np.asarray(w["mean"])) / np.asarray(w["scale"])) @ np.asarray(w["coef"]) + w["bias"]
    return [float(p) for p in 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))]
