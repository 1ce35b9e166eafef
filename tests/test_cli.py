"""The command line: help with examples, clear errors with exit code 2, the data commands end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sqltune.cli import app

runner = CliRunner()
COMMANDS = [
    ["data", "build"],
    ["data", "demo"],
    ["models", "list"],
    ["models", "pull"],
    ["quickstart"],
    ["eval"],
    ["eval", "compare"],
    ["predict"],
    ["train"],
    ["merge"],
    ["serve-openai"],
    ["ask"],
    ["serve"],
    ["data", "cot"],
    ["data", "synth"],
    ["export", "gguf"],
    ["export", "converter"],
    ["mcp"],
    ["db", "load"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help_with_an_example(cmd):
    r = runner.invoke(app, [*cmd, "--help"], terminal_width=200)
    assert r.exit_code == 0
    assert "Example: sqltune " + " ".join(cmd) in " ".join(r.output.split())


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sqltune", *args], capture_output=True, text=True, cwd=cwd)


def test_user_error_is_one_line_and_exit_2(tmp_path):
    r = _run(
        "data",
        "build",
        "--benchmark",
        "spider",
        "--data-dir",
        str(tmp_path),
        "--split",
        "dev",
        "--out",
        str(tmp_path / "o.jsonl"),
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert "dev.json" in r.stderr


def test_bad_option_value_lists_choices(tmp_path):
    r = _run(
        "data",
        "build",
        "--benchmark",
        "wikisql",
        "--data-dir",
        str(tmp_path),
        "--split",
        "dev",
        "--out",
        str(tmp_path / "o.jsonl"),
        "--schema",
        "yaml",
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "spider, bird, pairs" in r.stderr and "ddl, text, compact" in r.stderr


def test_data_build_contract(spider_dir, tmp_path):
    out = tmp_path / "dev.jsonl"
    r = _run(
        "data",
        "build",
        "--benchmark",
        "spider",
        "--data-dir",
        str(spider_dir),
        "--split",
        "dev",
        "--out",
        str(out),
        "--format",
        "chat",
        "--schema",
        "text",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "dev.report.json").read_text())
    assert isinstance(rep["written"], int) and rep["written"] == 972
    assert rep["skipped"] == {"missing_database": 62}
    assert "wta_1 (62)" in r.stdout
    assert json.loads(out.read_text().splitlines()[0])["schema_style"] == "text"


def test_data_demo_prints_the_card(tmp_path):
    r = runner.invoke(app, ["data", "demo", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    assert "# sqltune demo dataset" in r.output
    assert (tmp_path / "demo" / "shop.sqlite").is_file()


def test_eval_cli_official_spider_format(spider_dir, tmp_path):
    lines = (spider_dir / "dev_gold.sql").read_text().splitlines()[:40]
    (tmp_path / "gold.sql").write_text("\n".join(lines) + "\n")
    preds = [x.rsplit("\t", 1)[0] for x in lines]
    preds[3] = "SELECT nope FROM singer"
    (tmp_path / "pred.sql").write_text("\n".join(preds) + "\n")
    out = tmp_path / "ev"
    r = _run(
        "eval",
        "--gold",
        str(tmp_path / "gold.sql"),
        "--pred",
        str(tmp_path / "pred.sql"),
        "--db-root",
        str(spider_dir / "database"),
        "--out",
        str(out),
        "--no-cache",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["n"] == 40 and s["ex"] == 39 / 40
    res = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert res[3]["correct"] is False and res[3]["error_type"] == "unknown_column"
    assert all(r["error_type"] is None for i, r in enumerate(res) if i != 3)
    r2 = _run("eval", "compare", str(out), str(out))
    assert r2.returncode == 0 and "0 fixed, 0 broken" in r2.stdout


def test_eval_cli_short_prediction_file_is_a_clear_error(spider_dir, tmp_path):
    (tmp_path / "pred.sql").write_text("SELECT 1\n")
    r = _run(
        "eval",
        "--gold",
        str(spider_dir / "dev_gold.sql"),
        "--pred",
        str(tmp_path / "pred.sql"),
        "--db-root",
        str(spider_dir / "database"),
        "--out",
        str(tmp_path / "ev"),
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "short by 1033" in r.stderr


def test_a_pairs_file_needs_no_split_and_a_benchmark_is_told_its_splits(school_db, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps(
            {
                "question": "How many students are there?",
                "sql": "SELECT count(*) FROM student",
                "db_path": str(school_db),
            }
        )
        + "\n"
    )
    out = tmp_path / "o.jsonl"
    r = runner.invoke(app, ["data", "build", "--benchmark", "pairs", "--data-dir", str(pairs), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 1
    r = _run("data", "build", "--benchmark", "bird", "--data-dir", str(tmp_path), "--out", str(tmp_path / "b.jsonl"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "split: required for bird (--split dev, train, mini_dev_sqlite)" in r.stderr
