"""Training and inference see the same prompt tokens, for the default model's template and for
templates that differ (real ones shipped in the TRL wheel)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from conftest import make_school_dataset
from sqltune.io import read_jsonl
from sqltune.models import DEFAULT_MODEL, is_pulled, load_tokenizer
from sqltune.models.load import encode_prompt
from sqltune.prompts import answer_from_record, messages_from_record
from sqltune.train.data import IGNORE, encode_example


def _trl_template(name: str) -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()


def _tokenizers(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    toks = {"tiny": AutoTokenizer.from_pretrained(tiny_tokenizer_dir)}
    if is_pulled(DEFAULT_MODEL):
        toks[DEFAULT_MODEL] = load_tokenizer(DEFAULT_MODEL)
    return toks


@pytest.mark.parametrize("template", ["own", "qwen2_5", "llama3_1"])
def test_inference_prompt_is_the_training_prefix(template, tiny_model, school_db, tmp_path):
    records = read_jsonl(make_school_dataset(tmp_path / "d.jsonl", school_db, n=4))
    for name, base in _tokenizers(tiny_model).items():
        tok = copy.deepcopy(base)
        if template != "own":
            tok.chat_template = _trl_template(template)
        for rec in records:
            ids, labels = encode_example(tok, rec)
            prompt = encode_prompt(tok, messages_from_record(rec))
            first = next(i for i, x in enumerate(labels) if x != IGNORE)
            assert first == len(prompt), (name, template)
            assert ids[:first] == prompt, (name, template)
            assert all(x == IGNORE for x in labels[:first])
            assert labels[first:] == ids[first:]
            answer = tok.decode(ids[first:], skip_special_tokens=True)
            if name != "tiny":  # the word-level tiny tokenizer does not round-trip text
                assert answer_from_record(rec) in answer
            assert tok.eos_token_id in ids[first:] or template != "own", (
                "the answer must end with the end-of-turn token"
            )


def test_default_model_prompt_tokens_match(tmp_path, school_db):
    if not is_pulled(DEFAULT_MODEL):
        pytest.skip(f"{DEFAULT_MODEL} is not pulled (sqltune models pull {DEFAULT_MODEL})")
    tok = load_tokenizer(DEFAULT_MODEL)
    rec = read_jsonl(make_school_dataset(tmp_path / "d.jsonl", school_db, n=1))[0]
    ids, labels = encode_example(tok, rec)
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are a text to SQL query translator.")
    assert text.endswith("<|im_start|>assistant\nSELECT COUNT(*) FROM teacher<|im_end|>\n")
    assert tok.decode(encode_prompt(tok, messages_from_record(rec))).endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("template", ["own", "llama3_1"])
def test_token_counts_are_encode_prompt_lengths(template, tiny_model, tmp_path, school_db):
    from sqltune.models.load import TokenCounter

    recs = read_jsonl(make_school_dataset(tmp_path / "d.jsonl", school_db, n=4))
    for base in _tokenizers(tiny_model).values():
        tok = copy.deepcopy(base)
        if template != "own":
            tok.chat_template = _trl_template(template)
        msgs = [messages_from_record(r) for r in recs]
        assert TokenCounter(tok).count_many(msgs) == [len(encode_prompt(tok, m)) for m in msgs]
