"""Value grounding while decoding (sqltune.models.grounding): the state it reads from an answer so far, the
column it resolves, the tokens it allows with SmolLM2's real tokenizer, and a real model's generate (batched and
continuous) that writes a value the column does not hold without it and one it holds with it."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest

from sqltune.models.grounding import Grounding, TokenTable, ValueGuide, sql_state

FIXTURES = Path(__file__).parent / "fixtures"

SHOP = Grounding(
    {
        ("orders", "status"): ("cancelled", "delivered", "pending", "shipped"),
        ("categories", "name"): ("Books", "Dairy", "Electronics"),
        ("suppliers", "name"): ("Bella Italia", "Nordic Foods"),
        ("suppliers", "country"): ("Italy", "Japan"),
        ("products", "name"): ("Children's Atlas", "Chai"),  # a value with a quote
    }
)


@pytest.fixture(scope="module")
def smol_tokenizer(tmp_path_factory):
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("smol_tok")
    src = FIXTURES / "smollm2_tokenizer"
    (folder / "tokenizer.json").write_bytes(gzip.decompress((src / "tokenizer.json.gz").read_bytes()))
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(src / name, folder / name)
    return AutoTokenizer.from_pretrained(folder)


def test_sql_state_reads_only_the_sql_being_written():
    assert sql_state("```sql\nSELECT * FROM t WHERE a = 'x") == ("SELECT * FROM t WHERE a = 'x", 26, None)
    assert sql_state("```sql\nSELECT * FROM t WHERE a = 'x' AND b = ") == (
        "SELECT * FROM t WHERE a = 'x' AND b = ",
        None,
        None,
    )
    assert sql_state("SELECT name FROM t WHERE a = '") == ("SELECT name FROM t WHERE a = '", 29, None)
    # a doubled quote stays inside; a last quote closes, and says where its literal opened
    assert sql_state("SELECT 1 WHERE a = 'O''Br")[1:] == (19, None)
    assert sql_state("SELECT 1 WHERE a = 'O'")[1:] == (None, 19)
    assert sql_state("SELECT 1 WHERE a = 'O' ")[1:] == (None, None)
    assert sql_state("```sql\nSELECT 1\n```\nIt's done") is None  # after the block
    assert sql_state("Let's select the rows where status = 'p") is None  # prose, not SQL
    assert sql_state("```sq") is None  # the fence's language tag


def test_the_column_is_read_through_aliases_and_the_tables_so_far():
    g = SHOP
    before = "SELECT T1.name FROM products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id WHERE "
    assert g.column_values("T2", "name", before) == {"Books", "Dairy", "Electronics"}
    assert g.column_values(None, "status", "SELECT COUNT(*) FROM orders WHERE ") == set(SHOP.values["orders", "status"])
    # unqualified: the tables the query has named; before any, every table with the column
    assert g.column_values(None, "name", "SELECT * FROM suppliers WHERE ") == {"Bella Italia", "Nordic Foods"}
    assert g.column_values(None, "name", "SELECT * FROM t WHERE ") is None  # t has no such column
    assert g.column_values(None, "name", "SELECT CASE WHEN ") == {
        "Books",
        "Dairy",
        "Electronics",
        "Bella Italia",
        "Nordic Foods",
        "Children''s Atlas",
        "Chai",
    }
    assert g.column_values("T3", "name", before) is None  # an alias the query has not defined
    # the query's tables lack the column (or hold it ungrounded): no other table's values stand in
    assert g.column_values(None, "status", "SELECT * FROM customers WHERE ") is None
    assert g.column_values(None, "name", "SELECT unit_price FROM customers WHERE ") is None
    assert g.column_values(None, "name", "SELECT * FROM products WHERE ") == {"Children''s Atlas", "Chai"}
    assert g.column_values(None, "salary", "SELECT * FROM employees WHERE ") is None


def _texts(tokenizer, ids) -> set[str]:
    return {tokenizer.decode([i]) for i in ids}


def test_inside_a_literal_only_tokens_toward_a_value_are_allowed(smol_tokenizer):
    guide = ValueGuide(SHOP, TokenTable.of(smol_tokenizer))
    allowed, banned = guide.allowed("```sql\nSELECT COUNT(*) FROM orders WHERE status = '")
    assert banned is None and allowed
    texts = _texts(smol_tokenizer, allowed)
    assert all(
        any((v + "'").startswith(t) or t.startswith(v + "'") for v in SHOP.values["orders", "status"]) for t in texts
    )
    assert "pending" in texts or "p" in texts
    assert not any(t.startswith("w") for t in texts)  # 'waiting' is no status
    # half way through a value, the rest of it (and its closing quote) comes next
    allowed, _ = guide.allowed("```sql\nSELECT COUNT(*) FROM orders WHERE status = 'pend")
    texts = _texts(smol_tokenizer, allowed)
    assert texts and all("ing'".startswith(t) or t.startswith("ing'") for t in texts)
    # IN lists too
    allowed, _ = guide.allowed("```sql\nSELECT * FROM orders WHERE status IN ('pending', '")
    assert allowed and all(not smol_tokenizer.decode([i]).startswith("w") for i in allowed)
    assert guide.steps == 3


def test_a_value_with_a_quote_is_written_with_the_quote_doubled(smol_tokenizer):
    guide = ValueGuide(SHOP, TokenTable.of(smol_tokenizer))
    head = "```sql\nSELECT unit_price FROM products WHERE name = "
    allowed, _ = guide.allowed(head + "'Children")
    texts = _texts(smol_tokenizer, allowed)
    assert "'" in texts and all("''s Atlas'".startswith(t) or t.startswith("''") for t in texts)
    # one quote written: not a value yet, so not the literal's end: the second quote (or its token) comes next
    allowed, _ = guide.allowed(head + "'Children'")
    texts = _texts(smol_tokenizer, allowed)
    assert texts and all("'s Atlas'".startswith(t) or t.startswith("'s Atlas'") for t in texts)
    allowed, _ = guide.allowed(head + "'Children''s At")
    assert {smol_tokenizer.decode([i]) for i in allowed} <= {"l", "la", "las", "las'", "'"} | {
        t for t in {smol_tokenizer.decode([i]) for i in allowed} if t.startswith("las'")
    }
    # the value is complete: free again
    assert guide.allowed(head + "'Children''s Atlas'") == (None, None)
    assert guide.allowed(head + "'Chai'") == (None, None)


def test_a_literal_the_model_already_took_off_the_values_or_a_like_pattern_is_left_alone(smol_tokenizer):
    guide = ValueGuide(SHOP, TokenTable.of(smol_tokenizer))
    assert guide.allowed("```sql\nSELECT * FROM orders WHERE status = 'wait") == (None, None)
    assert guide.allowed("```sql\nSELECT * FROM orders WHERE status LIKE '") == (None, None)
    assert guide.allowed("```sql\nSELECT * FROM employees WHERE salary = ") == (None, None)
    assert guide.steps == 0


def test_before_the_quote_tokens_that_open_a_wrong_literal_are_banned(smol_tokenizer):
    guide = ValueGuide(SHOP, TokenTable.of(smol_tokenizer))
    allowed, banned = guide.allowed("```sql\nSELECT COUNT(*) FROM orders WHERE status =")
    assert allowed is None and banned
    bad = _texts(smol_tokenizer, banned)
    assert all("'" in t for t in bad)
    assert " '" not in bad  # the bare quote opens any value
    ids = smol_tokenizer.encode(" 'w", add_special_tokens=False)
    if len(ids) == 1:  # a token that opens the literal and spells a letter no status starts with
        assert ids[0] in banned


# ---------------------------------------------------------------- a real model's generate


ANSWER = "```sql\nSELECT COUNT(*) FROM orders WHERE status = 'waiting'\n```"
PROMPT = [{"role": "system", "content": "Write SQL."}, {"role": "user", "content": "How many orders are waiting?"}]


@pytest.fixture(scope="module")
def parrot(tmp_path_factory):
    """A tiny Llama with SmolLM2's tokenizer, trained until it answers PROMPT with ANSWER: a status no order has."""
    import torch

    from conftest import make_gguf_test_model
    from sqltune.models.backends import HFBackend

    folder = make_gguf_test_model(tmp_path_factory.mktemp("parrot"))
    backend = HFBackend(str(folder), device="cpu", precision="fp32", batch_size=4)
    tok, model = backend.tokenizer, backend.model
    prompt = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    ids = tok(prompt + ANSWER + tok.eos_token, add_special_tokens=False, return_tensors="pt").input_ids
    n_prompt = len(tok(prompt, add_special_tokens=False).input_ids)
    labels = ids.clone()
    labels[:, :n_prompt] = -100
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.01:
            break
    model.eval()
    return backend


