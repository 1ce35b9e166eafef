"""The quickstart end to end with the real default model (slow: a few minutes on 2 CPU cores).

It runs the real steps with a short fine-tune (3 steps, each logged) on 8 test questions, and checks the
contract: summary.json with ex_zero_shot, ex_fine_tuned in 0..1 and minutes, and the plots.
The full run's figures come from `sqltune quickstart --out runs/quickstart` (see the README).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_quickstart(out, *args: str) -> subprocess.CompletedProcess:
    """``sqltune quickstart --out OUT ARGS`` in a subprocess; fails the test on a non-zero exit."""
    r = subprocess.run(
        [sys.executable, "-m", "sqltune", "quickstart", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quickstart_contract(tmp_path):
    out = tmp_path / "qs"
    r = run_quickstart(out, "--limit", "8", "max_steps=3", "logging_steps=1")
    s = json.loads((out / "summary.json").read_text())
    assert 0 <= s["ex_zero_shot"] <= 1 and 0 <= s["ex_fine_tuned"] <= 1 and s["minutes"] > 0
    assert s["test_questions"] == 8
    # the headline: the questions written by hand, scored beside the template split, before and after
    assert 0 <= s["ex_human_zero_shot"] <= 1 and 0 <= s["ex_human"] <= 1 and s["human_questions"] == 8
    for phase in ("zero_shot", "fine_tuned"):
        ids = [json.loads(x)["id"] for x in (out / phase / "human_eval" / "results.jsonl").read_text().splitlines()]
        assert len(ids) == 8 and all(i.startswith("shop-hand-") for i in ids), ids
    assert s["test_split"] == "template paraphrases (recall)" and "human-written" in s["table"]
    assert (out / "accuracy.png").stat().st_size > 1000 and (out / "train" / "loss.png").stat().st_size > 1000
    assert "zero-shot EX" in r.stdout and "fine-tuned EX" in r.stdout
    assert "questions written by hand: EX" in r.stdout and "recall" in r.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quickstart_on_spider(tmp_path, spider_dir):
    out = tmp_path / "qs"
    run_quickstart(
        out, "--benchmark", "spider", "--data-dir", str(spider_dir), "--limit", "4", "max_steps=1", "logging_steps=1"
    )
    s = json.loads((out / "summary.json").read_text())
    assert s["benchmark"] == "spider" and s["test_questions"] == 4
    assert (out / "data" / "spider_train.jsonl").stat().st_size > 0


def test_speed_check_says_up_front_when_this_machine_is_slower(monkeypatch, tmp_path):
    """The quickstart times real training steps of its recipe and scales the reference minutes by
    them; a slow machine gets a warning with the minutes to expect, before anything long starts."""
    import math

    from sqltune import quickstart
    from sqltune.train import probe
    from sqltune.train.config import load_config

    data = tmp_path / "train.jsonl"
    data.write_text("{}\n" * 100)
    cfg = load_config(quickstart.RECIPE, [], base={"train_file": str(data)}, check_files=False)
    ref = quickstart.REFERENCE["s_per_step"]
    slow = ref * 1.05 * quickstart.PROMISE / quickstart.REFERENCE["minutes"]
    for speed, warned in ((ref, False), (slow, True)):
        monkeypatch.setattr(probe, "probe_steps", lambda cfg, steps, s=speed: {"s_per_step": s})
        lines: list[str] = []
        check = quickstart.speed_check(cfg, "demo", cot=False, log=lines.append)
        steps = check["scheduled_steps"]
        assert steps == math.ceil(cfg.epochs * math.ceil(100 * (1 - cfg.val_fraction) / cfg.batch_size))
        assert check["expected_train_minutes"] == round(steps * speed / 60, 1)
        assert check["expected_minutes"] == round(quickstart.REFERENCE["minutes"] * speed / ref, 1)
        assert any(f"about {check['expected_minutes']:.0f} min" in x for x in lines)
        assert any("warning: this machine trains" in x and "more than the 20" in x for x in lines) is warned
    # another job than the demo's: the training minutes are said, no whole-run figure is promised
    lines = []
    check = quickstart.speed_check(cfg, "spider", cot=False, log=lines.append)
    assert "expected_minutes" not in check and "s per training step" in lines[0]


def test_matmul_probe_measures_something_plausible():
    from sqltune.models.load import matmul_gflops

    g = matmul_gflops("fp32", n=256, rounds=2, reps=4)
    assert 0.1 < g < 1e6


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quickstart_on_your_own_database(tmp_path):
    """``quickstart --db FILE``: pairs synthesized from the file alone, train/test split by query
    structure (no shape on both sides), zero-shot and fine-tuned EX, and the command to ask it."""
    from sqltune.io import read_jsonl
    from sqltune.sqlutil import skeleton
    from test_data_synth import star_db

    db = star_db(tmp_path / "star.sqlite")
    out = tmp_path / "qs"
    r = run_quickstart(out, "--db", str(db), "--pairs", "60", "--limit", "6", "max_steps=2", "logging_steps=1")
    s = json.loads((out / "summary.json").read_text())
    assert s["benchmark"] == "db" and s["databases"] == [str(db)] and s["test_questions"] == 6
    stages = s["stage_seconds"]  # where the minutes went, stage by stage, adding up to the whole run
    assert list(stages) == ["model", "data", "speed_check", "zero_shot", "fine_tune", "fine_tuned_eval"]
    assert all(v >= 0 for v in stages.values()) and abs(sum(stages.values()) - 60 * s["minutes"]) < 2
    train, test = read_jsonl(out / "data" / "train.jsonl"), read_jsonl(out / "data" / "test.jsonl")
    assert len(read_jsonl(out / "data" / "pairs.jsonl")) == len(train) + len(test) == 60
    assert not {skeleton(x["sql"]) for x in train} & {skeleton(x["sql"]) for x in test}
    assert f'sqltune ask "YOUR QUESTION" --db {db} --model {s["fine_tuned_model"]}' in " ".join(r.stdout.split())


def test_mix_adds_as_many_generic_examples_and_checks_its_input(tmp_path, school_db):
    from conftest import make_school_dataset
    from sqltune.errors import ConfigError
    from sqltune.io import read_jsonl, write_jsonl
    from sqltune.quickstart import mixed_train_file

    (tmp_path / "data").mkdir()
    own = make_school_dataset(tmp_path / "data" / "train.jsonl", school_db, n=5)
    generic = make_school_dataset(tmp_path / "generic.jsonl", school_db, n=12)
    rows = read_jsonl(generic)
    for i, r in enumerate(rows):
        r["id"] = f"g-{i}"
    write_jsonl(generic, rows)
    mixed = read_jsonl(mixed_train_file(own, str(generic), seed=0, log=lambda *_: None))
    ids = [r["id"] for r in mixed]
    assert len(ids) == 10 and sum(i.startswith("g-") for i in ids) == 5 and len(set(ids)) == 10
    assert ids != sorted(ids, key=lambda i: i.startswith("g-"))  # shuffled, not appended
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [{"id": "x", "question": "q"}])
    other = own.with_name("t2.jsonl")
    write_jsonl(other, read_jsonl(own))
    with pytest.raises(ConfigError, match="record 1 has no 'messages'"):
        mixed_train_file(other, str(bad), 0)


def test_mix_usage_errors_name_the_fix(tmp_path):
    for args, said in (
        (["--benchmark", "spider", "--mix", "generic"], "--mix goes with --db or the demo"),
        (["--mix", str(tmp_path)], "a folder must be Spider's"),
        (["--db", str(tmp_path / "x.sqlite"), "--mix", str(tmp_path / "nope")], "no such file or folder"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "sqltune", "quickstart", "--out", str(tmp_path / "qs"), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and said in " ".join((r.stdout + r.stderr).split()) and "Traceback" not in r.stderr
