"""Stopping an answer once its SQL block is closed: the same extracted SQL, fewer tokens."""

from __future__ import annotations

import pytest

from conftest import make_school_dataset
from sqltune import prompts
from sqltune.extract import extract_sql
from sqltune.io import read_jsonl
from sqltune.models.backends import GenParams, HFBackend

SCRIPTS = [
    "```sql\nSELECT name FROM student\n```\nThis lists every student by name, and more words follow here.",
    "First, the teachers.\n```sql\nSELECT count(*) FROM teacher;\n```\nThe count is what you asked for, so",
    "SELECT age FROM teacher WHERE name = 'Ann'",  # no fence: nothing to stop at, ends with EOS
]


@pytest.fixture
def school_prompts(tmp_path, school_db):
    rows = read_jsonl(make_school_dataset(tmp_path / "d.jsonl", school_db, n=3))
    return [prompts.messages_from_record(r) for r in rows]


def _scripted(backend: HFBackend, monkeypatch) -> None:
    """Each row of a generate call writes its script token by token, then EOS: the backend's own
    generate path (prefix, padding, stopping, trimming) with known text."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    tok, eos = backend.tokenizer, backend.eos_ids[0]
    ids = [tok.encode(s, add_special_tokens=False) for s in SCRIPTS]
    real = backend.model.generate

    class Script(LogitsProcessor):
        start = None

        def __call__(self, input_ids, scores):
            self.start = self.start or input_ids.shape[1]
            k = input_ids.shape[1] - self.start
            forced = torch.full_like(scores, float("-inf"))
            for r in range(scores.shape[0]):
                script = ids[r % len(ids)]
                forced[r, script[k] if k < len(script) else eos] = 0
            return forced

    def generate(**kwargs):
        return real(logits_processor=LogitsProcessorList([Script()]), **kwargs)

    monkeypatch.setattr(backend.model, "generate", generate)


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_rows_stop_after_their_sql_block(gguf_test_model, school_prompts, monkeypatch, shared_prefix):
    backend = HFBackend(str(gguf_test_model), device="cpu", precision="fp32", shared_prefix=shared_prefix)
    _scripted(backend, monkeypatch)
    msgs = school_prompts[:3]
    full = backend.generate(msgs, GenParams(max_new_tokens=80))
    cut = backend.generate(msgs, GenParams(max_new_tokens=80, stop_after_sql=True))
    full_texts = sorted(c[0].text for c in full)
    assert full_texts == sorted(SCRIPTS)  # the scripts, whole, without the stop
    got = {c[0].text.rstrip() for c in cut}  # the closing fence's token may carry the newline
    assert got == {
        "```sql\nSELECT name FROM student\n```",
        "First, the teachers.\n```sql\nSELECT count(*) FROM teacher;\n```",
        SCRIPTS[2],
    }
    for a, b in zip(full, cut, strict=True):
        assert extract_sql(b[0].text) == extract_sql(a[0].text)
        assert b[0].completion_tokens <= a[0].completion_tokens
    assert sum(c[0].completion_tokens for c in cut) < sum(c[0].completion_tokens for c in full)
