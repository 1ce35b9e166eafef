"""Stage configs written once: the CLI's options are the dataclass fields, their help the docstrings;
every stage reads YAML + key=value; the quickstart reads its recipe from a shipped YAML."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from conftest import make_school_dataset
from sqltune import config as stage_config
from sqltune.cli import app
from sqltune.data.build import BuildConfig
from sqltune.errors import ConfigError
from sqltune.evaluate.run import EvalConfig
from sqltune.predict.run import PredictConfig

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _command(*path: str):
    cmd = get_command(app)
    for p in path:
        cmd = cmd.commands[p]  # type: ignore[attr-defined]
    return cmd


@pytest.mark.parametrize(
    "path,cls", [(("data", "build"), BuildConfig), (("predict",), PredictConfig), (("eval", "run"), EvalConfig)]
)
def test_cli_options_are_the_config_fields_with_their_docstrings(path, cls):
    cmd = _command(*path)
    options = {p.name: p for p in cmd.params if type(p).__name__ == "TyperOption"}
    assert {p.name for p in cmd.params} - set(options) == {"config", "overrides"}
    fields = [f.name for f in dataclasses.fields(cls)]
    assert sorted(options) == sorted(fields)
    docs = stage_config.field_docs(cls)
    assert set(docs) == set(fields), f"fields without a docstring: {set(fields) - set(docs)}"
    for name, opt in options.items():
        assert opt.help == docs[name]
        assert opt.default is None  # an option left out never overrides the YAML


def test_every_stage_config_is_frozen():
    from sqltune.train.config import TrainConfig

    for cls in (BuildConfig, PredictConfig, EvalConfig, TrainConfig):
        assert cls.__dataclass_params__.frozen, cls


def test_unknown_and_mistyped_keys_are_named_at_once():
    with pytest.raises(ConfigError) as e:
        stage_config.load(EvalConfig, None, ["wrokers=2", "timeout=soon"])
    msg = str(e.value)
    assert "unknown key 'wrokers' (did you mean 'workers'?)" in msg
    assert "timeout: 'soon' should be a float" in msg and "valid keys: pred, out" in msg


def test_yaml_then_overrides_then_options(tmp_path):
    f = tmp_path / "eval.yaml"
    f.write_text("workers: 3\ntimeout: 5\nmatch: set\n")
    cfg = stage_config.load(EvalConfig, f, ["timeout=7"], {"match": "ordered", "workers": None})
    assert (cfg.workers, cfg.timeout, cfg.match) == (3, 7.0, "ordered")


def test_sqltune_eval_config_yaml_key_value(tmp_path, school_db):
    ds = make_school_dataset(tmp_path / "d.jsonl", school_db, n=4)
    pred = tmp_path / "p.jsonl"
    pred.write_text(
        "".join(json.dumps({"id": f"s-{i}", "pred_sql": "SELECT COUNT(*) FROM teacher"}) + "\n" for i in range(4))
    )
    cfgf = tmp_path / "eval.yaml"
    cfgf.write_text(
        yaml.safe_dump({"dataset": str(ds), "pred": str(pred), "out": str(tmp_path / "wrong"), "workers": 1})
    )
    r = runner.invoke(app, ["eval", str(cfgf), f"out={tmp_path / 'ev'}", "cache=false"], terminal_width=200)
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert (s["n"], s["correct"]) == (4, 1) and s["config"]["workers"] == 1 and s["config"]["cache"] is False
    assert not (tmp_path / "wrong").exists()
    r = runner.invoke(app, ["eval", str(cfgf), "wrokers=2"])
    assert r.exit_code != 0 and "did you mean 'workers'" in str(r.exception)


def test_sqltune_predict_config_yaml_key_value(tmp_path, school_db, tiny_model):
    ds = make_school_dataset(tmp_path / "d.jsonl", school_db, n=3)
    cfgf = tmp_path / "predict.yaml"
    cfgf.write_text(yaml.safe_dump({"dataset": str(ds), "out": str(tmp_path / "p.jsonl"), "model": str(tiny_model)}))
    r = runner.invoke(app, ["predict", str(cfgf), "max_new_tokens=3", "precision=float32", "--batch-size", "2"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "p.manifest.json").read_text())
    assert m["config"]["max_new_tokens"] == 3 and m["config"]["batch_size"] == 2
    assert m["backend"]["precision"] == "fp32"  # one precision vocabulary; float32 is a spelling of fp32
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 3


def test_the_quickstart_recipe_is_the_shipped_config():
    from sqltune.quickstart import RECIPE

    recipe = yaml.safe_load(RECIPE.read_text())
    shipped = yaml.safe_load((ROOT / "configs" / "smollm2-135m" / "full.yaml").read_text())
    paths = {"train_file", "output_dir"}
    assert {k: v for k, v in shipped.items() if k not in paths} == recipe
    assert not paths & set(recipe)  # the quickstart fills in its own paths


@pytest.mark.parametrize(
    "name,classes,extra",
    [
        ("ask", ("BackendConfig", "AskConfig"), {"question", "db", "evidence", "as_json"}),
        ("serve", ("BackendConfig", "AskConfig", "ServeConfig"), {"db"}),
        ("mcp", ("BackendConfig", "AskConfig"), {"db", "transport", "host", "port"}),
        ("serve-openai", ("BackendConfig",), {"host", "port"}),
        ("predict", ("PredictConfig",), {"config", "overrides"}),
    ],
)
def test_every_command_that_runs_a_model_takes_the_one_backend_config(name, classes, extra):
    from sqltune.models import backend_config
    from sqltune.predict import run as predict_run
    from sqltune.serve import app as serve_app
    from sqltune.serve import ask as serve_ask

    cmd = _command(name)
    params = {p.name: p for p in cmd.params}
    where = (backend_config, serve_ask, serve_app, predict_run)
    cls = [next(getattr(m, c) for m in where if hasattr(m, c)) for c in classes]
    fields = [f.name for c in cls for f in dataclasses.fields(c)]
    assert len(fields) == len(set(fields)), "no option name may mean two things"
    assert set(params) == set(fields) | extra
    backend_fields = {f.name for f in dataclasses.fields(backend_config.BackendConfig)}
    assert backend_fields <= set(params)
    for c in cls:
        docs = stage_config.field_docs(c)
        assert set(docs) == {f.name for f in dataclasses.fields(c)}
        for field, doc in docs.items():
            assert params[field].help == doc


def test_model_settings_that_do_not_apply_to_the_backend_are_refused_naming_both():
    from sqltune.models.backend_config import BackendConfig, backend_config

    def cli(*args: str) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "sqltune", *args], capture_output=True, text=True)
        r.stderr = " ".join(r.stderr.split())  # rich wraps long lines
        return r

    r = cli("predict", "dataset=x.jsonl", "out=y.jsonl", "--backend", "openai", "--slots", "4")
    assert r.returncode == 2, r.stderr
    assert "--slots (slots) applies to the llamacpp backend, not to --backend openai" in r.stderr
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = cli("serve", "--db", "x.sqlite", "--backend", "llamacpp", "--precision", "fp32")
    assert r.returncode == 2 and "--precision (precision) applies to the hf and vllm backends" in r.stderr
    with pytest.raises(
        ConfigError, match="--batch-size .* not to --backend openai.*--threads .* not to --backend openai"
    ):
        backend_config("openai", "m", batch_size=4, threads=2)
    with pytest.raises(ConfigError, match="unknown model settings: bogus"):
        backend_config("hf", "m", bogus=1)
    # unset settings take the chosen backend's defaults; the API key is never among the settings written out
    assert BackendConfig(backend="llamacpp").backend_settings() == {
        "slots": 8,
        "threads": None,
        "context": 2048,
        "grammar": None,
    }
    assert "openai_api_key" not in BackendConfig(backend="openai", openai_api_key="sk-x").backend_settings()
    assert "sk-x" not in repr(BackendConfig(backend="openai", openai_api_key="sk-x"))
