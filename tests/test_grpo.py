"""GRPO with the execution reward: the reward presets on fixture answers through the real judge, a write
attempt that leaves the database's bytes unchanged, a few GRPO steps on the tiny model that change its
weights and log every reward component, a resumed run, and the config's errors."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import make_school_dataset
from sqltune.errors import ConfigError
from sqltune.judge import Judge
from sqltune.judge.score import soft_f1
from sqltune.train.config import load_config
from sqltune.train.rewards import PRESETS, SqlRewards, ngram_f1

GOLD = "SELECT name FROM teacher WHERE age > 36"


def fenced(sql: str) -> str:
    return f"```sql\n{sql}\n```"


CASES = {
    "right": fenced("SELECT t.name FROM teacher AS t WHERE t.age >= 37"),
    "wrong_but_runs": fenced("SELECT name FROM teacher"),
    "error": fenced("SELECT nme FROM teacher"),
    "empty": "I cannot answer that.",
    "write_attempt": fenced("DROP TABLE teacher"),
    "delete_attempt": fenced("DELETE FROM student"),
    "timeout": fenced("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT COUNT(*) FROM r"),
    "multi_statement": "SELECT name FROM teacher WHERE age > 36; DROP TABLE teacher;",
}
LOWEST = ("error", "empty", "write_attempt", "delete_attempt", "timeout", "multi_statement")


@pytest.fixture
def judge():
    with Judge(workers=2, timeout=1.0, cache=False) as j:
        yield j


def _values(judge, school_db, reward, names=None):
    r = SqlRewards(judge, reward, timeout=1.0)
    names = names or list(CASES)
    comps = [[{"role": "assistant", "content": CASES[n]}] for n in names]  # TRL's conversational completions
    return dict(zip(names, r.total(comps, [GOLD] * len(comps), [str(school_db)] * len(comps)), strict=True)), r


def test_the_presets_give_their_documented_values(judge, school_db):
    before = hashlib.sha256(school_db.read_bytes()).hexdigest()
    arctic, r = _values(judge, school_db, "arctic")
    assert arctic["right"] == 1.0 and arctic["wrong_but_runs"] == pytest.approx(0.1)
    assert all(arctic[n] == 0.0 for n in LOWEST), arctic
    dense, _ = _values(judge, school_db, "dense")
    assert dense["right"] == 1.0 and all(dense[n] == 0.0 for n in LOWEST)
    # the wrong answer returns all 3 teachers where the gold returns 2 of them: the eval's soft-F1 of the two
    f1 = soft_f1([("Ann",), ("Cy",)], [("Ann",), ("Bob",), ("Cy",)])
    assert 0.1 < f1 < 1 and dense["wrong_but_runs"] == pytest.approx(f1)
    fmt, _ = _values(judge, school_db, "arctic+format")
    assert fmt["right"] == pytest.approx(1.2) and fmt["wrong_but_runs"] == pytest.approx(0.3)
    assert all(fmt[n] == 0.0 for n in LOWEST)  # a fenced write attempt earns nothing for its format
    ngram, _ = _values(judge, school_db, "arctic+ngram")
    assert 1.0 < ngram["right"] < 1.2 and all(ngram[n] == 0.0 for n in LOWEST)
    assert hashlib.sha256(school_db.read_bytes()).hexdigest() == before  # the writes were refused
    assert set(PRESETS) == {"arctic", "dense", "arctic+format", "dense+format", "arctic+ngram"}


def test_verdicts_are_cached_by_database_and_sql(judge, school_db):
    r = SqlRewards(judge, "arctic+format", timeout=1.0)
    comps = [CASES["right"], CASES["right"], CASES["wrong_but_runs"]]
    r.total(comps, [GOLD] * 3, [str(school_db)] * 3)
    assert r.judged == 2  # two distinct answers, each run once for both components
    r.total(comps, [GOLD] * 3, [str(school_db)] * 3)
    assert r.judged == 2
    assert ngram_f1("SELECT a FROM t", "SELECT a FROM t") == 1.0 and ngram_f1("x", "SELECT a FROM t") == 0.0


def test_an_answer_in_a_prompts_short_table_names_is_judged_under_the_real_ones(judge, tmp_path):
    """A linked prompt that showed ``music__singer`` as ``singer`` (the record's ``table_names``, carried as
    JSON text by the dataset column) has its answers read back before the judge runs them."""
    import sqlite3

    db = tmp_path / "wh.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE music__singer (id INTEGER PRIMARY KEY, name TEXT);"
        "INSERT INTO music__singer VALUES (1, 'Ann'), (2, 'Bo');"
    )
    conn.commit()
    conn.close()
    r = SqlRewards(judge, "arctic", timeout=1.0)
    comp = [[{"role": "assistant", "content": "```sql\nSELECT name FROM singer WHERE id = 2\n```"}]]
    gold, names = ["SELECT name FROM music__singer WHERE id = 2"], json.dumps({"singer": "music__singer"})
    assert r.total(comp, gold, [str(db)], [names]) == [1.0]
    assert r.total(comp, gold, [str(db)], ["{}"]) == [0.0]  # without the mapping: no such table


def test_a_record_whose_database_is_missing_earns_nothing_and_stops_nothing(school_db, tmp_path):
    """With the persistent gold cache on (as in training), a record naming a database file that is not there
    gets 0, and the other records of the batch their rewards."""
    with Judge(workers=1, timeout=1.0, cache=True, cache_path=tmp_path / "gold.sqlite") as j:
        r = SqlRewards(j, "arctic", timeout=1.0)
        got = r.total([CASES["right"]] * 2, [GOLD] * 2, [str(tmp_path / "gone.sqlite"), str(school_db)])
    assert got == [0.0, 1.0]


def test_grpo_settings_are_checked(school_db, tmp_path):
    data = make_school_dataset(tmp_path / "d.jsonl", school_db, n=4)
    with pytest.raises(ConfigError, match="num_generations: a GRPO setting; with objective: sft"):
        load_config(None, [f"train_file={data}", "num_generations=8"])
    with pytest.raises(ConfigError, match="packing: an SFT setting; with objective: grpo"):
        load_config(None, [f"train_file={data}", "objective=grpo", "packing=true", "batch_size=4"])
    with pytest.raises(ConfigError, match="must be a multiple of num_generations"):
        load_config(None, [f"train_file={data}", "objective=grpo", "batch_size=6", "num_generations=4"])
    with pytest.raises(ConfigError, match="reward: 'fast' is not a preset"):
        load_config(None, [f"train_file={data}", "objective=grpo", "batch_size=4", "reward=fast"])
    with pytest.raises(ConfigError, match="unknown components"):
        load_config(None, [f"train_file={data}", "objective=grpo", "batch_size=4", "reward={speed: 1}"])


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_few_grpo_steps_change_the_weights_log_the_rewards_and_resume(school_db, tmp_path, tiny_model):
    from sqltune.train.run import train

    data = make_school_dataset(tmp_path / "d.jsonl", school_db, n=8)
    # a short SFT first, so that sampled answers are sometimes right: GRPO learns from groups that differ
    sft = train(
        load_config(
            None,
            [
                f"model={tiny_model}",
                f"train_file={data}",
                f"output_dir={tmp_path / 'sft'}",
                "method=full",
                "max_steps=300",
                "batch_size=8",
                "learning_rate=3e-3",
                "precision=fp32",
                "report_to=[]",
                "save_steps=1000",
            ],
        )
    )
    common = [
        f"model={sft['output']}",
        f"train_file={data}",
        f"output_dir={tmp_path / 'grpo'}",
        "objective=grpo",
        "method=full",
        "batch_size=4",
        "num_generations=4",
        "max_completion_length=24",
        "temperature=1.3",
        "learning_rate=1e-3",
        "precision=fp32",
        "report_to=[]",
        "logging_steps=1",
        "save_steps=2",
        "reward=arctic+format",
        "select_prompts=false",
    ]
    m = train(load_config(None, common + ["max_steps=2"]))
    assert m["objective"] == "grpo" and m["global_steps"] == 2
    before, after = _weights(tmp_path / "sft" / "model"), _weights(tmp_path / "grpo" / "model")
    assert any(not (before[k] == after[k]).all() for k in before), "GRPO changed no weight"
    log = [json.loads(x) for x in (tmp_path / "grpo" / "rewards.jsonl").read_text().splitlines()]
    assert log and all("rewards/execution/mean" in e and "rewards/format/mean" in e for e in log)
    assert (tmp_path / "grpo" / "rewards.png").is_file()
    contract = json.loads((tmp_path / "grpo" / "model" / "sqltune_model.json").read_text())["prompt"]
    assert contract["schema_style"] == "compact"
    # rerun with a longer schedule: it resumes from the step-2 checkpoint
    m2 = train(load_config(None, common + ["max_steps=3"]))
    assert m2["resumed_from"] and m2["resumed_from"].endswith("checkpoint-2") and m2["global_steps"] == 3
    # prompt selection: every prompt's group sampled once; the count of kept prompts is reported
    sel = [o for o in common if not o.startswith(("output_dir=", "select_prompts="))]
    m3 = train(load_config(None, sel + [f"output_dir={tmp_path / 'sel'}", "select_prompts=true", "max_steps=1"]))
    s = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert s["prompts"] == 8 and s["kept"] + s["all_right"] + s["all_same_not_right"] == 8
    assert m3["selection"]["kept"] == s["kept"] == len(s["kept_ids"])
