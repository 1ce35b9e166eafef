"""The checks every GGUF export runs: is the file the model, and does it see sqltune's prompts as training did?

* **metadata**: architecture, chat template, BOS and EOS ids, the pre-tokenizer (for BPE
  vocabularies) and the provenance keys are in the file;
* **template parity**: llama.cpp's rendering of the chat template (its ``/apply-template``)
  equals the Hugging Face tokenizer's, prompt by prompt;
* **token parity**: llama.cpp tokenizes that text to exactly the ids the Hugging Face side
  trains and predicts on (:func:`sqltune.models.load.encode_prompt`);
* **greedy answers**: a handful of prompts answered greedily by the exported model (llamacpp
  backend) and by the Hugging Face model (hf backend, fp32): identical texts, identical
  extracted SQL and the mean common prefix are reported. Quantization may legitimately flip a
  near-tie (and with it the rest of an answer), so a float file (f32, f16, bf16) fails only when
  the answers disagree from the start (no text and no SQL identical, a median common prefix under
  25%), and a quantized one gets a warning in the report instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.db.schema import Column, Schema, Table
from sqltune.errors import ModelError
from sqltune.extract import extract_sql
from sqltune.io import read_jsonl

REQUIRED_KEYS = (
    "general.architecture",
    "tokenizer.chat_template",
    "tokenizer.ggml.model",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "general.quantized_by",
    "general.description",
)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The file's key/value metadata (long arrays summarised by their length)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        try:
            value = field.contents()
        except Exception:  # a type the reader cannot decode: record that it is there
            value = "?"
        if isinstance(value, list) and len(value) > 16:
            value = f"<{len(value)} items>"
        meta[key] = value
    return meta


def read_metadata_type(meta: dict[str, Any]) -> str:
    """The file type's name (F32, F16, BF16, Q8_0, ...) from ``general.file_type``."""
    import gguf

    try:
        return (
            gguf.LlamaFileType(int(meta.get("general.file_type", -1))).name.removeprefix("MOSTLY_").replace("ALL_", "")
        )
    except (ValueError, TypeError):
        return "?"


def check_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if meta.get("tokenizer.ggml.model") == "gpt2" and not meta.get("tokenizer.ggml.pre"):
        missing.append("tokenizer.ggml.pre")
    return {
        "ok": not missing,
        "missing": missing,
        "architecture": meta.get("general.architecture"),
        "pre_tokenizer": meta.get("tokenizer.ggml.pre"),
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "file_type": meta.get("general.file_type"),
    }


def _builtin_prompts() -> list[list[dict[str, str]]]:
    """Prompts over a small built-in schema, for a model with no training file to take prompts from."""
    cols = [Column("singer_id", "INTEGER", primary_key=True), Column("name", "TEXT"), Column("country", "TEXT")]
    cols += [Column("age", "INTEGER"), Column("Song_release_year", "TEXT")]
    schema = Schema(db_id="concert_singer", tables=(Table("singer", tuple(cols)),))
    questions = [
        "How many singers do we have?",
        "What are the names of singers from France, ordered by age?",
        "What is the average, minimum and maximum age of the singers?",
        "Which country has the most singers? Show the country and the count.",
        "List the distinct release years of songs by singers older than 40.",
        "Give me every singer's name and country; include ünïcödé names like Zoë and 周杰伦.",
        "Show the name of the youngest singer   (watch the  spaces)\tand tabs.",
        "Count singers whose name contains 'Mc' -- not the \"Mac\" ones!",
    ]
    out = []
    for style in prompts.SCHEMA_STYLES:
        text = prompts.render_schema(schema, style)
        out += [prompts.prompt_messages(text, q) for q in questions]
    return out


def parity_prompts(source: dict[str, Any], dataset: str | None, n: int) -> tuple[list[list[dict[str, str]]], str]:
    """(prompts, where they came from): the given dataset, else the run's training file, else built-in ones."""
    import yaml

    path = dataset
    if path is None and source.get("run"):
        run = Path(source["folder"]).parent
        cfg = run / "config.yaml"
        if cfg.is_file():
            path = (yaml.safe_load(cfg.read_text()) or {}).get("train_file")
            if path and not Path(path).is_file():
                path = None
    if path:
        records = read_jsonl(path)[:n]
        return [prompts.messages_from_record(r) for r in records], str(path)
    return _builtin_prompts()[:n], "built-in prompts"


