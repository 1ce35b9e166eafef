"""File helpers shared by every stage: atomic writes, JSONL, hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from sqltune.errors import DataError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it into place on success.

    A crash or an exception leaves the previous file (if any) untouched and no partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_write(path) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_utf8(path: str | Path) -> str:
    """A text file's content; a missing file or one that is not UTF-8 is a DataError saying so."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save it as UTF-8") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line is a DataError naming the file and line."""
    path = Path(path)
    out = []
    text = read_utf8(path)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno}); fix or remove that line"
            ) from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
        out.append(rec)
    return out


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save it as UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """Python's and each installed package's version (for manifests)."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in packages:
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def weights_sha256(folder: str | Path | None) -> str | None:
    """One SHA-256 over a model folder's weight files (safetensors, else .bin), or None."""
    if not folder or not Path(folder).is_dir():
        return None
    files = sorted(Path(folder).glob("*.safetensors")) or sorted(Path(folder).glob("*.bin"))
    if not files:
        return None
    return sha256_text("".join(f"{f.name}:{sha256_file(f)}" for f in files))


def recover_done(out: Path) -> dict[str, dict[str, Any]]:
    """Records already in an append-only JSONL output, by id, after cutting off a torn last line (left by a crash).

    ``predict`` and ``data cot`` resume from it: a rerun skips these ids and appends the rest."""
    if not out.exists():
        return {}
    data = out.read_bytes()
    done: dict[str, dict[str, Any]] = {}
    good_end = 0
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break  # no newline: torn
        line = data[pos:nl]
        try:
            rec = json.loads(line) if line.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
        if rec is not None:
            if not isinstance(rec, dict) or "id" not in rec:
                line_no = data[:pos].count(b"\n") + 1
                raise DataError(
                    f"{out}: line {line_no} is not a record with an id; pass a new --out or remove the file"
                )
            done[str(rec["id"])] = rec
        good_end = nl + 1
        pos = nl + 1
    if good_end < len(data):
        with open(out, "r+b") as fh:
            fh.truncate(good_end)
    return done


def pip_download(spec: str, dest: Path, *options: str) -> tuple[int, str]:
    """``pip download --no-deps SPEC`` into ``dest`` (the package index the user's pip is set up for,
    mirrors and proxies included); nothing is installed. Returns (exit code, pip's stderr)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", *options]
    proc = subprocess.run([*cmd, "-d", str(dest), spec], capture_output=True, text=True)
    return proc.returncode, proc.stderr
