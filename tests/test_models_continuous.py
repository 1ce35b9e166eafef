"""Continuous batching (the hf backend under ``sqltune serve``): the same answers as the batch
path, whatever joins or leaves the batch meanwhile."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import make_school_dataset
from sqltune import prompts
from sqltune.io import read_jsonl
from sqltune.models.backends import GenParams, HFBackend
from sqltune.models.continuous import ContinuousHF


@pytest.fixture(scope="module")
def backend(tiny_model):
    return HFBackend(str(tiny_model), device="cpu", precision="fp32")


@pytest.fixture
def school_prompts(tmp_path, school_db):
    rows = read_jsonl(make_school_dataset(tmp_path / "d.jsonl", school_db, n=4))
    msgs = [prompts.messages_from_record(r) for r in rows]
    # a repair-like turn: a longer prompt that shares the first one's beginning
    msgs.append([*msgs[0], {"role": "assistant", "content": "SELECT 1"}, {"role": "user", "content": "again"}])
    return msgs


@pytest.mark.parametrize("length", [1024, 8])  # 8: the cache grows, and rows move right and back
def test_same_greedy_answers_as_the_batch_path(backend, school_prompts, length):
    params = GenParams(max_new_tokens=24)
    ref = [c[0] for c in backend.generate(school_prompts, params)]
    engine = ContinuousHF(backend, slots=3, length=length)
    got: list = [None] * len(school_prompts)

    def ask(i: int) -> None:
        got[i] = engine.generate([school_prompts[i]], params)[0][0]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(school_prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [g.text for g in got] == [r.text for r in ref]
    assert [g.completion_tokens for g in got] == [r.completion_tokens for r in ref]
    st = engine.stats()
    assert st["most_rows"] > 1  # requests shared decode steps
    assert st["most_rows"] <= 3  # never more rows than slots
    assert st["prompt_tokens_reused"] > 0  # the shared schema was computed once


def test_rows_leave_when_they_end(backend, school_prompts):
    engine = ContinuousHF(backend, slots=4)
    short, long_ = GenParams(max_new_tokens=2), GenParams(max_new_tokens=30)
    out: dict = {}
    # both requests arrive while the model is busy (the lock held), the short one first and the long
    # one after the loop has already taken it: both still join the same first step
    with engine.lock:
        threads = [
            threading.Thread(target=lambda: out.setdefault("short", engine.generate([school_prompts[1]], short))),
            threading.Thread(target=lambda: out.setdefault("long", engine.generate([school_prompts[0]], long_))),
        ]
        for t in threads:
            t.start()
            time.sleep(0.3)
    for t in threads:
        t.join(timeout=120)
    n_long, n_short = out["long"][0][0].completion_tokens, out["short"][0][0].completion_tokens
    assert n_short <= 2 and 3 <= n_long <= 30
    st = engine.stats()
    assert st["most_rows"] == 2
    # the first token comes from the prefill; the short answer's step was one of the long one's
    assert st["steps"] == n_long - 1


def test_samples_are_reproducible_and_first_is_greedy(backend, school_prompts):
    params = GenParams(max_new_tokens=12, num_samples=3, sample_temperature=1.0, seed=7)
    a = ContinuousHF(backend).generate(school_prompts[:2], params)
    b = ContinuousHF(backend).generate(school_prompts[:2], params)
    assert [[c.text for c in x] for x in a] == [[c.text for c in x] for x in b]
    assert all(len(x) == 3 for x in a)
    greedy = backend.generate(school_prompts[:2], GenParams(max_new_tokens=12))
    assert [x[0].text for x in a] == [g[0].text for g in greedy]


def test_too_long_prompt_is_refused_not_run(backend, school_prompts):
    engine = ContinuousHF(backend)
    out = engine.generate(school_prompts[:1], GenParams(max_new_tokens=backend.max_context))
    assert out[0][0].status == "prompt_too_long"
    assert engine.stats()["steps"] == 0


def test_close_ends_the_thread_after_the_answers_asked_for(backend, school_prompts):
    engine = ContinuousHF(backend, slots=2)
    params = GenParams(max_new_tokens=16)
    got: dict = {}
    waiter = threading.Thread(target=lambda: got.setdefault("a", engine.generate(school_prompts[:3], params)))
    waiter.start()
    while not engine.steps:  # decoding has begun: every request of the call is queued or in flight
        time.sleep(0.001)
    engine.close()
    waiter.join(timeout=120)
    assert [c[0].status for c in got["a"]] == ["ok"] * 3  # nothing asked for before the close is lost
    assert not engine._thread.is_alive()
    assert engine.store is None and not engine.prefixes
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate(school_prompts[:1], params)


def test_predict_decodes_in_one_continuous_batch_with_the_same_answers(tiny_model, school_db, tmp_path):
    from sqltune.predict.run import PredictConfig, predict

    data = make_school_dataset(tmp_path / "d.jsonl", school_db, n=7)
    common = dict(model=str(tiny_model), dataset=str(data), max_new_tokens=20, precision="fp32", batch_size=2)
    before = {t.ident for t in threading.enumerate()}
    predict(PredictConfig(out=str(tmp_path / "c.jsonl"), **common), progress=False)
    predict(PredictConfig(out=str(tmp_path / "b.jsonl"), continuous=False, **common), progress=False)
    c, b = read_jsonl(tmp_path / "c.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert len(c) == 7
    key = lambda r: r["id"]  # noqa: E731
    assert [(r["raw"], r["pred_sql"]) for r in sorted(c, key=key)] == [
        (r["raw"], r["pred_sql"]) for r in sorted(b, key=key)
    ]
    assert not [t for t in threading.enumerate() if t.ident not in before and t.name == "sqltune-continuous"]
