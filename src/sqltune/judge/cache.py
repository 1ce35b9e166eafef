"""A persistent cache of gold query results, keyed by database content hash + SQL + row cap.

Lives in ``$SQLTUNE_HOME/cache/gold_results.sqlite``. A database's content hash (SHA-256 of
the file) is itself remembered by path, size and modification time, so a warm run hashes
nothing and executes no gold query.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
from pathlib import Path
from typing import Any

from sqltune.io import sha256_file

FORMAT = 2  # bump when the cached entry changes shape


def default_cache_path() -> Path:
    return Path(os.environ.get("SQLTUNE_HOME", Path.home() / ".cache" / "sqltune")) / "cache" / "gold_results.sqlite"


class GoldCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value BLOB)")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS db_hash (path TEXT, size INTEGER, mtime_ns INTEGER, sha256 TEXT, PRIMARY KEY (path, size, mtime_ns))"
        )
        self._hashes: dict[str, str] = {}

    def db_hash(self, db_path: str) -> str:
        if db_path in self._hashes:
            return self._hashes[db_path]
        st = os.stat(db_path)
        real = str(Path(db_path).resolve())
        row = self.conn.execute(
            "SELECT sha256 FROM db_hash WHERE path=? AND size=? AND mtime_ns=?", (real, st.st_size, st.st_mtime_ns)
        ).fetchone()
        if row:
            digest = str(row[0])
        else:
            digest = sha256_file(db_path)
            self.conn.execute(
                "INSERT OR REPLACE INTO db_hash VALUES (?, ?, ?, ?)", (real, st.st_size, st.st_mtime_ns, digest)
            )
            self.conn.commit()
        self._hashes[db_path] = digest
        return digest

    @staticmethod
    def key(db_hash: str, sql: str, max_rows: int | None, strip_distinct: bool, analysis: bool = True) -> str:
        raw = f"v{FORMAT}\x00{db_hash}\x00{sql}\x00{max_rows}\x00{int(strip_distinct)}\x00{int(analysis)}"
        return hashlib.sha256(raw.encode("utf-8", errors="surrogatepass")).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, value FROM results WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in self.conn.execute(q, chunk):
                out[k] = pickle.loads(v)
        return out

    def put_many(self, items: dict[str, Any]) -> None:
        """Store entries; a ``bytes`` value is taken as already pickled."""
        if items:
            self.conn.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?)",
                [(k, v if isinstance(v, bytes) else pickle.dumps(v, protocol=5)) for k, v in items.items()],
            )
            self.conn.commit()

    def close(self) -> None:
        self.conn.close()
