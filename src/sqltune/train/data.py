"""Training examples as token ids with labels: the loss is on the answer only.

The prompt part is tokenized by :func:`sqltune.models.load.encode_prompt`, the very function
inference uses, so training conditions on exactly the tokens the model will see when asked. The
answer is the rest of the model's own chat template rendering of the full conversation (which
ends with the template's end-of-turn token, the model's EOS): no new tokens are added and no
embeddings are resized.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sqltune.errors import DataError
from sqltune.io import read_jsonl
from sqltune.models.load import encode_answer
from sqltune.prompts import answer_from_record, messages_from_record

IGNORE = -100


def encode_example(tokenizer: Any, record: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one chat or alpaca record; labels are -100 on the prompt.

    The prompt ids are exactly :func:`encode_prompt`'s; the answer is the rest of the template's
    rendering of the whole conversation, tokenized on its own, so that a BPE merge across the
    prompt/answer boundary can never make the training prompt differ from the inference one.
    """
    prompt_ids, completion = encode_answer(tokenizer, messages_from_record(record), answer_from_record(record))
    return prompt_ids + list(completion), [IGNORE] * len(prompt_ids) + list(completion)


def prefix_key(record: dict[str, Any]) -> str:
    """What examples sharing a prompt prefix have in common: the database (its schema is most of
    the prompt) and the schema style; records without a database share one key."""
    return f"{record.get('db_id') or record.get('db_path') or ''}\x1f{record.get('schema_style') or ''}"


def tokenize_file(
    path: str | Path,
    tokenizer: Any,
    max_length: int,
    overlong: str = "drop",
    records: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Tokenize a dataset file; return the examples (``input_ids``, ``labels``, ``prefix_key``) and a
    report of what was dropped or cut."""
    records = read_jsonl(path) if records is None else records
    out: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    truncated = 0
    lengths = []
    for n, r in enumerate(records, 1):
        if "messages" not in r and "instruction" not in r:
            raise DataError(
                f"{path}: record {n}: no 'messages' (chat) or 'instruction'/'output' (alpaca) fields; "
                "build it with 'sqltune data build'"
            )
        if not answer_from_record(r).strip():
            skipped["no_answer"] += 1
            continue
        ids, labels = encode_example(tokenizer, r)
        if len(ids) > max_length:
            if overlong == "drop":
                skipped["over_max_length"] += 1
                continue
            ids, labels = ids[:max_length], labels[:max_length]
            truncated += 1
            if all(x == IGNORE for x in labels):
                skipped["no_answer_left_after_truncation"] += 1
                continue
        lengths.append(len(ids))
        out.append({"input_ids": ids, "labels": labels, "prefix_key": prefix_key(r)})
    report = {
        "file": str(path),
        "records": len(records),
        "examples": len(out),
        "skipped": dict(skipped),
        "truncated": truncated,
        "max_length": max_length,
        "overlong": overlong,
        "tokens": sum(lengths),
        "label_tokens": sum(sum(1 for x in e["labels"] if x != IGNORE) for e in out),
        "longest": max(lengths, default=0),
    }
    return out, report
