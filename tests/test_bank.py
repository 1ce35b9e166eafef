"""The query bank: verified queries drawn from a database, found by meaning, chosen by the model's own scores."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import make_school_dataset, make_shop_db

pytestmark = pytest.mark.bank


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLTUNE_HOME", str(tmp_path / "home"))


def test_bank_holds_verified_queries_found_by_meaning_and_is_cached(tmp_path, monkeypatch):
    from sqltune.linking import bank as bank_mod
    from sqltune.linking.bank import QueryBank

    db = make_shop_db(tmp_path / "shop.sqlite")
    bank = QueryBank.open(str(db))
    assert len(bank) >= 40
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for e in bank.entries:
        rows = conn.execute(e.sql).fetchall()  # every query runs on the database
        assert rows or "not" in e.sql.lower() or "except" in e.sql.lower(), e.sql
        assert e.question
    assert len({e.sql for e in bank.entries}) == len(bank)
    shapes = {e.shape for e in bank.entries}
    assert {"count", "aggregate", "join_filter", "order_limit"} <= shapes
    top = bank.nearest(["how many products are there", "which categories have products over 20 dollars"], k=3)
    assert top[0][0].entry.sql.lower() == "select count(*) from products"
    assert top[0][0].similarity > top[0][1].similarity > top[0][2].similarity - 1e-6
    assert "category" in top[1][0].entry.sql.lower()
    # a second open reads the cache: nothing is drawn again
    assert list((tmp_path / "home" / "cache" / "bank").glob("*.npz"))
    monkeypatch.setattr(bank_mod, "_draw", lambda *a, **k: pytest.fail("drawn again"))
    again = QueryBank.open(str(db))
    assert [e.sql for e in again.entries] == [e.sql for e in bank.entries]
    # a changed database is a new version: drawn again
    with sqlite3.connect(db) as w:
        w.execute("INSERT INTO category VALUES (4, 'Garden')")
    with pytest.raises(pytest.fail.Exception, match="drawn again"):
        QueryBank.open(str(db))


class _Scores:
    """Scores given by hand: which answer wins is the point, not where the numbers come from."""

    scores_answers = True

    def __init__(self, table: dict[str, float]):
        self.table, self.calls = table, []

    def score(self, prompts, answers):
        self.calls.append(answers)
        return [[self.table.get(a, -100.0) for a in row] for row in answers]


def test_choose_takes_the_bank_query_only_where_the_model_scores_it_higher():
    from sqltune.linking.bank import Entry, Hit, choose

    hit = [Hit(Entry("SELECT count(*) FROM t", "How many t are there?", "count"), 0.9)]
    msgs = [[{"role": "user", "content": "q"}]] * 4
    backend = _Scores({"SELECT count(*) FROM t": -3.0, "SELECT a FROM t": -1.0, "SELECT b FROM t": -7.0})
    picks = choose(backend, msgs, ["SELECT a FROM t", "SELECT b FROM t", "", "SELECT a FROM t"], [hit, hit, hit, []])
    assert [p["sql"] for p in picks] == [
        "SELECT a FROM t",
        "SELECT count(*) FROM t",
        "SELECT count(*) FROM t",
        "SELECT a FROM t",
    ]
    assert [p["from_bank"] for p in picks] == [False, True, True, False]
    assert picks[0]["scores"] == [-1.0, -3.0] and picks[2]["scores"] == [None, -3.0]
    assert "scores" not in picks[3]  # no hit: nothing scored
    assert picks[1]["bank_question"] == "How many t are there?" and picks[1]["similarity"] == 0.9
    tie = choose(
        _Scores({"SELECT a FROM t": -2.0, "SELECT count(*) FROM t": -2.0}), msgs[:1], ["SELECT a FROM t"], [hit]
    )
    assert tie[0]["from_bank"] is False  # a tie keeps the model's answer


def test_choose_scores_both_spellings_weighs_every_hit_and_drops_an_answer_that_fails():
    from sqltune.linking.bank import Entry, Hit, choose, spellings

    assert spellings("SELECT count(*) FROM t WHERE a != 1") == [
        "SELECT count(*) FROM t WHERE a != 1",
        "SELECT COUNT(*) FROM t WHERE a <> 1",
    ]
    assert spellings("SELECT COUNT(*) FROM t") == ["SELECT COUNT(*) FROM t"]  # one spelling: scored once
    hits = [
        Hit(Entry("SELECT count(*) FROM t", "How many t are there?", "count"), 0.9),
        Hit(Entry("SELECT max(a) FROM t", "What is the largest a of t?", "agg"), 0.8),
    ]
    msgs = [[{"role": "user", "content": "q"}]] * 3
    # the model knows the upper-case spelling only: the query still wins, and the drawn spelling is what runs
    backend = _Scores({"SELECT a FROM t": -4.0, "SELECT MAX(a) FROM t": -2.0, "SELECT count(*) FROM t": -9.0})
    picks = choose(
        backend, msgs, ["SELECT a FROM t"] * 3, [hits, hits, hits], own_ran=[True, False, None], similarity=0.0
    )
    assert backend.calls[0][0] == [
        "SELECT a FROM t",
        "SELECT count(*) FROM t",
        "SELECT COUNT(*) FROM t",
        "SELECT max(a) FROM t",
        "SELECT MAX(a) FROM t",
    ]
    assert picks[0]["sql"] == "SELECT max(a) FROM t" and picks[0]["scores"] == [-4.0, -9.0, -2.0]
    assert picks[0]["bank_question"] == "What is the largest a of t?" and picks[0]["similarity"] == 0.8
    worse = choose(_Scores({"SELECT a FROM t": -1.0}), msgs, ["SELECT a FROM t"] * 3, [hits] * 3, [True, False, None])
    assert [p["from_bank"] for p in worse] == [False, True, False]  # the answer that failed is out, whatever its score
    assert worse[1]["sql"] == "SELECT count(*) FROM t" and worse[1]["scores"][0] is None
    assert [p["own_ran"] for p in worse] == [True, False, None]


def test_a_hit_farther_in_meaning_than_the_nearest_pays_for_the_distance():
    from sqltune.linking.bank import SIMILARITY, Entry, Hit, choose

    msgs = [[{"role": "user", "content": "q"}]]
    near, far = "SELECT count(*) FROM t", "SELECT max(a) FROM t"
    scores = {
        "SELECT a FROM t": -5.0,
        near: -6.0,
        "SELECT COUNT(*) FROM t": -50.0,
        far: -3.0,
        "SELECT MAX(a) FROM t": -50.0,
    }

    def pick(far_sim: float, **kw: float) -> str:
        hits = [Hit(Entry(near, "n", "count"), 0.9), Hit(Entry(far, "f", "agg"), far_sim)]
        return str(choose(_Scores(scores), msgs, ["SELECT a FROM t"], [hits], **kw)[0]["sql"])

    assert SIMILARITY == 75.0
    # 0.02 farther: pays 1.5 nats, -3 - 1.5 = -4.5 still beats the model's -5 and the nearest's -6
    assert pick(0.88) == far
    # 0.06 farther: pays 4.5, -7.5; the model's answer (-5) against the nearest (-6, unpaid) is the model's
    assert pick(0.84) == "SELECT a FROM t"
    assert pick(0.84, similarity=0.0) == far  # off: the scores alone


def test_disagreements_count_literals_nobody_asked_for_and_named_values_left_out():
    from sqltune.linking.bank import NAMED, disagreements

    q = "Mean pay of our accountants?"
    named = {"accountant": NAMED}  # the value index found 'Accountant' for "accountants"
    assert disagreements("SELECT avg(salary) FROM employees WHERE title = 'Accountant'", q, named) == 0
    assert disagreements("SELECT avg(salary) FROM employees", q, named) == 1  # the filter was dropped
    assert disagreements("SELECT avg(salary) FROM employees WHERE title = 'Sales Manager'", q, named) == 2
    assert disagreements("SELECT avg(salary) FROM employees", q, {"accountant": NAMED - 1}) == 0  # a weak match
    # a mention in another case or form, a LIKE pattern's wildcards, numbers: no disagreement
    assert disagreements("SELECT city FROM customers WHERE country = 'Germany'", "Which German cities?", {}) == 0
    assert disagreements("SELECT name FROM e WHERE title LIKE '%Manager%' AND age > 30", "our managers", {}) == 0
    # a template's join over a category the question never named
    cheapest = "What is the cheapest thing we sell?"
    memorised = "SELECT p.name FROM products AS p JOIN categories AS c ON 1 WHERE c.name = 'Beverages' LIMIT 1"
    assert disagreements(memorised, cheapest, {}) == 1
    assert disagreements("SELECT name FROM products ORDER BY unit_price LIMIT 1", cheapest, {}) == 0
    assert disagreements("not sql at all (", cheapest, {}) == 0


def test_choose_charges_every_candidate_for_the_values_it_disagrees_on():
    from sqltune.linking.bank import VALUES, Entry, Hit, choose

    q = "What is the cheapest thing we sell?"
    msgs = [[{"role": "user", "content": q}]]
    own = "SELECT name FROM products WHERE category = 'Beverages' ORDER BY unit_price LIMIT 1"
    right = "SELECT name FROM products ORDER BY unit_price LIMIT 1"
    hits = [[Hit(Entry(right, "Which product has the lowest unit price?", "top"), 0.7)]]
    scores = _Scores({own: -6.0, right: -8.0, right.replace("name FROM", "name FROM"): -8.0})
    assert VALUES == 4.0
    got = choose(scores, msgs, [own], hits, questions=[q], prior=0.0)[0]
    assert got["sql"] == right and got["disagreements"] == [1, 0]  # -6 - 4 against -8
    assert choose(scores, msgs, [own], hits, questions=[q], prior=0.0, values=0.0)[0]["sql"] == own
    assert choose(scores, msgs, [own], hits)[0]["sql"] == own  # no questions: no values to compare
    # a value the question names that the model's answer dropped
    q2 = "How many orders were cancelled?"
    hits2 = [[Hit(Entry("SELECT count(*) FROM orders WHERE status = 'cancelled'", "n", "count"), 0.8)]]
    s2 = _Scores({"SELECT count(*) FROM orders": -2.0, "SELECT count(*) FROM orders WHERE status = 'cancelled'": -5.0})
    named = [{"cancelled": 100.0}]
    pick = choose(
        s2,
        [[{"role": "user", "content": q2}]],
        ["SELECT count(*) FROM orders"],
        hits2,
        questions=[q2],
        prior=0.0,
        named=named,
    )[0]
    assert pick["from_bank"] and pick["disagreements"] == [1, 0]


class _Asked:
    """Scores that depend on whether the prompt still holds its question."""

    scores_answers = True

    def __init__(self, asked: dict[str, float], blank: dict[str, float]):
        self.asked, self.blank, self.prompts, self.answers = asked, blank, [], []

    def score(self, prompts, answers):
        self.prompts.extend(prompts)
        self.answers.extend(answers)
        out = []
        for p, row in zip(prompts, answers, strict=True):
            table = self.asked if "-- Question: " + "How many" in p[-1]["content"] else self.blank
            out.append([table[a] for a in row])
        return out


def test_the_prior_weighs_what_the_question_adds_to_each_answer():
    from sqltune.linking.bank import PRIOR, Entry, Hit, choose
    from sqltune.prompts import without_question

    q = "How many t are there?"
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": f"schema\n-- Question: {q}"}]
    assert without_question(msgs, q) == [msgs[0], {"role": "user", "content": "schema\n-- Question: "}]
    assert msgs[1]["content"].endswith(q)  # the prompt itself is left as it was
    assert without_question(msgs, "not asked") is None
    hit = [Hit(Entry("SELECT count(*) FROM t", q, "count"), 0.9)]
    # the model's answer is a template it finds likely after any question; the bank's count is likely only
    # after this one: -1 - 0.5 * -1.5 = -0.25 against -3 - 0.5 * -9 = 1.5
    asked = {"SELECT a FROM t": -1.0, "SELECT count(*) FROM t": -3.0, "SELECT COUNT(*) FROM t": -4.0}
    blank = {"SELECT a FROM t": -1.5, "SELECT count(*) FROM t": -9.0, "SELECT COUNT(*) FROM t": -2.0}
    assert PRIOR == 0.5
    backend = _Asked(asked, blank)
    got = choose(backend, [msgs], ["SELECT a FROM t"], [hit], questions=[q])[0]
    assert got["from_bank"] and got["sql"] == "SELECT count(*) FROM t"
    # the likelier spelling after the question stands for the query, and its own question-free score with it
    assert got["scores"] == [-1.0, -3.0] and got["priors"] == [-1.5, -9.0]
    assert any(p[-1]["content"].endswith("Question: ") for p in backend.prompts)
    # the question-free pass scores what stands for each candidate only, not the spelling that lost
    free = [a for p, a in zip(backend.prompts, backend.answers, strict=True) if p[-1]["content"].endswith(": ")]
    assert free == [["SELECT a FROM t", "SELECT count(*) FROM t"]]
    # without the questions, or with the prior at 0, the answer the model likes best stays
    for kw in ({}, {"questions": [q], "prior": 0.0}):
        plain = choose(_Asked(asked, blank), [msgs], ["SELECT a FROM t"], [hit], **kw)[0]
        assert not plain["from_bank"] and plain["priors"] is None
    # a prompt that does not hold its question is chosen as before
    other = choose(_Asked(asked, blank), [msgs], ["SELECT a FROM t"], [hit], questions=["elsewhere"])[0]
    assert not other["from_bank"] and other["priors"] is None


def test_runs_says_which_answers_run_through_the_judge(school_db):
    from sqltune.judge import Judge
    from sqltune.linking.bank import runs

    with Judge(workers=1, timeout=5) as judge:
        got = runs(judge, str(school_db), ["SELECT COUNT(*) FROM student", "SELECT nope FROM student", ""])
        assert got == [True, False, False]
        assert runs(judge, str(school_db), ["DELETE FROM student"]) == [False]  # read-only: a write does not run
        assert runs(judge, str(school_db.parent / "missing.sqlite"), ["SELECT 1"]) == [None]


def test_hf_score_is_the_answer_log_likelihood_training_labels(tiny_model):
    import torch

    from sqltune.models.backends import HFBackend
    from sqltune.train.data import IGNORE, encode_example

    backend = HFBackend(str(tiny_model), device="cpu", precision="fp32")
    backend.batch_size = 2  # rows in more than one batch, against one shared prefix
    system = {"role": "system", "content": "sql"}
    prompts = [
        [system, {"role": "user", "content": "how many teacher are there"}],
        [system, {"role": "user", "content": "what is the name of the student, and of every student older than three"}],
        [system, {"role": "user", "content": "how many teacher are there"}],  # a prompt given twice
        [system, {"role": "user", "content": "x"}],
    ]
    answers = [
        ["SELECT COUNT(*) FROM teacher", "SELECT name FROM student WHERE age > 3"],
        [
            "SELECT name FROM student",
            "SELECT COUNT(*) FROM student",
            "SELECT age FROM teacher",
            "SELECT name FROM student",
        ],
        [
            "SELECT name FROM student WHERE age > 3 AND name = 'a very long name of somebody'",
            "SELECT COUNT(*) FROM teacher",
        ],
        ["SELECT 1"],
    ]
    got = backend.score(prompts, answers)
    assert [len(g) for g in got] == [2, 4, 2, 1]
    assert got[1][0] == got[1][3] and got[2][1] == got[0][0]
    backend.shared_prefix = False
    unshared = backend.score(prompts, answers)
    assert [x for row in unshared for x in row] == pytest.approx([x for row in got for x in row], abs=1e-3)
    backend.shared_prefix = True
    for msgs, row, scores in zip(prompts, answers, got, strict=True):
        for a, g in zip(row, scores, strict=True):
            ids, labels = encode_example(backend.tokenizer, {"messages": [*msgs, {"role": "assistant", "content": a}]})
            with torch.no_grad():
                logits = backend.model(torch.tensor([ids])).logits[0, :-1]
            lp = torch.log_softmax(logits.float(), -1)
            want = sum(float(lp[i, t]) for i, t in enumerate(labels[1:]) if t != IGNORE)
            assert g == pytest.approx(want, abs=1e-3)
    assert got[0][0] != got[0][1]


def _runs(conn, sql):
    try:
        conn.execute(sql).fetchall()
        return True
    except sqlite3.Error:
        return False


def test_predict_keeps_the_likelier_of_the_model_and_the_bank(tiny_model, school_db, tmp_path):
    from sqltune.io import read_json
    from sqltune.linking.bank import NEAREST
    from sqltune.predict.run import PredictConfig, predict

    data = make_school_dataset(tmp_path / "d.jsonl", school_db, n=4)
    out = tmp_path / "p.jsonl"
    predict(PredictConfig(model=str(tiny_model), dataset=str(data), out=str(out), max_new_tokens=12), progress=False)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 4 and all("bank" in r for r in recs)
    conn = sqlite3.connect(f"file:{school_db}?mode=ro", uri=True)
    for r in recs:
        b = r["bank"]
        conn.execute(b["bank_sql"]).fetchall()  # the bank's query runs
        own = r.get("model_sql", r["pred_sql"]) if b["from_bank"] else r["pred_sql"]
        assert len(b["scores"]) == 1 + NEAREST and b["own_ran"] is (bool(own) and _runs(conn, own))
        assert len(b["disagreements"]) == 1 + NEAREST  # the values each candidate and the question disagree on
        best = max(x for x in b["scores"][1:] if x is not None)
        assert b["from_bank"] == (not b["own_ran"] or best > b["scores"][0])
        if b["from_bank"]:
            assert r["pred_sql"] == b["bank_sql"] and "model_sql" in r and b["scores"].index(best) >= 1
        else:
            assert r["pred_sql"] == own
    assert read_json(Path(str(out).replace(".jsonl", ".manifest.json")))["decoding"]["query_bank"] is True
    off = tmp_path / "off.jsonl"
    predict(
        PredictConfig(model=str(tiny_model), dataset=str(data), out=str(off), max_new_tokens=12, query_bank=False),
        progress=False,
    )
    assert not any("bank" in json.loads(line) for line in off.read_text().splitlines())


def test_ask_on_postgres_draws_the_bank_through_the_read_only_role(tiny_model, pg_db, tmp_path):
    from sqltune.db import roles
    from sqltune.db.load import load_sqlite
    from sqltune.judge import Judge
    from sqltune.models.backends import HFBackend
    from sqltune.serve.ask import AskConfig, Database, ask

    load_sqlite(make_shop_db(tmp_path / "shop.sqlite"), pg_db)
    role = f"sqltune_t_bank{abs(hash(pg_db)) % 10**6}"
    reader = roles.create_reader(pg_db, role=role)
    judge = Judge(workers=1, timeout=10)
    try:
        db = Database(reader)
        bank = db.query_bank()
        assert bank is not None and len(bank) >= 20
        backend = _Scores({e.sql: 0.0 for e in bank.entries})  # the bank's queries score higher than any answer
        backend.generate = HFBackend(str(tiny_model), device="cpu", precision="fp32").generate  # type: ignore[attr-defined]
        executed: list[str] = []
        real_run = judge.run

        def counted(groups, **kw):
            executed.extend(s for _, sqls in groups for s in sqls)
            return real_run(groups, **kw)

        judge.run = counted  # type: ignore[method-assign]
        a = ask("how many products are there", db, backend, judge, AskConfig(max_new_tokens=8, ground_values=False))
        assert (
            a.bank["from_bank"] is True
            and a.bank["bank_sql"].lower().replace('"', "") == "select count(*) from products"
        )
        # the model's own answer ran once, then the bank's query that replaced it: nothing ran twice
        assert executed[1:] == [a.bank["bank_sql"]] and executed[0] != a.bank["bank_sql"]
        assert a.bank["priors"] is not None and len(a.bank["priors"]) == len(a.bank["scores"])
        assert a.answered and a.rows == [[20]]  # run on PostgreSQL as the reader
        assert AskConfig().query_bank is True
    finally:
        judge.close()
        from sqltune.linking import bank as bank_mod

        bank_mod._OPEN.clear()
        import sqlalchemy as sa

        from sqltune.db.target import resolve

        eng = resolve(pg_db).sqlalchemy_engine(isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(sa.text(f"DROP OWNED BY {role}"))
        eng.dispose()
        roles.drop_reader(pg_db, role=role)
