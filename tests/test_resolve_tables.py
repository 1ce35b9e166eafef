"""Table names the model wrote without the database's prefix (``singer`` for ``concert_singer__singer``),
read as the one table they name: the rule itself, then predict on SQLite and ask on every engine (a
read-only role on PostgreSQL and MariaDB)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from sqltune.db import roles
from sqltune.db.load import load_sqlite
from sqltune.judge import Judge
from sqltune.models.backends import Completion
from sqltune.predict.run import PredictConfig, predict
from sqltune.prompts import chat_record
from sqltune.serve.ask import AskConfig, Database, ask
from sqltune.sqlutil import rename_tables, resolve_tables
from test_db_engines import _admin_run

MERGED = [
    "concert_singer__singer",
    "concert_singer__concert",
    "concert_singer__singer_in_concert",
    "music__singer",
    "music__song",
    "orchestra__conductor",
]


@pytest.mark.parametrize(
    ("sql", "shown", "want", "mapping"),
    [
        # one table ends with the name: rewritten, the written name kept as the alias
        (
            "SELECT name FROM conductor",
            "",
            "SELECT name FROM orchestra__conductor AS conductor",
            {"conductor": "orchestra__conductor"},
        ),
        # two end with it and nothing tells them apart: untouched
        ("SELECT count(*) FROM singer", "", "SELECT count(*) FROM singer", {}),
        # the prompt showed one of the two
        (
            "SELECT count(*) FROM singer",
            "music__singer(name, age)\nmusic__song(title)",
            "SELECT COUNT(*) FROM music__singer AS singer",
            {"singer": "music__singer"},
        ),
        # the query's other table settles it (its prefix); qualified columns still read
        (
            "SELECT singer.name FROM singer JOIN song ON singer.id = song.singer_id",
            "",
            "SELECT singer.name FROM music__singer AS singer JOIN music__song AS song ON singer.id = song.singer_id",
            {"singer": "music__singer", "song": "music__song"},
        ),
        # a table the database has decides the others; a namespace beats a longer name ending the same
        (
            "SELECT T1.name FROM concert_singer__singer AS T1 JOIN concert AS T2 ON T1.id = T2.id",
            "",
            "SELECT T1.name FROM concert_singer__singer AS T1 JOIN concert_singer__concert AS T2 ON T1.id = T2.id",
            {"concert": "concert_singer__concert"},
        ),
        # names the database has, unknown names no table ends with, CTE names: untouched
        ("SELECT name FROM orchestra__conductor", "", "SELECT name FROM orchestra__conductor", {}),
        ("SELECT name FROM nowhere", "", "SELECT name FROM nowhere", {}),
        ("WITH conductor AS (SELECT 1 AS x) SELECT x FROM conductor", "", None, {}),
        ("not sql at all (", "", "not sql at all (", {}),
    ],
)
def test_resolve_tables(sql, shown, want, mapping):
    got, done = resolve_tables(sql, MERGED, shown)
    assert done == mapping
    assert got == (sql if want is None else want)


def test_resolve_tables_quotes_a_mixed_case_table_for_postgres():
    got, done = resolve_tables("SELECT name FROM customer AS c", ["Dim_Customer", "fact_sales"], dialect="postgres")
    assert done == {"customer": "Dim_Customer"} and got == 'SELECT name FROM "Dim_Customer" AS c'


def test_short_names_read_back_quote_a_mixed_case_table_for_postgres_only():
    """A prompt's short name read back to its real table: PostgreSQL would fold an unquoted
    ``re__Props`` to ``re__props``, SQLite would not."""
    sql = "SELECT props.id FROM props JOIN kinds AS k ON props.kind = k.id"
    names = {"props": "re__Props", "kinds": "re__kinds"}
    assert rename_tables(sql, names, "postgres") == (
        'SELECT "re__Props".id FROM "re__Props" JOIN re__kinds AS k ON "re__Props".kind = k.id'
    )
    assert (
        rename_tables(sql, names) == "SELECT re__Props.id FROM re__Props JOIN re__kinds AS k ON re__Props.kind = k.id"
    )


def _warehouse(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE shop__customer (id INTEGER PRIMARY KEY, name TEXT, country TEXT);
        CREATE TABLE shop__orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES shop__customer(id));
        CREATE TABLE crm__customer (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO shop__customer VALUES (1, 'Ann', 'DE'), (2, 'Bob', 'FR');
        INSERT INTO shop__orders VALUES (1, 1), (2, 1), (3, 2);
        INSERT INTO crm__customer VALUES (1, 'Zed');
        """
    )
    conn.commit()
    conn.close()
    return path


