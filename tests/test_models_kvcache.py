"""A batch's shared prompt prefix computed once, in generation: the hf backend's answers are the
same token for token as the plain batched path's, and the prefix really is run once per batch."""

from __future__ import annotations

import pytest

from conftest import make_school_dataset
from sqltune import prompts
from sqltune.io import read_jsonl
from sqltune.models import kvcache
from sqltune.models.backends import MIN_SHARED_PREFIX, GenParams, HFBackend
from sqltune.models.load import encode_prompt


@pytest.fixture
def school_prompts(tmp_path, school_db):
    rows = read_jsonl(make_school_dataset(tmp_path / "d.jsonl", school_db, n=6))
    return [prompts.messages_from_record(r) for r in rows]


def _spy(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = kvcache.prefill

    def prefill(model, ids):
        calls.append(ids.shape[1])
        return real(model, ids)

    monkeypatch.setattr(kvcache, "prefill", prefill)
    return calls


def test_common_length():
    assert kvcache.common_length([[1, 2, 3, 4], [1, 2, 9], [1, 2, 3]]) == 2
    assert kvcache.common_length([[1, 2, 3], [1, 2, 3]], limit=2) == 2
    assert kvcache.common_length([[5], [6]]) == 0 and kvcache.common_length([]) == 0


def test_shared_prefix_generation_equals_the_plain_batch(tiny_model, school_prompts, monkeypatch):
    shared = HFBackend(str(tiny_model), device="cpu", precision="fp32", batch_size=6)
    plain = HFBackend(str(tiny_model), device="cpu", precision="fp32", batch_size=6, shared_prefix=False)
    assert shared.info()["shared_prefix"] and not plain.info()["shared_prefix"]
    # questions of different lengths: the suffixes are left-padded after the prefix
    msgs = school_prompts[:5]
    msgs[1] = [*msgs[1][:-1], {"role": "user", "content": msgs[1][-1]["content"] + " and list them all by name"}]
    lengths = {len(encode_prompt(shared.tokenizer, m)) for m in msgs}
    assert len(lengths) > 1
    calls = _spy(monkeypatch)
    params = GenParams(max_new_tokens=12)
    got = shared.generate(msgs, params)
    assert len(calls) == 1 and calls[0] >= MIN_SHARED_PREFIX  # one prefill for the batch of 5
    want = plain.generate(msgs, params)
    assert len(calls) == 1  # the plain backend ran no prefill
    assert [c[0].text for c in got] == [c[0].text for c in want]
    assert [c[0].completion_tokens for c in got] == [c[0].completion_tokens for c in want]
    assert any(c[0].completion_tokens > 0 for c in got)


def test_samples_and_prompts_without_a_common_prefix(tiny_model, school_prompts, monkeypatch):
    backend = HFBackend(str(tiny_model), device="cpu", precision="fp32", batch_size=4)
    calls = _spy(monkeypatch)
    out = backend.generate(school_prompts[:2], GenParams(max_new_tokens=6, num_samples=3))
    assert [len(c) for c in out] == [3, 3] and len(calls) == 2  # greedy batch, then the samples' batch
    lone = [[{"role": "user", "content": "hello there"}], [{"role": "user", "content": "what now"}]]
    backend.generate(lone, GenParams(max_new_tokens=4))
    assert len(calls) == 2  # too short a common prefix: the plain batch with its static cache
