"""The prompt contract travels with the model: train writes it into the model folder, merge and GGUF export
carry it, and whatever serves the model rebuilds the training prompt from it, from any directory, after the
folder was moved, without the run folder or its data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_school_dataset
from sqltune import prompts
from sqltune.errors import ConfigError
from sqltune.models.load import load_tokenizer
from sqltune.serve.ask import AskConfig, Database, served_model, start
from sqltune.train.config import load_config
from sqltune.train.sft import train


def _train(data: Path, model: Path, out: Path, method: str) -> dict:
    over = {
        "model": str(model),
        "train_file": str(data),
        "output_dir": str(out),
        "batch_size": 4,
        "max_steps": 1,
        "save_steps": 100,
        "report_to": "[]",
        "precision": "fp32",
        "method": method,
    }
    if method == "lora":
        over.update(lora_r=4, lora_alpha=8)
    return train(load_config(None, [f"{k}={v}" for k, v in over.items()]))


def _served_prompt(model: str, db: Path, question: str) -> list[dict[str, str]]:
    where, style = served_model(model)
    p = start(question, Database(db), "", AskConfig(), prompts.choose_style(style, None))
    assert p.answer.prompt == {"schema_style": "text", "source": "contract", "dialect": "sqlite"}
    return p.base


def test_moved_and_merged_models_serve_their_training_prompts(tmp_path, school_db, tiny_model):
    (tmp_path / "data").mkdir()
    data = make_school_dataset(tmp_path / "data" / "train.jsonl", school_db, n=8, style="text")
    record = json.loads(data.read_text().splitlines()[0])
    run = tmp_path / "full"
    _train(data, tiny_model, run, "full")
    card = json.loads((run / "model" / "sqltune_model.json").read_text())["prompt"]
    assert card["schema_style"] == "text" and card["dialect"] == "sqlite" and card["record_format"] == "chat"
    assert card["system_prompt"] == prompts.SYSTEM_PROMPT and card["cot"] is False

    lora = tmp_path / "lora"
    _train(data, tiny_model, lora, "lora")
    from sqltune.models.merge import merge

    merge(lora, tmp_path / "merged")
    # move everything away from the run folders and their data: nothing left to guess from
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(run / "model", moved)
    shutil.copytree(tmp_path / "merged", tmp_path / "elsewhere" / "merged")
    shutil.rmtree(run)
    shutil.rmtree(lora)
    shutil.rmtree(tmp_path / "data")
    tok = load_tokenizer(str(moved))
    want = tok.apply_chat_template(record["messages"][:2], tokenize=True, add_generation_prompt=True)
    for model in (moved, tmp_path / "elsewhere" / "merged"):
        got = _served_prompt(str(model), school_db, record["question"])
        assert got == record["messages"][:2]
        assert tok.apply_chat_template(got, tokenize=True, add_generation_prompt=True) == want

    # by hand, as a user would: asked from / with the moved folder
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqltune",
            "ask",
            record["question"],
            "--db",
            str(school_db),
            "--model",
            str(moved),
            "--json",
            "--max-new-tokens",
            "4",
            "--repairs",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=300,
    )
    answer = json.loads(r.stdout)
    tokens = answer["prompt"].pop("prompt_tokens")
    assert answer["prompt"] == {"schema_style": "text", "source": "contract", "dialect": "sqlite"}, r.stderr
    assert isinstance(tokens, int) and tokens > 0


def test_an_option_that_contradicts_the_contract_is_refused_unless_forced():
    with pytest.raises(ConfigError, match="contradicts the model's prompt contract"):
        prompts.choose_style("text", "ddl")
    assert prompts.choose_style("text", "ddl", force=True).source == "option"
    assert prompts.choose_style(None, None) == "ddl" and prompts.choose_style(None, None).source == "default"
    assert prompts.choose_style("compact", None).source == "contract"


def test_a_gguf_report_carries_the_contract(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    contract = {"version": 1, "schema_style": "compact", "dialect": "postgresql"}
    (tmp_path / "m.gguf.sqltune.json").write_text(json.dumps({"schema_style": "compact", "prompt": contract}))
    assert prompts.read_contract(gguf) == contract
    assert prompts.trained_schema_style(str(gguf)) == "compact"
