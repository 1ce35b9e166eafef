"""llama.cpp's own Hugging Face -> GGUF converter, obtained once, pinned by hash, cached.

The converter (``convert_hf_to_gguf.py`` with its ``conversion/`` package and the matching
``gguf-py``) is not published on the package index by itself; it ships inside the source
distribution of ``llama-cpp-python``, which vendors a whole llama.cpp. sqltune fetches that
sdist with ``pip download`` (the package index the user already trusts, proxies and mirrors
included; nothing is compiled or installed), checks its SHA-256 against the pin below, and
extracts only the converter into ``$SQLTUNE_HOME/converters/``. The converter then always runs
with its own ``gguf-py`` (the one it was released with), in a subprocess.

Why not a package requirement: ``llama-cpp-python`` compiles llama.cpp on install (minutes,
a C++ toolchain), which export does not need; the ``gguf`` package on the index is only the
reader/writer, without the converter. Why not a git checkout: a download outside the package
index is what fails behind corporate proxies, and a moving branch is not a pin.

A user with their own llama.cpp checkout passes ``--converter DIR`` (or sets
``SQLTUNE_LLAMACPP_DIR``); the folder must hold ``convert_hf_to_gguf.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from sqltune.errors import ModelError
from sqltune.io import pip_download
from sqltune.models.registry import cache_dir

SDIST = "llama-cpp-python"
VERSION = "0.3.36"
SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
_ROOT = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
_MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
SCRIPT = "convert_hf_to_gguf.py"


def converter_home() -> Path:
    return cache_dir().parent / "converters" / f"{SDIST}-{VERSION}"


def find_converter(explicit: str | Path | None = None) -> Path | None:
    """The converter folder to use: ``explicit``, ``$SQLTUNE_LLAMACPP_DIR``, or the cached pin (if fetched)."""
    for d in (explicit, os.environ.get("SQLTUNE_LLAMACPP_DIR")):
        if d:
            p = Path(d).expanduser()
            if not (p / SCRIPT).is_file():
                raise ModelError(f"{p}: no {SCRIPT} there; pass a llama.cpp checkout (the folder with {SCRIPT})")
            return p
    home = converter_home()
    return home if (home / "sqltune_converter.json").is_file() else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_converter(sdist: str | Path | None = None) -> Path:
    """Download (or take ``sdist``), verify and extract the pinned converter; return its folder."""
    home = converter_home()
    if (home / "sqltune_converter.json").is_file():
        return home
    with tempfile.TemporaryDirectory(prefix="sqltune-converter-") as tmp:
        work = Path(tmp)
        if sdist is None:
            code, stderr = pip_download(f"{SDIST}=={VERSION}", work, "--no-binary", ":all:")
            found = list(work.glob("*.tar.gz"))
            if code != 0 or not found:
                raise ModelError(
                    f"could not download {SDIST}=={VERSION} (the source of llama.cpp's converter) from the package "
                    f"index ({stderr.strip()[-300:]}); download it elsewhere and run "
                    f"'sqltune export converter --from FILE.tar.gz', or pass --converter LLAMA_CPP_DIR"
                )
            archive = found[0]
        else:
            archive = Path(sdist)
        digest = _sha256(archive)
        if digest != SHA256:
            raise ModelError(f"{archive}: SHA-256 {digest} is not the pinned {SDIST}=={VERSION} ({SHA256})")
        partial = home.with_name(home.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            for m in tar.getmembers():
                if not m.name.startswith(_ROOT) or not (m.isfile() or m.isdir()):
                    continue
                rel = m.name[len(_ROOT) :]
                if not rel.startswith(_MEMBERS) or ".." in Path(rel).parts:
                    continue
                target = partial / rel
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(target, "wb") as dst:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, dst)
        if not (partial / SCRIPT).is_file():
            raise ModelError(f"{archive}: no {_ROOT}{SCRIPT} inside; the pin is wrong")
        info = {"source": f"{SDIST}=={VERSION}", "sha256": SHA256, "members": list(_MEMBERS)}
        (partial / "sqltune_converter.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(home, ignore_errors=True)
        partial.rename(home)
    return home


def converter_info(folder: Path) -> dict[str, str]:
    marker = folder / "sqltune_converter.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    return {"source": str(folder)}


def run_converter(
    folder: Path, model_dir: Path, out: Path, outtype: str, metadata: Path, log: Path
) -> subprocess.CompletedProcess:
    """Run llama.cpp's converter unchanged, with its own gguf-py, in a subprocess (its log goes to ``log``)."""
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # the converter then puts its own gguf-py first on sys.path
    folder, model_dir, out, metadata = (Path(p).resolve() for p in (folder, model_dir, out, metadata))
    cmd = [sys.executable, str(folder / SCRIPT), str(model_dir), "--outfile", str(out), "--outtype", outtype]
    cmd += ["--metadata", str(metadata)]  # absolute paths: it runs in its own folder
    with open(log, "w", encoding="utf-8") as fh:
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(folder))