class Fixed:
    name = "fixed"

    def __init__(self, text: str):
        self.text = text

    def info(self):
        return {"backend": self.name}

    def generate(self, prompts, params):
        return [[Completion(self.text, 5, 3) for _ in range(params.num_samples)] for _ in prompts]


ANSWER = "```sql\nSELECT customer.name, count(*) FROM orders JOIN customer ON orders.customer_id = customer.id GROUP BY 1\n```"


@pytest.mark.parametrize("resolve", [True, False])
def test_predict_reads_bare_names_as_the_databases_tables(tmp_path, resolve):
    db = _warehouse(tmp_path / "wh.sqlite")
    schema = "shop__customer(id, name, country)\nshop__orders(id, customer_id)\ncrm__customer(id, name)"
    rec = {"id": "q1", "db_id": "wh", "db_path": str(db), "question": "orders per customer", "sql": ""}
    rec.update(chat_record(schema, rec["question"], "", "SELECT 1"))
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(rec) + "\n")
    out = tmp_path / "pred.jsonl"
    predict(PredictConfig(dataset=str(data), out=str(out), resolve_tables=resolve), backend=Fixed(ANSWER))
    got = json.loads(out.read_text())
    if not resolve:
        assert "resolved" not in got and "FROM orders JOIN customer" in got["pred_sql"]
        return
    # "orders" names one table; "customer" two, and the other table's prefix picks shop's
    assert got["resolved"] == {"orders": "shop__orders", "customer": "shop__customer"}
    assert "SELECT customer.name" in got["raw"]
    conn = sqlite3.connect(db)
    assert sorted(conn.execute(got["pred_sql"]).fetchall()) == [("Ann", 2), ("Bob", 1)]
    conn.close()


@pytest.fixture(params=["sqlite", "postgresql", "mysql", "duckdb"])
def warehouse_url(request, tmp_path):
    """The warehouse in an engine, behind a read-only role where the engine has roles."""
    src = _warehouse(tmp_path / "wh.sqlite")
    if request.param == "sqlite":
        yield str(src)
        return
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
        load_sqlite(src, url)
        yield url
        return
    admin = request.getfixturevalue("pg_db" if request.param == "postgresql" else "mysql_db")
    load_sqlite(src, admin)
    role = f"sqltune_t_r{int(time.time() * 1000) % 10**8}"
    reader = roles.create_reader(admin, role=role)
    try:
        yield reader
    finally:
        if request.param == "postgresql":
            _admin_run(admin, [f"DROP OWNED BY {role}"])
        roles.drop_reader(admin, role=role)


def test_ask_runs_the_resolved_sql_on_every_engine(warehouse_url):
    db = Database(warehouse_url)
    model = Fixed(ANSWER)
    with Judge(workers=1, timeout=5.0) as judge:
        a = ask("How many orders per customer?", db, model, judge, AskConfig(repairs=0))
        assert a.answered and sorted(map(tuple, a.rows)) == [("Ann", 2), ("Bob", 1)], a.attempts
        assert "shop__orders" in a.sql and a.attempts[0].raw == ANSWER
        off = ask("How many orders per customer?", db, model, judge, AskConfig(repairs=0, resolve_tables=False))
        assert not off.answered and off.attempts[0].error_type == "unknown_table"
