"""Loaders on the real Spider and BIRD files: counts, missing databases, failing golds."""

from __future__ import annotations

import json

import pytest

from sqltune.data.build import BuildConfig, build, report_path


@pytest.fixture(scope="module")
def spider_dev(spider_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("spider") / "dev.jsonl"
    return out, build(BuildConfig(benchmark="spider", data_dir=str(spider_dir), split="dev", out=str(out)))


def test_spider_dev_972_with_wta_1_missing(spider_dev):
    out, rep = spider_dev
    assert rep["written"] == 972
    assert rep["skipped"] == {"missing_database": 62}
    assert rep["missing_databases"] == {"wta_1": 62}
    lines = out.read_text().splitlines()
    assert len(lines) == 972
    assert json.loads(report_path(out).read_text())["written"] == 972
    rec = json.loads(lines[0])
    assert rec["source"] == "spider" and rec["evidence"] == "" and rec["id"] == "dev-0"
    assert rec["messages"][1]["content"].startswith("-- DB Schema: CREATE TABLE")
    assert "\n\n-- External Knowledge: \n\n-- Question: " in rec["messages"][1]["content"]
    assert rec["messages"][2]["content"] == rec["sql"]


def test_spider_output_loads_with_datasets(spider_dev):
    import datasets

    out, _ = spider_dev
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert len(ds) == 972 and ds[0]["messages"][0]["role"] == "system"


def test_spider_train_reports_missing_databases_and_failing_golds(spider_dir, tmp_path):
    out = tmp_path / "train.jsonl"
    rep = build(
        BuildConfig(benchmark="spider", data_dir=str(spider_dir), split="train", out=str(out), schema="compact")
    )
    assert 6900 <= rep["written"] < 7000
    assert set(rep["missing_databases"]) == {"baseball_1", "soccer_1"}
    assert rep["skipped"]["gold_failed"] == len(rep["failed_gold"]) >= 1
    assert all(f["error"] for f in rep["failed_gold"])
    assert rep["written"] + sum(rep["skipped"].values()) == rep["input_examples"] == 7000
    assert rep["sources"] and all(len(h) == 64 for h in rep["sources"].values())


def test_bird_dev_superhero_with_evidence(bird_dir, tmp_path):
    out = tmp_path / "bird.jsonl"
    rep = build(BuildConfig(benchmark="bird", data_dir=str(bird_dir), split="dev", out=str(out), format="alpaca"))
    assert rep["written"] == 129
    assert len(rep["missing_databases"]) == 10 and "superhero" not in rep["missing_databases"]
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert {r["db_id"] for r in recs} == {"superhero"}
    assert {r["difficulty"] for r in recs} <= {"simple", "moderate", "challenging"}
    with_ev = [r for r in recs if r["evidence"]]
    assert len(with_ev) > 100
    assert all(f"-- External Knowledge: {r['evidence']}\n\n" in r["input"] for r in with_ev)
    assert all(r["output"] == r["sql"] for r in recs)


def test_bird_mini_dev(bird_dir, tmp_path):
    rep = build(
        BuildConfig(benchmark="bird", data_dir=str(bird_dir), split="mini_dev_sqlite", out=str(tmp_path / "m.jsonl"))
    )
    assert rep["written"] == 52


def test_split_by_database_is_disjoint_and_seeded(spider_dir, tmp_path):
    def run(seed, name):
        out = tmp_path / f"{name}.jsonl"
        rep = build(
            BuildConfig(
                benchmark="spider",
                data_dir=str(spider_dir),
                split="dev",
                out=str(out),
                val_fraction=0.2,
                seed=seed,
                verify=False,
                schema="compact",
            )
        )
        train = [json.loads(x) for x in out.read_text().splitlines()]
        val = [json.loads(x) for x in (tmp_path / f"{name}.validation.jsonl").read_text().splitlines()]
        return rep, train, val

    rep, train, val = run(1, "a")
    assert not {r["db_id"] for r in train} & {r["db_id"] for r in val}
    assert len(train) + len(val) == rep["written"] == 972
    assert 0.1 < len(val) / 972 < 0.4
    _, train2, val2 = run(1, "b")
    assert [r["id"] for r in val2] == [r["id"] for r in val]
    _, _, val3 = run(2, "c")
    assert {r["db_id"] for r in val3} != {r["db_id"] for r in val}