def _shop_db(tmp_path: Path) -> Path:
    db = tmp_path / "shop.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, status TEXT NOT NULL)")
    con.executemany("INSERT INTO orders (status) VALUES (?)", [("pending",), ("shipped",), ("pending",)])
    con.commit()
    con.close()
    return db


def test_generate_writes_a_held_value_with_grounding_and_the_copied_word_without(parrot, tmp_path):
    from sqltune.extract import extract_sql
    from sqltune.linking.values import ValueIndex
    from sqltune.models.generation import GenParams

    params = GenParams(max_new_tokens=40, stop_after_sql=True)
    free = parrot.generate([PROMPT], params)[0][0]
    assert "status = 'waiting'" in free.text and free.grounded == 0
    grounding = ValueIndex.open(str(_shop_db(tmp_path)), cache=tmp_path / "idx").grounding()
    assert grounding.values[("orders", "status")] == ("pending", "shipped")
    got = parrot.generate([PROMPT, PROMPT], params, grounding=[grounding, None])
    sql = extract_sql(got[0][0].text)
    assert sql.startswith("SELECT COUNT(*) FROM orders WHERE status = '")
    assert sql.split("'")[1] in ("pending", "shipped"), sql
    assert got[0][0].grounded > 0
    assert "'waiting'" in got[1][0].text and got[1][0].grounded == 0  # the row without a grounding is free
    # sampled candidates are grounded too
    many = parrot.generate([PROMPT], GenParams(max_new_tokens=40, stop_after_sql=True, num_samples=3), [grounding])
    assert len(many[0]) == 3
    for c in many[0]:
        lit = extract_sql(c.text).split("'")
        assert len(lit) < 2 or lit[1] in ("pending", "shipped"), c.text


def test_the_continuous_batcher_grounds_the_same_way(parrot, tmp_path):
    from sqltune.extract import extract_sql
    from sqltune.linking.values import ValueIndex
    from sqltune.models.continuous import ContinuousHF
    from sqltune.models.generation import GenParams

    grounding = ValueIndex.open(str(_shop_db(tmp_path)), cache=tmp_path / "idx").grounding()
    engine = ContinuousHF(parrot, slots=4, length=256)
    params = GenParams(max_new_tokens=40, stop_after_sql=True)
    got = engine.generate([PROMPT, PROMPT], params, grounding=[grounding, None])
    assert extract_sql(got[0][0].text).split("'")[1] in ("pending", "shipped")
    assert got[0][0].grounded > 0
    assert "'waiting'" in got[1][0].text
