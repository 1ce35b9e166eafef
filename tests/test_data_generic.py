"""The generic skill set: databases of varied domains that sqltune generates, and verified pairs over them."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from sqltune.data import generic
from sqltune.db.execute import execute
from sqltune.db.schema import introspect
from sqltune.errors import ConfigError
from sqltune.io import read_jsonl


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_domain_is_a_database_with_declared_keys_that_hold(tmp_path):
    paths = generic.create_databases(tmp_path / "a", seed=0)
    assert [p.stem for p in paths] == generic.domains() and len(paths) >= 12
    for p in paths:
        schema = introspect(p, db_id=p.stem)
        assert len(schema.tables) >= 2, p
        conn = sqlite3.connect(p)
        fks = schema.foreign_keys
        assert fks, f"{p.stem} has no foreign key"
        for fk in fks:  # every reference points at a row that is there
            orphans = conn.execute(
                f'SELECT count(*) FROM "{fk.table}" WHERE "{fk.column}" IS NOT NULL AND "{fk.column}" NOT IN '
                f'(SELECT "{fk.ref_column}" FROM "{fk.ref_table}")'
            ).fetchone()[0]
            assert orphans == 0, (p.stem, fk)
        for t in schema.tables:
            assert conn.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0] > 0
        conn.close()
    # naming styles vary: CamelCase and snake_case columns both occur
    cols = {c.name for p in paths for t in introspect(p, db_id=p.stem).tables for c in t.columns}
    assert any("_" in c for c in cols) and any(c[:1].isupper() and c[1:].lower() != c[1:] for c in cols)


def test_same_seed_same_bytes_another_seed_other_rows(tmp_path):
    a = generic.create_database("library", tmp_path / "a.sqlite", seed=0)
    b = generic.create_database("library", tmp_path / "b.sqlite", seed=0)
    c = generic.create_database("library", tmp_path / "c.sqlite", seed=1)
    assert _digest(a) == _digest(b) != _digest(c)
    conn = sqlite3.connect(a)  # labels stay distinct while the list lasts
    titles = [r[0] for r in conn.execute("SELECT title FROM books")]
    assert len(set(titles[:20])) == 20


def test_an_unknown_domain_or_kind_names_the_fix(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no generated domain 'nope': choose from library"):
        generic.create_database("nope", tmp_path / "x.sqlite")
    spec = {
        "names": {"first": ["A"], "last": ["B"]},
        "domains": [
            {"domain": "d", "tables": [{"name": "t", "rows": 2, "columns": [{"name": "c", "kind": "colour"}]}]}
        ],
    }
    monkeypatch.setattr(generic, "_spec", lambda: spec)
    with pytest.raises(ConfigError, match=r"domains.yaml: column 'c' has kind 'colour'"):
        generic.create_database("d", tmp_path / "d.sqlite")


def test_generic_pairs_are_verified_over_every_domain_and_built_for_training(tmp_path):
    built = generic.generic_pairs(tmp_path, per_database=12, seed=0, log=lambda *_: None, schema="compact")
    pairs = read_jsonl(tmp_path / "pairs.jsonl")
    dbs = {p["db_path"] for p in pairs}
    assert len(dbs) == len(generic.domains())
    results = [execute(p["db_path"], p["sql"]) for p in pairs]  # every pair runs on its database
    assert all(r.ok for r in results)
    assert sum(bool(r.rows) for r in results) >= 0.9 * len(pairs)  # only questions about absence may be empty
    rows = read_jsonl(built)
    assert len(rows) == len(pairs) and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    assert generic.generic_pairs(tmp_path, per_database=12) == built  # made once


def test_quickstart_mixes_the_generic_pairs_into_the_demo_train_split(tmp_path):
    from sqltune.data.demo import build_demo
    from sqltune.quickstart import GENERIC, mixed_train_file

    d = build_demo(tmp_path / "data")
    mixed = read_jsonl(mixed_train_file(tmp_path / "data" / "train.jsonl", GENERIC, seed=0, log=lambda *_: None))
    own = read_jsonl(d["train"])
    assert len(mixed) == 2 * len(own)
    sources = {r["db_id"] for r in mixed}
    assert "shop" in sources and len(sources) > 10


def test_the_cli_writes_databases_pairs_and_a_training_file(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "g"
    r = subprocess.run(
        [sys.executable, "-m", "sqltune", "data", "generic", "--out", str(out), "--pairs", "5", "--format", "alpaca"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out / "generic.jsonl")
    assert len(rows) == 5 * len(generic.domains()) and all("instruction" in x and "output" in x for x in rows)
    assert len(list((out / "databases").glob("*.sqlite"))) == len(generic.domains())
