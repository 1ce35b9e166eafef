"""A generic skill set sqltune makes itself: small databases of varied domains, and verified pairs over them.

A model fine-tuned on one database's questions learns that database's phrasings and query shapes;
mixed with pairs over many other schemas it keeps reading the schema and the question. Spider
train gives that mix where it is at hand (``quickstart --mix DIR``); this module gives it with no
download: :func:`create_databases` writes one SQLite file per domain of
``generic_files/domains.yaml`` (a library, a school, a hospital, flights, music, ... with keys,
categories, numbers, dates and flags, named in the styles real schemas use), filled from a seeded
generator, so the same seed gives the same bytes; :func:`generic_pairs` synthesizes verified pairs
over them with :func:`sqltune.data.synth.synthesize` (every pair executed, no two with one result)
and builds them with the given prompt settings, ready to mix into a train file.
"""

from __future__ import annotations

import functools
import random
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from sqltune.errors import ConfigError

DOMAINS_FILE = Path(__file__).parent / "generic_files" / "domains.yaml"


@functools.cache
def _spec() -> dict[str, Any]:
    return dict(yaml.safe_load(DOMAINS_FILE.read_text(encoding="utf-8")))


def domains() -> list[str]:
    """The domains there are, one database each."""
    return [d["domain"] for d in _spec()["domains"]]


def _sql_type(kind: str) -> str:
    return {"id": "INTEGER PRIMARY KEY", "ref": "INTEGER", "int": "INTEGER", "real": "REAL", "flag": "INTEGER"}.get(
        kind, "TEXT"
    )


def _value(col: dict[str, Any], row: int, rng: random.Random, names: dict[str, list[str]], used: set[Any]) -> Any:
    kind = col["kind"]
    if kind == "id":
        return row + 1
    if kind == "label":
        values = col["values"]
        free = [v for v in values if v not in used]
        v = rng.choice(free) if free else f"{rng.choice(values)} {row + 1}"
        used.add(v)
        return v
    if kind == "choice":
        return rng.choices(col["values"], weights=col.get("weights"))[0]
    if kind == "first":
        return rng.choice(names["first"])
    if kind == "last":
        return rng.choice(names["last"])
    if kind == "person":
        return f"{rng.choice(names['first'])} {rng.choice(names['last'])}"
    if kind == "int":
        lo, hi = col["range"]
        return rng.randint(lo, hi)
    if kind == "real":
        lo, hi = col["range"]
        return round(rng.uniform(lo, hi), 2)
    if kind == "date":
        y0, y1 = col["range"]
        return f"{rng.randint(y0, y1)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "flag":
        return 1 if rng.random() < col["p"] else 0
    raise ConfigError(f"{DOMAINS_FILE}: column {col['name']!r} has kind {kind!r}: use one the file's header lists")


def create_database(domain: str, path: str | Path, seed: int = 0) -> Path:
    """Write ``domain``'s database to ``path`` (replacing it). Same seed, same rows."""
    spec = next((d for d in _spec()["domains"] if d["domain"] == domain), None)
    if spec is None:
        raise ConfigError(f"no generated domain {domain!r}: choose from {', '.join(domains())}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    rng = random.Random(f"{seed}:{domain}")
    rows_of = {t["name"]: t["rows"] for t in spec["tables"]}
    key_of = {t["name"]: next((c["name"] for c in t["columns"] if c["kind"] == "id"), None) for t in spec["tables"]}
    for t in spec["tables"]:
        for c in t["columns"]:
            if c["kind"] == "ref" and key_of.get(c["table"]) is None:
                raise ConfigError(
                    f"{DOMAINS_FILE}: column {c['name']!r} of {t['name']!r} refers to {c['table']!r}, "
                    "which is not a table of the domain with an id column: name one that is"
                )
    conn = sqlite3.connect(tmp)
    for t in spec["tables"]:
        cols = []
        for c in t["columns"]:
            cols.append(f'"{c["name"]}" {_sql_type(c["kind"])}')
        keys = [
            f'FOREIGN KEY ("{c["name"]}") REFERENCES "{c["table"]}" ("{key_of[c["table"]]}")'
            for c in t["columns"]
            if c["kind"] == "ref"
        ]
        conn.execute(f'CREATE TABLE "{t["name"]}" ({", ".join(cols + keys)})')
        used: dict[str, set[Any]] = {c["name"]: set() for c in t["columns"]}
        rows = []
        for i in range(t["rows"]):
            row = []
            for c in t["columns"]:
                if c["kind"] == "ref":
                    row.append(None if rng.random() < c.get("null", 0.0) else rng.randint(1, rows_of[c["table"]]))
                else:
                    row.append(_value(c, i, rng, _spec()["names"], used[c["name"]]))
            rows.append(tuple(row))
        marks = ", ".join("?" * len(t["columns"]))
        conn.executemany(f'INSERT INTO "{t["name"]}" VALUES ({marks})', rows)
    conn.commit()
    conn.close()
    tmp.replace(path)
    return path


def create_databases(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """One SQLite file per domain under ``out_dir`` (``library.sqlite``, ``school.sqlite``, ...)."""
    return [create_database(d, Path(out_dir) / f"{d}.sqlite", seed) for d in domains()]


def generic_pairs(
    out_dir: str | Path,
    per_database: int = 60,
    seed: int = 0,
    log: Any = print,
    **build: Any,
) -> Path:
    """Databases of every domain under ``out_dir``, ``per_database`` verified pairs over each
    (``pairs.jsonl``, its report beside it), built into ``generic.jsonl`` with ``build``'s settings of
    :class:`sqltune.data.build.BuildConfig` (schema style, format, tokenizer, prompt limit); returns it."""
    from sqltune.data.build import BuildConfig
    from sqltune.data.build import build as build_file
    from sqltune.data.synth import SynthConfig, synthesize

    out = Path(out_dir)
    built = out / "generic.jsonl"
    if built.exists():
        return built
    dbs = create_databases(out / "databases", seed)
    pairs = out / "pairs.jsonl"
    r = synthesize(SynthConfig(db=[str(p) for p in dbs], out=str(pairs), n=per_database, seed=seed))
    log(f"    synthesized {r['written']} verified pairs over {len(dbs)} generated databases ({', '.join(domains())})")
    build_file(BuildConfig(benchmark="pairs", data_dir=str(pairs), split="", out=str(built), seed=seed, **build))
    return built
