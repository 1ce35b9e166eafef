"""Fit the learned column ranker of ``schema_filter=auto`` (src/sqltune/linking/ranker.json) on Spider train:
every question's columns, labelled by whether its gold query uses them (sqlglot-resolved), described by
:func:`sqltune.linking.learned.features`; a logistic regression (scikit-learn, standardised features) for words
alone and one with the packaged embedder. Dev sets are never read here: benchmarks/schema_linking.py scores them.

    python benchmarks/linker_fit.py [--spider ../shared/data/spider] [--out src/sqltune/linking/ranker.json]

Needs scikit-learn (it comes with ``pip install "sqltune[embed]"``, through sentence-transformers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from sqltune.data.spider import load_spider
from sqltune.db.schema import introspect
from sqltune.linking.learned import FEATURES, features
from sqltune.linking.link import rank
from sqltune.linking.metrics import gold_parts
from sqltune.linking.values import ValueIndex
from sqltune.models.embed import MINILM

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spider", default=str(ROOT.parent / "shared" / "data" / "spider"))
    ap.add_argument("--out", default=str(ROOT / "src" / "sqltune" / "linking" / "ranker.json"))
    args = ap.parse_args()
    train, _, _ = load_spider(args.spider, "train")
    train = [e for e in train if Path(e.db_path).is_file()]
    schemas, indexes = {}, {}
    weights: dict[str, object] = {
        "fitted_on": f"Spider train ({len(train)} questions), gold columns by sqlglot",
        "command": "python benchmarks/linker_fit.py",
    }
    for name, embedder in (("words", ""), ("embedder", MINILM)):
        t0 = time.perf_counter()
        xs, ys = [], []
        for ex in train:
            if ex.db_path not in schemas:
                s = introspect(ex.db_path, db_id=ex.db_id)
                schemas[ex.db_path] = s.without_descriptions() if s.has_descriptions else s
                indexes[ex.db_path] = ValueIndex.open(ex.db_path, schemas[ex.db_path])
            s = schemas[ex.db_path]
            ranked = rank(s, ex.question, ex.evidence, indexes[ex.db_path].lookup(ex.question), embedder)
            _, gold, _ = gold_parts(ex.sql, s)
            xs.extend(features(s, ex.question, ranked["parts"]))
            ys.extend(1 if (t.name.lower(), c.name.lower()) in gold else 0 for t in s.tables for c in t.columns)
        x, y = np.array(xs), np.array(ys)
        scaler = StandardScaler().fit(x)
        model = LogisticRegression(C=1.0, max_iter=3000).fit(scaler.transform(x), y)
        acc = float(model.score(scaler.transform(x), y))
        weights[name] = {
            "embedder": embedder,
            "features": list(FEATURES),
            "mean": [round(float(v), 6) for v in scaler.mean_],
            "scale": [round(float(v), 6) for v in scaler.scale_],
            "coef": [round(float(v), 6) for v in model.coef_[0]],
            "bias": round(float(model.intercept_[0]), 6),
            "columns": len(y),
            "needed_share": round(float(y.mean()), 4),
            "train_accuracy": round(acc, 4),
        }
        print(
            f"{name}: {len(y)} columns of {len(train)} questions, {100 * y.mean():.1f}% needed, "
            f"train accuracy {100 * acc:.2f}%, {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        for f, c in sorted(zip(FEATURES, model.coef_[0], strict=True), key=lambda fc: -abs(fc[1]))[:8]:
            print(f"  {f:24s} {c:+.3f}")
    Path(args.out).write_text(json.dumps(weights, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
