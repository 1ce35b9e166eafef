"""GGUF export with llama.cpp's own converter, the checks, and the llamacpp backend on the result.

The model is tiny and random but its tokenizer is SmolLM2's real one (llama.cpp's converter
only takes known tokenizers); the converter is the pinned one ('sqltune export converter',
which CI runs before the tests).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

import pytest
from typer.testing import CliRunner

import sqltune
from conftest import make_school_dataset
from sqltune.cli import app
from sqltune.errors import ConfigError, ModelError
from sqltune.export import converter
from sqltune.export.check import read_metadata
from sqltune.export.gguf import ExportConfig, export_gguf, report_path
from sqltune.models.llamacpp import cpu_features
from sqltune.predict.run import PredictConfig, manifest_path, predict

pytest.importorskip("xllamacpp")


@pytest.fixture(scope="module")
def f32_export(tmp_path_factory, gguf_test_model, gguf_converter):
    out = tmp_path_factory.mktemp("export") / "tiny.f32.gguf"
    report = export_gguf(ExportConfig(model=str(gguf_test_model), out=str(out), type="f32", greedy_prompts=4))
    return out, report


def test_f32_export_passes_every_check_with_provenance(f32_export):
    out, report = f32_export
    assert report["ok"] and json.loads(report_path(out).read_text())["ok"]
    c = report["checks"]
    assert c["metadata"]["architecture"] == "llama" and c["metadata"]["pre_tokenizer"] == "smollm"
    assert (c["metadata"]["bos_token_id"], c["metadata"]["eos_token_id"]) == (1, 2)
    p = c["parity"]
    assert p["prompts"] == 24 and p["template_identical"] == 24 and p["tokens_identical"] == 24
    # f32 computes what the Hugging Face model computes: every greedy answer is the same text
    g = c["greedy"]
    assert g["prompts"] == 4 and g["text_identical"] == 4 and g["common_prefix"] == 1.0
    assert len(g["examples"][0]["hf"]) > 20  # a real answer, not an empty one that trivially agrees
    meta = read_metadata(out)
    assert meta["general.quantized_by"] == f"sqltune {sqltune.__version__}"
    assert "sqltune" in meta["general.tags"] and meta["general.file_type"] == 0
    assert report["converter"]["source"] == f"{converter.SDIST}=={converter.VERSION}"


def test_llamacpp_backend_predicts_what_the_hf_backend_predicts(f32_export, tmp_path, school_db, gguf_test_model):
    out, _ = f32_export
    data = make_school_dataset(tmp_path / "school.jsonl", school_db, n=6)
    base = dict(dataset=str(data), max_new_tokens=12)
    ll_cfg = PredictConfig(out=str(tmp_path / "ll.jsonl"), model=str(out), backend="llamacpp", slots=3, **base)
    s = predict(ll_cfg, progress=False)
    hf_cfg = PredictConfig(
        out=str(tmp_path / "hf.jsonl"), model=str(gguf_test_model), precision="fp32", batch_size=3, **base
    )
    predict(hf_cfg, progress=False)
    ll = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "ll.jsonl").read_text().splitlines()}
    hf = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "hf.jsonl").read_text().splitlines()}
    assert s["generated"] == 6 and set(ll) == set(hf)
    assert all(r["status"] == "no_sql" and r["completion_tokens"] == 12 for r in ll.values())  # random text
    assert [ll[i]["raw"].strip() for i in sorted(ll)] == [hf[i]["raw"].strip() for i in sorted(hf)]
    manifest = json.loads(manifest_path(tmp_path / "ll.jsonl").read_text())
    assert manifest["backend"]["backend"] == "llamacpp" and manifest["backend"]["slots"] == 3
    assert "AVX" in manifest["backend"]["cpu_features"].split() or "NEON" in manifest["backend"]["cpu_features"]


def test_cpu_features_name_what_the_build_uses():
    class Wheel:
        @staticmethod
        def get_system_info():
            return "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 0 | OPENMP = 1 | "

    assert cpu_features(Wheel) == "SSE3 AVX AVX2 OPENMP"
    assert cpu_features(object()) == "?"  # a wheel too old to say


def test_sql_grammar_forces_a_select(f32_export):
    from sqltune.models.backends import GenParams
    from sqltune.models.llamacpp import LlamaCppBackend

    out, _ = f32_export
    msgs = [[{"role": "system", "content": "You write SQL."}, {"role": "user", "content": "How many singers?"}]]
    free = LlamaCppBackend(str(out), slots=1).generate(msgs, GenParams(max_new_tokens=10))[0][0].text
    forced = LlamaCppBackend(str(out), slots=1, grammar="sql").generate(msgs, GenParams(max_new_tokens=10))
    text = forced[0][0].text
    assert not free.lstrip().upper().startswith(("SELECT", "WITH"))  # the random model would not on its own
    assert text.upper().startswith(("SELECT", "WITH")) and ";" not in text[:-1]


def test_q8_0_by_the_cli_is_smaller_and_checked(tmp_path, gguf_test_model, gguf_converter, f32_export):
    out = tmp_path / "tiny.q8_0.gguf"
    r = CliRunner().invoke(app, ["export", "gguf", str(gguf_test_model), "--out", str(out), "--greedy-prompts", "2"])
    assert r.exit_code == 0, r.output
    assert "tokens 24/24" in r.output.replace("\n", " ")
    assert read_metadata(out)["general.file_type"] == 7  # MOSTLY_Q8_0
    assert out.stat().st_size < 0.5 * f32_export[0].stat().st_size


def test_served_model_reads_the_schema_style_beside_the_gguf(tmp_path):
    from sqltune.serve.ask import served_model

    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    report_path(f).write_text(json.dumps({"schema_style": "compact"}))
    assert served_model(str(f)) == (str(f), "compact")


def test_bad_exports_are_clear_errors(tmp_path, gguf_test_model, gguf_converter, monkeypatch):
    with pytest.raises(ConfigError, match="name the file .gguf"):
        export_gguf(ExportConfig(model=str(gguf_test_model), out=str(tmp_path / "x.bin")))
    with pytest.raises(ConfigError, match="type='q3'"):
        export_gguf(ExportConfig(model=str(gguf_test_model), out=str(tmp_path / "x.gguf"), type="q3"))
    monkeypatch.setattr("sqltune.export.gguf.shutil.which", lambda name: None)
    with pytest.raises(ModelError, match="llama-quantize"):
        export_gguf(ExportConfig(model=str(gguf_test_model), out=str(tmp_path / "x.gguf"), type="q4_0"))
    with pytest.raises(ModelError, match="no convert_hf_to_gguf.py"):
        export_gguf(ExportConfig(model=str(gguf_test_model), out=str(tmp_path / "x.gguf"), converter=str(tmp_path)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        export_gguf(ExportConfig(model=str(empty), out=str(tmp_path / "y.gguf")))
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"architectures": ["NoSuchForCausalLM"], "model_type": "x"}))
    with pytest.raises(ModelError, match="converter failed.*its log"):
        export_gguf(ExportConfig(model=str(unknown), out=str(tmp_path / "y.gguf")))
    assert not (tmp_path / "y.gguf").exists()
    cmd = [sys.executable, "-m", "sqltune", "export", "gguf", str(unknown), "--out", str(tmp_path / "y.gguf")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "error:" in r.stderr and "not supported" in r.stderr and "Traceback" not in r.stderr


def test_the_converter_download_is_checked_against_its_pin(tmp_path, monkeypatch):
    monkeypatch.setattr(converter, "converter_home", lambda: tmp_path / "conv")
    fake = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    with tarfile.open(fake, "w:gz") as tar:
        data = b"print('not the converter')"
        info = tarfile.TarInfo(converter._ROOT + converter.SCRIPT)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ModelError, match="is not the pinned"):
        converter.fetch_converter(fake)
    assert not (tmp_path / "conv").exists()
    assert converter.find_converter() is None


def test_ask_cli_on_the_llamacpp_backend(f32_export, school_db):
    out, _ = f32_export
    cmd = [sys.executable, "-m", "sqltune", "ask", "how many teacher are there", "--db", str(school_db)]
    cmd += ["--model", str(out), "--backend", "llamacpp", "--json", "--max-new-tokens", "8", "--repairs", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode in (0, 3), r.stderr[-2000:]  # an answer, or "I don't know" (a random model)
    a = json.loads(r.stdout)
    assert a["question"] == "how many teacher are there" and len(a["attempts"]) == 1
    assert a["answered"] == (r.returncode == 0) and a["attempts"][0]["raw"]


@pytest.mark.slow
def test_the_default_model_exports_to_q8_0_and_predicts(tmp_path, school_db, gguf_converter):
    """The real SmolLM2-135M-Instruct (pulled once: 'sqltune models pull smollm2-135m')."""
    from sqltune.models.registry import is_pulled

    if not is_pulled("smollm2-135m"):
        pytest.skip("the default model is not pulled: sqltune models pull smollm2-135m")
    f16 = tmp_path / "smollm2.f16.gguf"
    r = export_gguf(ExportConfig(model="smollm2-135m", out=str(f16), type="f16", greedy_prompts=8))
    c = r["checks"]
    assert r["ok"] and c["parity"]["tokens_identical"] == c["parity"]["prompts"] == 24
    assert c["greedy"]["text_identical"] == 8  # f16 computes what the HF model computes
    meta = read_metadata(f16)
    assert meta["llama.rope.freq_base"] == 100000.0 and meta["llama.block_count"] == 30
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in meta["general.description"]
    out = tmp_path / "smollm2.q8_0.gguf"
    q = export_gguf(ExportConfig(model="smollm2-135m", out=str(out), type="q8_0", greedy_prompts=8))
    assert q["ok"] and q["checks"]["parity"]["ok"]  # greedy answers may move on the base model: reported
    data = make_school_dataset(tmp_path / "school.jsonl", school_db, n=8)
    s = predict(PredictConfig(dataset=str(data), out=str(tmp_path / "p.jsonl"), model=str(out), backend="llamacpp"))
    assert s["generated"] == 8


def test_llamacpp_streams_the_same_text_it_generates(f32_export):
    from sqltune.models.backends import GenParams
    from sqltune.models.llamacpp import LlamaCppBackend

    out, _ = f32_export
    b = LlamaCppBackend(str(out), slots=1)
    msgs = [{"role": "user", "content": "How many singers are there?"}]
    params = GenParams(max_new_tokens=12)
    pieces = list(b.stream(msgs, params))
    assert len(pieces) >= 6 and "".join(pieces) == b.generate([msgs], params)[0][0].text


def test_relative_paths_work_from_any_folder(tmp_path, gguf_test_model, gguf_converter, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").symlink_to(gguf_test_model)
    r = export_gguf(ExportConfig(model="m", out="sub/tiny.gguf", type="f16", check=False))
    assert (tmp_path / "sub" / "tiny.gguf").stat().st_size == r["bytes"] > 0


def test_a_lora_run_is_merged_first_then_exported(tmp_path, school_db, gguf_test_model, gguf_converter):
    from sqltune.train.config import load_config
    from sqltune.train.sft import train

    data = make_school_dataset(tmp_path / "train.jsonl", school_db, n=8)
    run = tmp_path / "lora"
    over = {"model": str(gguf_test_model), "train_file": str(data), "output_dir": str(run), "method": "lora"}
    over.update(lora_r=4, lora_alpha=8, batch_size=4, max_steps=2, save_steps=100, report_to="[]", precision="fp32")
    over.update(learning_rate=0.05)
    train(load_config(None, [f"{k}={v}" for k, v in over.items()]))
    r = export_gguf(ExportConfig(model=str(run), out=str(tmp_path / "lora.f32.gguf"), type="f32", greedy_prompts=2))
    assert r["source"]["merged"] and r["source"]["folder"] == str(run / "merged") and r["ok"]
    assert r["schema_style"] == "compact" and r["checks"]["parity"]["prompts_from"] == str(data.resolve())
    assert "fine-tuned in run lora (LoRA merged)" in read_metadata(tmp_path / "lora.f32.gguf")["general.description"]
    mtime = (run / "merged" / "model.safetensors").stat().st_mtime
    export_gguf(ExportConfig(model=str(run), out=str(tmp_path / "again.gguf"), type="f16", check=False))
    assert (run / "merged" / "model.safetensors").stat().st_mtime == mtime  # the merge is reused


@pytest.mark.parametrize("continuous", [True, False])
def test_serve_on_the_llamacpp_backend(f32_export, school_db, tmp_path, continuous):
    """Continuous: each question on a thread of its own, its requests in llama.cpp's slots while
    another question's are (generate calls overlap); by round: one generate call at a time."""
    import concurrent.futures as cf
    import itertools
    import threading
    import time

    import httpx

    from sqltune.models.llamacpp import LlamaCppBackend
    from sqltune.serve.app import ServeConfig, create_app
    from sqltune.serve.ask import AskConfig, Database
    from test_serve import Server

    backend = LlamaCppBackend(str(f32_export[0]), slots=2)
    calls, lock = [], threading.Lock()
    generate = backend.generate

    def timed(prompts, params):
        t0 = time.perf_counter()
        out = generate(prompts, params)
        with lock:
            calls.append((t0, time.perf_counter()))
        return out

    backend.generate = timed
    cfg = ServeConfig(log_dir=str(tmp_path / "logs"), continuous=continuous, batch_wait=0.0)
    app = create_app(backend, "tiny", [Database(school_db)], AskConfig(max_new_tokens=8), "compact", cfg)
    assert type(app.state.batcher).__name__ == ("Asker" if continuous else "Batcher")
    srv = Server(app)
    try:
        qs = ["How many students?", "List every course.", "Who teaches math?", "Name the oldest student."]
        with httpx.Client(base_url=srv.url, timeout=120) as c, cf.ThreadPoolExecutor(4) as pool:
            rs = list(pool.map(lambda q: c.post("/v1/ask", json={"question": q, "db": "school"}), qs))
    finally:
        srv.stop()
    assert [r.status_code for r in rs] == [200] * 4
    assert all(r.json()["answered"] is False for r in rs)  # the tiny model writes no SQL: an honest "I don't know"
    calls.sort()
    overlap = any(b[0] < a[1] for a, b in itertools.pairwise(calls))  # sorted by start: any overlap is adjacent
    assert overlap is continuous
