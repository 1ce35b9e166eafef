"""``sqltune export gguf``: a run or model -> one checked ``.gguf`` file for llama.cpp.

1. **Resolve** what to export: a full-training run's ``model/``, a LoRA/QLoRA run merged first
   (through :func:`sqltune.models.merge.merge`, kept in ``RUN/merged`` for the next export), a
   model folder, a registry name, or a hub id (downloaded where the hub is reachable).
2. **Convert** with llama.cpp's own converter (:mod:`.converter`), unchanged, to f32 / f16 /
   bf16 / q8_0; the smaller types (q4_0, q4_k_m, ...) are then made by llama.cpp's own
   ``llama-quantize`` when it is installed (the converter cannot write them). Provenance goes in
   the file's standard metadata: base model, run, sqltune version.
3. **Check** the file (:mod:`.check`) and write the report beside it (``FILE.gguf.sqltune.json``):
   architecture, chat template, BOS/EOS and pre-tokenizer present; the chat template renders
   the dataset's prompts as the Hugging Face tokenizer does, and they tokenize to the same ids;
   the exported model's greedy answers on a handful of prompts compared with the HF model's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqltune
from sqltune import prompts
from sqltune.errors import ConfigError, ModelError
from sqltune.export import converter
from sqltune.io import read_json, write_json

CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
"""Written by llama.cpp's converter itself."""
QUANTIZE_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k")
"""Written by llama.cpp's llama-quantize from an f16 conversion."""


@dataclass(frozen=True)
class ExportConfig:
    """Settings of ``sqltune export gguf``."""

    model: str
    """A 'sqltune train' run folder (a LoRA run is merged first), a model folder, a registry name or a hub id."""
    out: str
    """The .gguf file to write."""
    type: str = "q8_0"
    """f32 | f16 | bf16 | q8_0 (llama.cpp's converter); q4_0, q4_k_m, ... need llama.cpp's llama-quantize."""
    dataset: str | None = None
    """Prompts for the tokenizer checks (JSONL records); default: the run's training file, else built-in prompts."""
    parity_prompts: int = 100
    """Prompts whose rendering and token ids are compared."""
    greedy_prompts: int = 5
    """Prompts answered greedily by both the exported and the Hugging Face model."""
    max_new_tokens: int = 64
    """Tokens per greedy answer in the check."""
    converter: str | None = None
    """A llama.cpp checkout to convert with instead of the pinned one."""
    check: bool = True
    """Check the exported file (off: convert only)."""

    def validate(self) -> None:
        problems = []
        if self.type not in CONVERTER_TYPES + QUANTIZE_TYPES:
            problems.append(f"type={self.type!r}: choose one of {', '.join(CONVERTER_TYPES + QUANTIZE_TYPES)}")
        if not self.out.endswith(".gguf"):
            problems.append(f"out={self.out!r}: name the file .gguf")
        if self.parity_prompts < 1 or self.greedy_prompts < 0 or self.max_new_tokens < 1:
            problems.append("parity_prompts and max_new_tokens must be at least 1, greedy_prompts at least 0")
        if problems:
            raise ConfigError("invalid export settings: " + "; ".join(problems))


def report_path(out: str | Path) -> Path:
    p = Path(out)
    return p.with_name(p.name + ".sqltune.json")


# --------------------------------------------------------------------------- resolve


def resolve_source(model: str) -> dict[str, Any]:
    """What to convert: ``{"folder", "run", "base", "schema_style", "merged"}``."""
    from sqltune.models.registry import resolve_model

    p = Path(model)
    if p.is_dir() and (p / "manifest.json").is_file() and not (p / "config.json").is_file():
        manifest = read_json(p / "manifest.json")
        base = manifest.get("model") or manifest.get("model_path")
        style = prompts.trained_schema_style(str(p))
        if manifest.get("method") in ("lora", "qlora"):
            merged = p / "merged"
            info = merged / "sqltune_model.json"
            if not (info.is_file() and read_json(info).get("adapter") == str(p / "adapter")):
                from sqltune.models.merge import merge

                merge(p, merged)
            return {"folder": str(merged), "run": p.name, "base": base, "schema_style": style, "merged": True}
        if (p / "model" / "config.json").is_file():
            return {"folder": str(p / "model"), "run": p.name, "base": base, "schema_style": style, "merged": False}
        raise ConfigError(f"{p}: the run has no model/ folder yet; finish it with 'sqltune train' (it resumes)")
    where = resolve_model(model)
    if not Path(where).is_dir():  # a hub id: fetch the files the converter reads
        try:
            from huggingface_hub import snapshot_download

            where = snapshot_download(where, allow_patterns=["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt"])
        except Exception as e:
            raise ModelError(f"{model}: could not fetch it from the hub ({type(e).__name__}: {e})") from None
    card = Path(where) / "sqltune_model.json"
    base = read_json(card).get("hub_id", model) if card.is_file() else model
    style = prompts.trained_schema_style(where)
    return {"folder": str(where), "run": None, "base": base, "schema_style": style, "merged": False}