def check_export(out: Path, source: dict[str, Any], cfg: Any) -> dict[str, Any]:
    import httpx

    from sqltune.models.backend_config import backend_config, open_backend
    from sqltune.models.generation import GenParams
    from sqltune.models.load import encode_prompt, load_tokenizer, prompt_text

    result: dict[str, Any] = {}
    meta = read_metadata(out)
    result["metadata"] = check_metadata(meta)
    tok = load_tokenizer(source["folder"], chat_template=True, resolve=False)
    msgs, where = parity_prompts(source, cfg.dataset, cfg.parity_prompts)
    t0 = time.perf_counter()
    backend: Any = open_backend(
        backend_config("llamacpp", str(out), slots=min(4, max(1, cfg.greedy_prompts)), context=4096)
    )
    result["load_seconds"] = round(time.perf_counter() - t0, 2)
    template_same = tokens_same = 0
    first_diff: dict[str, Any] | None = None
    with httpx.Client(base_url=backend.base_url, timeout=60) as http:
        for m in msgs:
            hf_text = prompt_text(tok, m)
            r = http.post("/apply-template", json={"messages": m})
            ll_text = r.json().get("prompt") if r.status_code == 200 else None
            hf_ids = encode_prompt(tok, m)
            t = http.post("/tokenize", json={"content": ll_text or hf_text, "add_special": True})
            ll_ids = t.json().get("tokens") if t.status_code == 200 else None
            template_same += ll_text == hf_text
            tokens_same += ll_ids == hf_ids
            if first_diff is None and (ll_text != hf_text or ll_ids != hf_ids):
                k = next((i for i, (a, b) in enumerate(zip(hf_ids, ll_ids or [], strict=False)) if a != b), None)
                first_diff = {
                    "prompt": m[-1]["content"][-200:],
                    "template_equal": ll_text == hf_text,
                    "hf_tokens": len(hf_ids),
                    "llamacpp_tokens": len(ll_ids or []),
                    "first_differing_token": k,
                }
    result["parity"] = {
        "prompts_from": where,
        "prompts": len(msgs),
        "template_identical": template_same,
        "tokens_identical": tokens_same,
        "first_difference": first_diff,
        "ok": bool(msgs) and template_same == len(msgs) and tokens_same == len(msgs),
    }
    g: dict[str, Any] = {"prompts": 0, "text_identical": 0, "sql_identical": 0, "examples": []}
    if cfg.greedy_prompts:
        sample = msgs[: cfg.greedy_prompts]
        params = GenParams(max_new_tokens=cfg.max_new_tokens)
        t1 = time.perf_counter()
        ll = [c[0].text for c in backend.generate(sample, params)]
        g["llamacpp_seconds"] = round(time.perf_counter() - t1, 2)
        hf_backend = open_backend(
            backend_config("hf", source["folder"], device="cpu", precision="fp32", batch_size=len(sample))
        )
        t2 = time.perf_counter()
        hf = [c[0].text for c in hf_backend.generate(sample, params)]
        g["hf_seconds"] = round(time.perf_counter() - t2, 2)
        del hf_backend
        g["prompts"] = len(sample)
        ratios = []
        for a, b in zip(hf, ll, strict=True):
            a, b = a.strip(), b.strip()
            g["text_identical"] += a == b
            sa, sb = extract_sql(a), extract_sql(b)
            g["sql_identical"] += bool(sa) and sa == sb
            common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            ratios.append(common / max(1, len(a), len(b)))
            if len(g["examples"]) < 3:
                g["examples"].append({"hf": a[:300], "llamacpp": b[:300]})
        g["common_prefix"] = round(sum(ratios) / len(ratios), 3)
        # a near-tie flipped by quantization changes the rest of an answer; a broken conversion
        # (wrong RoPE, wrong vocabulary) disagrees from the first token on, everywhere
        agree = g["text_identical"] > 0 or g["sql_identical"] > 0 or sorted(ratios)[len(ratios) // 2] >= 0.25
        quantized = read_metadata_type(meta) not in ("F32", "F16", "BF16")
        # quantized weights move near-ties: a base model's flat first-token choices can all flip, which the
        # report says; float files compute what the Hugging Face model computes and must agree
        g["ok"] = agree or quantized
        if not agree:
            g["warning"] = (
                "the exported model's greedy answers differ from the Hugging Face model's from the first tokens on"
                + (" (quantized weights: compare EX on your data before using it)" if quantized else "")
            )
    else:
        g["ok"] = True
    result["greedy"] = g
    backend.close()
    result["ok"] = result["metadata"]["ok"] and result["parity"]["ok"] and g["ok"]
    if not result["ok"]:
        failed = [k for k in ("metadata", "parity", "greedy") if not result[k]["ok"]]
        result["failed"] = failed
    return result


def require_ok(report: dict[str, Any]) -> None:
    checks = report.get("checks")
    if checks and not checks["ok"]:
        raise ModelError(
            f"{report['file']}: the export was written but failed its checks ({', '.join(checks['failed'])}); "
            f"see {report['file']}.sqltune.json"
        )
