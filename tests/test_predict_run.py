"""sqltune predict with the hf backend on a tiny real model: records, manifest, resume, voting, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_school_dataset
from sqltune.errors import ConfigError, DataError, ModelError
from sqltune.models.backends import Completion, GenParams, HFBackend
from sqltune.predict.run import PredictConfig, manifest_path, predict, recover_done

FIELDS = {"id", "db_id", "pred_sql", "raw", "prompt_tokens", "completion_tokens", "seconds", "status"}


@pytest.fixture
def dataset(tmp_path, school_db):
    return make_school_dataset(tmp_path / "school.jsonl", school_db, n=12)


def cfg(dataset, out, model, **kw):
    return PredictConfig(dataset=str(dataset), out=str(out), model=str(model), max_new_tokens=8, batch_size=4, **kw)


def test_predict_writes_records_and_manifest(dataset, tmp_path, tiny_model):
    out = tmp_path / "pred.jsonl"
    s = predict(cfg(dataset, out, tiny_model, precision="fp32"), progress=False)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert s["generated"] == 12 and len(recs) == 12
    assert {r["id"] for r in recs} == {f"s-{i}" for i in range(12)}
    for r in recs:
        assert set(r) >= FIELDS
        assert r["prompt_tokens"] > 10 and 0 < r["completion_tokens"] <= 8
    m = json.loads(manifest_path(out).read_text())
    assert m["weights_sha256"] and len(m["weights_sha256"]) == 64
    assert m["chat_template_sha256"] and m["dataset_sha256"]
    assert m["decoding"]["max_new_tokens"] == 8 and m["decoding"]["temperature"] == 0.0
    assert m["prompt_format"] == {
        "format": "chat",
        "schema_style": "compact",
        "system_prompt_sha256": m["prompt_format"]["system_prompt_sha256"],
    }
    assert m["backend"]["precision"] == "fp32"
    assert {"torch", "transformers"} <= set(m["versions"])


def test_batched_greedy_equals_one_at_a_time(dataset, tmp_path, tiny_model):
    """Left padding and length-sorted batches must not change greedy outputs."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    predict(cfg(dataset, a, tiny_model, precision="fp32"), progress=False)
    c = cfg(dataset, b, tiny_model, precision="fp32")
    c = dataclasses.replace(c, batch_size=1)
    predict(c, progress=False)
    ra = {json.loads(x)["id"]: json.loads(x)["raw"] for x in a.read_text().splitlines()}
    rb = {json.loads(x)["id"]: json.loads(x)["raw"] for x in b.read_text().splitlines()}
    assert ra == rb


def test_resume_skips_done_ids_and_drops_a_torn_line(dataset, tmp_path, tiny_model):
    out = tmp_path / "pred.jsonl"
    c = cfg(dataset, out, tiny_model, precision="fp32")
    c = dataclasses.replace(c, limit=5)
    predict(c, progress=False)
    with open(out, "a") as fh:
        fh.write('{"id": "s-7", "pred_sql": "SEL')  # a crash in the middle of a write
    done = recover_done(out)
    assert set(done) == {f"s-{i}" for i in range(5)}
    assert out.read_text().endswith("\n")
    s = predict(cfg(dataset, out, tiny_model, precision="fp32"), progress=False)
    assert s["already_done"] == 5 and s["generated"] == 7
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"s-{i}" for i in range(12))
    runs = json.loads(manifest_path(out).read_text())["runs"]
    assert [r["generated"] for r in runs] == [5, 7]


def test_sigkill_midway_then_rerun_gives_every_id_once(dataset, tmp_path, tiny_model):
    out = tmp_path / "pred.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "sqltune",
        "predict",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--model",
        str(tiny_model),
        "--batch-size",
        "1",
        "--max-new-tokens",
        "64",
        "--precision",
        "fp32",
        "--no-static-cache",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = out.read_text().count("\n")
    assert 3 <= partial < 12, "the run should have been killed halfway"
    subprocess.run(cmd, check=True, capture_output=True)
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert len(ids) == 12 and len(set(ids)) == 12


class FixedBackend:
    """A backend returning given candidate texts, to check the vote itself."""

    name = "fixed"

    def __init__(self, texts):
        self.texts = texts

    def info(self):
        return {"backend": self.name}

    def generate(self, prompts, params: GenParams):
        assert params.num_samples == len(self.texts)
        return [[Completion(t, 5, 3) for t in self.texts] for _ in prompts]


@pytest.mark.parametrize(
    ("texts", "chosen", "votes"),
    [
        # two candidates agree by result (different SQL, same rows) and outvote the greedy one
        (
            [
                "SELECT name FROM teacher WHERE age > 100",
                "SELECT COUNT(*) FROM teacher",
                "SELECT count(name) FROM teacher",
            ],
            1,
            2,
        ),
        # failed candidates get no vote; the only working one wins
        (["SELECT nope FROM teacher", "SELECT age FROM teacher", "not sql at all"], 1, 1),
        # a tie goes to the greedy candidate
        (["SELECT 1", "SELECT 2", "SELECT 3"], 0, 1),
    ],
)
def test_self_consistency_votes_by_execution(dataset, tmp_path, texts, chosen, votes):
    out = tmp_path / "pred.jsonl"
    c = PredictConfig(dataset=str(dataset), out=str(out), num_samples=3, limit=1)
    predict(c, backend=FixedBackend(texts), progress=False)
    rec = json.loads(out.read_text().splitlines()[0])
    assert rec["chosen"] == chosen and rec["votes"] == votes
    assert rec["pred_sql"] == texts[chosen] and len(rec["candidates"]) == 3


def test_sampling_draws_several_candidates(dataset, tmp_path, tiny_model):
    out = tmp_path / "pred.jsonl"
    c = cfg(dataset, out, tiny_model, precision="fp32", num_samples=3, sample_temperature=1.5)
    c = dataclasses.replace(c, limit=4)
    predict(c, progress=False)
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(len(r["candidates"]) == 3 and 0 <= r["chosen"] < 3 for r in recs)


def test_prompt_longer_than_context_is_a_per_record_status(dataset, tmp_path, tiny_model):
    out = tmp_path / "pred.jsonl"
    c = cfg(dataset, out, tiny_model, precision="fp32")
    c = dataclasses.replace(c, max_new_tokens=1000)  # the tiny model's context is 1024 tokens
    s = predict(c, progress=False)
    assert s["statuses"] == {"prompt_too_long": 12}
    rec = json.loads(out.read_text().splitlines()[0])
    assert "--max-new-tokens" in rec["error"] and rec["pred_sql"] == ""


def test_bad_inputs_are_clear_errors(dataset, tmp_path, tiny_model):
    with pytest.raises(ModelError, match="unknown model"):
        HFBackend("smollm2-135m-nope/x/y")  # neither a name, a folder nor a hub id
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "messages": [{"role": "system", "content": "x"}]}\n')
    with pytest.raises(DataError, match=r"(?s)bad.jsonl: 1 problem.*line 1: \(id a\) 'messages' has no user turn"):
        predict(cfg(bad, tmp_path / "o.jsonl", tiny_model), progress=False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        HFBackend(str(tiny_model), device="cpu", load_in_4bit=True)
    with pytest.raises(ConfigError, match="num_samples"):
        predict(cfg(dataset, tmp_path / "o.jsonl", tiny_model, num_samples=0), progress=False)
    weights = tmp_path / "broken_model"
    weights.mkdir()
    for f in Path(tiny_model).iterdir():
        (weights / f.name).write_bytes(f.read_bytes())
    (weights / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot load model weights"):
        HFBackend(str(weights), device="cpu")