def _hub_id(base: str | None) -> str | None:
    """The hub id of a base model (a registry name's card says it)."""
    if not base:
        return None
    from sqltune.models.registry import REGISTRY, model_dir

    if base in REGISTRY:
        card = model_dir(base) / "sqltune_model.json"
        return read_json(card).get("hub_id") if card.is_file() else None
    card = Path(base) / "sqltune_model.json"
    if card.is_file():
        return read_json(card).get("hub_id")
    return base if base.count("/") == 1 and not Path(base).exists() else None


def provenance(source: dict[str, Any], out: Path) -> dict[str, Any]:
    """The converter's metadata override: standard ``general.*`` keys every GGUF tool shows."""
    hub = _hub_id(source.get("base"))
    base_name = hub or (Path(source["base"]).name if source.get("base") else None)
    run = source.get("run")
    desc = f"Text-to-SQL model exported by sqltune {sqltune.__version__}"
    if base_name:
        desc += f"; base model {base_name}"
    if run:
        desc += f"; fine-tuned in run {run}" + (" (LoRA merged)" if source.get("merged") else "")
    meta: dict[str, Any] = {
        "general.name": run or out.stem,
        "general.description": desc,
        "general.quantized_by": f"sqltune {sqltune.__version__}",
        "general.tags": ["sqltune", "text-to-sql", f"sqltune-{sqltune.__version__}"],
    }
    if run:
        meta["general.finetune"] = "sqltune"
    if base_name:
        entry: dict[str, Any] = {"name": base_name}
        if hub:
            entry["organization"] = hub.split("/")[0]
            entry["repo_url"] = f"https://huggingface.co/{hub}"
        meta["general.base_models"] = [entry]
    return meta


# --------------------------------------------------------------------------- convert


def _quantizer() -> str | None:
    return shutil.which("llama-quantize")


def convert(folder: str, out: Path, outtype: str, meta: dict[str, Any], converter_dir: Path) -> dict[str, Any]:
    """Run the converter (then llama-quantize for the small types); write ``out`` atomically."""
    try:
        import sentencepiece  # noqa: F401  (llama.cpp's converter imports it for every tokenizer)
    except ImportError:
        raise ModelError("llama.cpp's converter needs sentencepiece: pip install 'sqltune[gguf]'") from None
    quantize = outtype in QUANTIZE_TYPES
    tool = _quantizer() if quantize else None
    if quantize and tool is None:
        raise ModelError(
            f"--type {outtype} is written by llama.cpp's llama-quantize, which is not on PATH here; install "
            f"llama.cpp (its build has bin/llama-quantize) or choose one of {', '.join(CONVERTER_TYPES)}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="sqltune-export-", dir=out.parent) as tmp:
        meta_file = Path(tmp) / "metadata.json"
        meta_file.write_text(json.dumps(meta, indent=2))
        log = out.with_name(out.name + ".convert.log")
        first = Path(tmp) / "f16.gguf" if quantize else partial
        t0 = time.perf_counter()
        proc = converter.run_converter(
            converter_dir, Path(folder), first, "f16" if quantize else outtype, meta_file, log
        )
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not first.is_file():
            tail = log.read_text(errors="replace").strip().splitlines()[-8:]
            raise ModelError(
                f"llama.cpp's converter failed on {folder} (exit {proc.returncode}); its log: {log}\n  "
                + "\n  ".join(tail)
            )
        if tool is not None:
            t1 = time.perf_counter()
            q = subprocess.run([tool, str(first), str(partial), outtype.upper()], capture_output=True, text=True)
            if q.returncode != 0:
                raise ModelError(f"llama-quantize failed ({q.stderr.strip()[-400:]})")
            seconds += time.perf_counter() - t1
    partial.replace(out)
    return {"convert_seconds": round(seconds, 2), "bytes": out.stat().st_size, "log": str(log)}


def export_gguf(cfg: ExportConfig, progress: Any = None) -> dict[str, Any]:
    """Resolve, convert and check; return (and write beside the file) the report."""
    cfg.validate()
    say = progress or (lambda msg: None)
    out = Path(cfg.out)
    t0 = time.perf_counter()
    say("resolving the model")
    source = resolve_source(cfg.model)
    folder_conv = converter.find_converter(cfg.converter)
    if folder_conv is None:
        say(f"fetching llama.cpp's converter ({converter.SDIST}=={converter.VERSION}, once)")
        folder_conv = converter.fetch_converter()
    meta = provenance(source, out)
    say(f"converting {source['folder']} to {cfg.type}")
    conv = convert(source["folder"], out, cfg.type, meta, folder_conv)
    report: dict[str, Any] = {
        "kind": "sqltune.export.gguf",
        "sqltune": sqltune.__version__,
        "file": str(out),
        "type": cfg.type,
        "source": source,
        "schema_style": source.get("schema_style"),
        "prompt": prompts.read_contract(source["folder"]),
        "metadata": meta,
        "converter": converter.converter_info(folder_conv),
        "config": asdict(cfg),
        **conv,
    }
    write_json(report_path(out), report)
    if cfg.check:
        from sqltune.export.check import check_export

        say("checking the file: metadata, template and token parity, greedy answers")
        report["checks"] = check_export(out, source, cfg)
        report["ok"] = report["checks"]["ok"]
    report["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(report_path(out), report)
    return report
