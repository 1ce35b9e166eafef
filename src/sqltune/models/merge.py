"""``sqltune merge``: a LoRA/QLoRA run's adapter + its base model -> one standalone model folder.

The folder has the merged weights (safetensors), the tokenizer and the chat template, so
``sqltune predict``, vLLM and llama.cpp's converter load it like any Hugging Face model. The
merge is checked, not assumed: every adapted weight must differ from the base afterwards
(a merge that silently exported the unmerged base model fails here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.errors import ConfigError, ModelError
from sqltune.io import read_json


def merge(run_dir: str | Path, out_dir: str | Path, precision: str = "fp32") -> dict[str, Any]:
    import torch
    from peft import PeftModel

    from sqltune.models.load import load_causal_lm, load_tokenizer

    run = Path(run_dir)
    manifest_file = run / "manifest.json"
    if not manifest_file.exists():
        raise ConfigError(f"{run}: no manifest.json; pass the folder of a finished 'sqltune train' run")
    manifest = read_json(manifest_file)
    method = manifest.get("method")
    if method not in ("lora", "qlora"):
        raise ConfigError(
            f"{run}: this run used method={method}, which trains the whole model; there is no adapter to merge. "
            f"Its model is already standalone: {manifest.get('output')}"
        )
    adapter = run / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise ModelError(f"{adapter}: no adapter_config.json; the run did not finish (rerun 'sqltune train' to resume)")
    base_path = manifest["model_path"]
    base = load_causal_lm(base_path, precision=precision, resolve=False)
    before = {k: v.detach().clone() for k, v in base.state_dict().items()}
    model = PeftModel.from_pretrained(base, str(adapter))
    adapted = [n for n, _ in model.named_modules() if hasattr(_, "lora_A") and n]
    merged = model.merge_and_unload()
    after = merged.state_dict()
    changed = [k for k in after if k in before and not torch.equal(after[k], before[k])]
    if adapted and not changed:
        raise ModelError(
            f"merging {adapter} into {base_path} changed no weight; refusing to export what would be the base model"
        )
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tok = load_tokenizer(str(adapter) if (adapter / "tokenizer_config.json").exists() else base_path, resolve=False)
    tok.save_pretrained(tmp)
    info = {
        "kind": "sqltune.merge",
        "base": base_path,
        "adapter": str(adapter),
        "run": str(run),
        "out": str(out),
        "changed_tensors": len(changed),
        "adapted_modules": len(adapted),
    }
    contract = prompts.read_contract(adapter)
    if contract is not None:
        info["prompt"] = contract  # the merged model serves the prompts the adapter was trained on
    (tmp / "sqltune_model.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return info
