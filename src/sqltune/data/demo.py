"""The embedded demo: a small shop database that sqltune generates deterministically, and
hundreds of verified question/SQL pairs over it, split into train and test.

The database (``shop.sqlite``) has categories, suppliers, products, customers, employees,
orders and order_items, filled from a seeded random generator, so the same seed gives the
same bytes of data on every machine. The questions come from templates, each with several
phrasings, filled with values read from the database; together they cover selection,
filters, joins, aggregates, GROUP BY / HAVING, ORDER BY / LIMIT, nested queries and set
operations. Every SQL is executed (it must run and, unless the template says otherwise,
return rows). The split is made per template, so every kind of question appears in both
parts, and no test question appears verbatim in train.
"""

from __future__ import annotations

import functools
import random
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sqltune import prompts
from sqltune.data.build import BuildConfig, build, report_path
from sqltune.data.example import Example
from sqltune.data.phrasing import add_forms
from sqltune.db.schema import introspect
from sqltune.io import read_jsonl, write_json
from sqltune.sqlutil import sql_features

DB_NAME = "shop"
FILES = Path(__file__).parent / "demo_files"
"""schema.sql (the tables), world.yaml (the word lists rows are drawn from), templates.yaml,
handwritten.jsonl (questions written by hand, no template's phrasing: the human split)."""
HANDWRITTEN = FILES / "handwritten.jsonl"


@functools.cache
def _world() -> dict[str, Any]:
    return yaml.safe_load((FILES / "world.yaml").read_text(encoding="utf-8"))


def _ddl() -> str:
    return (FILES / "schema.sql").read_text(encoding="utf-8")


def _date(rng: random.Random, y0: int, y1: int) -> str:
    return f"{rng.randint(y0, y1)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def create_database(path: str | Path, seed: int = 0) -> Path:
    """Write the demo shop database to ``path`` (replacing it). Same seed, same rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    rng = random.Random(seed)
    w = _world()
    _CATEGORIES, _CATEGORY_PRICE, _SUPPLIERS = w["categories"], w["category_price"], w["suppliers"]
    _CITIES, _FIRST, _LAST, _SEGMENTS = w["cities"], w["first_names"], w["last_names"], w["segments"]
    _DEPARTMENTS, _STATUSES = w["departments"], w["statuses"]
    conn = sqlite3.connect(tmp)
    conn.executescript(_ddl())
    cats = list(_CATEGORIES)
    conn.executemany("INSERT INTO categories VALUES (?, ?)", [(i + 1, c) for i, c in enumerate(cats)])
    conn.executemany("INSERT INTO suppliers VALUES (?, ?, ?)", [(i + 1, n, c) for i, (n, c) in enumerate(_SUPPLIERS)])
    products: list[tuple[Any, ...]] = []
    for ci, cat in enumerate(cats):
        lo, hi = _CATEGORY_PRICE[cat]
        for name in _CATEGORIES[cat]:
            pid = len(products) + 1
            products.append(
                (
                    pid,
                    name,
                    ci + 1,
                    rng.randint(1, len(_SUPPLIERS)),
                    round(rng.uniform(lo, hi), 2),
                    rng.randint(0, 400),
                    1 if rng.random() < 0.12 else 0,
                )
            )
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?)", products)
    names = set()
    customers: list[tuple[Any, ...]] = []
    while len(customers) < 120:
        f, last = rng.choice(_FIRST), rng.choice(_LAST)
        if (f, last) in names:
            continue
        names.add((f, last))
        city, country = rng.choice(_CITIES)
        customers.append(
            (
                len(customers) + 1,
                f,
                last,
                f"{f.lower()}.{last.lower()}@example.com",
                city,
                country,
                rng.choice(_SEGMENTS),
                _date(rng, 2019, 2024),
            )
        )
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", customers)
    employees: list[tuple[Any, ...]] = []
    enames = set()
    for dept, titles in _DEPARTMENTS.items():
        count = 6 if dept == "Sales" else 2
        head = None
        for k in range(count):
            while True:
                f, last = rng.choice(_FIRST), rng.choice(_LAST)
                if (f, last) not in enames and (f, last) not in names:
                    break
            enames.add((f, last))
            eid = len(employees) + 1
            title = titles[-1] if (k == 0 and len(titles) > 1) else titles[0]
            salary = rng.randrange(38000, 125000, 500) if k == 0 else rng.randrange(32000, 90000, 500)
            employees.append((eid, f, last, title, dept, _date(rng, 2012, 2024), salary, head))
            if k == 0:
                head = eid
    conn.executemany("INSERT INTO employees VALUES (?, ?, ?, ?, ?, ?, ?, ?)", employees)
    sales = [e[0] for e in employees if e[4] == "Sales"]
    buyers = [c[0] for c in customers][:-14]  # the last customers never order
    sold = [p for p in products][:-1]
    rng.shuffle(sold)
    sold = sold[:-6]  # a few products are never ordered
    orders: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    for oid in range(1, 501):
        status = rng.choices(_STATUSES, weights=[60, 20, 12, 8])[0]
        orders.append((oid, rng.choice(buyers), rng.choice(sales), _date(rng, 2021, 2024), status))
        for p in rng.sample(sold, rng.randint(1, 4)):
            items.append((len(items) + 1, oid, p[0], rng.randint(1, 10), p[4], rng.choice([0.0, 0.0, 0.05, 0.1])))
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?, ?)", items)
    conn.commit()
    conn.close()
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Template:
    key: str
    difficulty: str
    phrasings: tuple[str, ...]
    sql: str
    params: str  # name of a parameter source, see _param_sources
    allow_empty: bool = False


def _q(conn: sqlite3.Connection, sql: str) -> list[Any]:
    return [r[0] if len(r) == 1 else r for r in conn.execute(sql).fetchall()]


def _param_sources(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    cats = _q(conn, "SELECT name FROM categories ORDER BY category_id")
    cities = _q(conn, "SELECT DISTINCT city FROM customers ORDER BY city")
    countries = _q(conn, "SELECT DISTINCT country FROM customers ORDER BY country")
    sup_countries = _q(conn, "SELECT DISTINCT country FROM suppliers ORDER BY country")
    suppliers = _q(conn, "SELECT name FROM suppliers ORDER BY supplier_id")
    products = _q(conn, "SELECT name FROM products ORDER BY product_id")
    customers = _q(
        conn,
        "SELECT first_name, last_name FROM customers WHERE customer_id IN (SELECT customer_id FROM orders) ORDER BY customer_id",
    )
    sales = _q(conn, "SELECT first_name, last_name FROM employees WHERE department = 'Sales' ORDER BY employee_id")
    depts = _q(conn, "SELECT DISTINCT department FROM employees ORDER BY department")
    titles = _q(conn, "SELECT DISTINCT title FROM employees ORDER BY title")
    order_ids = _q(conn, "SELECT order_id FROM orders WHERE order_id % 23 = 0 ORDER BY order_id")
    return {
        "none": [{}],
        "category": [{"category": c} for c in cats],
        "city": [{"city": c} for c in cities],
        "country": [{"country": c} for c in countries],
        "supplier_country": [{"country": c} for c in sup_countries],
        "supplier": [{"supplier": s} for s in suppliers],
        "product": [{"product": p} for p in products[::2]],
        "customer": [{"first": f, "last": la} for f, la in customers[::4]],
        "sales_rep": [{"first": f, "last": la} for f, la in sales],
        "department": [{"department": d} for d in depts],
        "title": [{"title": t} for t in titles],
        "segment": [{"segment": s} for s in _world()["segments"]],
        "status": [{"status": s} for s in _world()["statuses"]],
        "year": [{"year": y} for y in (2021, 2022, 2023, 2024)],
        "hire_year": [{"year": y} for y in range(2013, 2024)],
        "price": [{"price": p} for p in (5, 10, 15, 20, 30, 50, 75, 100, 150, 200)],
        "stock": [{"n": n} for n in (10, 20, 25, 40, 50, 75, 100)],
        "topk": [{"k": k} for k in (2, 3, 4, 5, 6, 8, 10)],
        "count_threshold": [{"n": n} for n in (3, 5, 8, 10, 15)],
        "order": [{"order_id": o} for o in order_ids],
        "salary": [{"salary": s} for s in (40000, 45000, 50000, 55000, 60000, 65000, 70000, 80000, 90000)],
        "category_price": [
            {"category": c, "price": p} for c in cats for p in (5, 20, 50) if p < _world()["category_price"][c][1]
        ],
        "city_segment": [{"city": c, "segment": s} for c in cities[::2] for s in _world()["segments"]],
        "category_topk": [{"category": c, "k": k} for c in cats for k in (2, 3, 4)],
        "group_by": [
            {"col": "country", "what": "country"},
            {"col": "city", "what": "city"},
            {"col": "segment", "what": "segment"},
        ],
        "category_supplier": [{"category": c, "supplier": s} for c, s in zip(cats, suppliers, strict=False)],
        "signup_year": [{"year": y} for y in range(2019, 2025)],
        "customer_status": [
            {"first": f, "last": la, "status": st} for f, la in customers[1::9] for st in ("delivered", "shipped")
        ],
        "managed": [
            {"first": f, "last": la}
            for f, la in _q(
                conn, "SELECT first_name, last_name FROM employees WHERE manager_id IS NOT NULL ORDER BY employee_id"
            )
        ],
        "supplier_threshold": [{"n": n} for n in (3, 4, 5, 6, 7, 8)],
        "city_status": [{"city": c, "status": "cancelled"} for c in cities],
    }


def load_templates() -> tuple[Template, ...]:
    """The templates of ``demo_files/templates.yaml``."""
    data = yaml.safe_load((FILES / "templates.yaml").read_text(encoding="utf-8"))
    return tuple(
        Template(t["key"], t["difficulty"], tuple(t["phrasings"]), t["sql"], t["params"], t.get("allow_empty", False))
        for t in data
    )


TEMPLATES = load_templates()


def _sql_str(v: Any) -> Any:
    return v.replace("'", "''") if isinstance(v, str) else v


def generate_examples(
    db_path: str | Path, seed: int = 0, test_fraction: float = 0.2, max_per_template: int = 16
) -> tuple[list[Example], list[Example]]:
    """Fill every template, verify each SQL by execution, dedupe, split per template."""
    conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
    sources = _param_sources(conn)
    rng = random.Random(seed + 1)
    seen: set[str] = set()
    train: list[Example] = []
    test: list[Example] = []
    for tpl in TEMPLATES:
        params = sources[tpl.params]
        instances: list[tuple[str, str]] = []
        rounds = len(tpl.phrasings) if tpl.params == "none" else 1
        for r in range(rounds):
            for i, p in enumerate(params):
                phr = tpl.phrasings[(i + r) % len(tpl.phrasings)]
                question = phr.format(**p)
                sql = tpl.sql.format(**{k: _sql_str(v) for k, v in p.items()})
                if question in seen:
                    continue
                rows = conn.execute(sql).fetchall()  # raises on a broken template: a bug, not data
                if not rows and not tpl.allow_empty:
                    continue
                seen.add(question)
                instances.append((question, sql))
        rng.shuffle(instances)
        instances = instances[:max_per_template]
        n_test = max(1, round(len(instances) * test_fraction)) if len(instances) >= 3 else 0
        for j, (question, sql) in enumerate(instances):
            ex = Example(
                id="",
                db_id=DB_NAME,
                db_path=str(Path(db_path).resolve()),
                question=question,
                evidence="",
                sql=sql,
                difficulty=tpl.difficulty,
                source="demo",
            )
            (test if j < n_test else train).append(ex)
    conn.close()
    train = [Example(**{**e.to_dict(), "id": f"demo-train-{i}"}) for i, e in enumerate(train)]
    test = [Example(**{**e.to_dict(), "id": f"demo-test-{i}"}) for i, e in enumerate(test)]
    return train, test


def human_examples(db_path: str | Path) -> list[Example]:
    """The questions written by hand about the shop (``handwritten.jsonl``), in ordinary words and
    phrasings no template uses, most of them in query shapes no template has; labelled with the
    Spider hardness of their gold SQL. They measure what a user typing questions gets; the test
    split, paraphrases of the training templates, measures recall."""
    from sqltune.judge.hardness import spider_hardness

    return [
        Example(
            id=r["id"],
            db_id=DB_NAME,
            db_path=str(Path(db_path).resolve()),
            question=r["question"],
            evidence="",
            sql=r["sql"],
            difficulty=spider_hardness(r["sql"]),
            source="demo-human",
        )
        for r in read_jsonl(HANDWRITTEN)
    ]


def _card(out_dir: Path, reports: dict[str, dict[str, Any]], schema_style: str, db_path: Path) -> str:
    train, test, human = (read_jsonl(out_dir / f"{s}.jsonl") for s in ("train", "test", "human"))
    feats: Counter[str] = Counter()
    for r in train + test:
        feats.update(sql_features(r["sql"]))
    diff = {
        s: Counter(r["difficulty"] for r in recs) for s, recs in (("train", train), ("test", test), ("human", human))
    }
    schema_text = prompts.render_schema(introspect(db_path, db_id=DB_NAME), schema_style)
    lines = [
        "# sqltune demo dataset: the `shop` database",
        "",
        f"{len(train) + len(test)} verified question/SQL pairs over `{db_path.name}` "
        f"({len(TEMPLATES)} templates, several phrasings each): **{len(train)} train**, **{len(test)} test**; "
        "no test question appears verbatim in train. The test split paraphrases the training templates: it "
        f"measures **recall**. **{len(human)} human** questions (`human.jsonl`), written by hand in ordinary "
        "words, in phrasings no template has and mostly in query shapes none has, measure **skill**: what a "
        "user typing questions gets.",
        "",
        "| split | easy | medium | hard | extra | total |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in ("train", "test", "human"):
        d = diff[s]
        lines.append(f"| {s} | {d['easy']} | {d['medium']} | {d['hard']} | {d['extra']} | {sum(d.values())} |")
    lines += ["", "SQL features (examples using each): " + ", ".join(f"{k} {v}" for k, v in sorted(feats.items())), ""]
    for s, rep in reports.items():
        t = rep.get("prompt_tokens")
        tok = (
            f"; prompt tokens ({rep.get('tokenizer')}): median {t['median']}, p90 {t['p90']}, max {t['max']}"
            if t
            else ""
        )
        lines.append(f"- `{s}.jsonl`: {rep['written']} records, skipped {sum(rep['skipped'].values())}{tok}")
    lines += ["", f"Schema (`{schema_style}` style):", "", "```", schema_text, "```", "", "Examples:", ""]
    for r in test[:3]:
        lines += [f"- Q: {r['question']}", f"  SQL: `{r['sql']}`"]
    return "\n".join(lines) + "\n"


def build_demo(
    out_dir: str | Path,
    schema: str = "compact",
    fmt: str = "chat",
    seed: int = 0,
    tokenizer: str | None = None,
    forms: int = 0,
    **link: Any,
) -> dict[str, Any]:
    """Create ``out_dir/shop.sqlite``, ``train.jsonl``, ``test.jsonl`` (template paraphrases: recall),
    ``human.jsonl`` (questions written by hand: skill), their reports, and ``card.md``; ``forms``: see add_forms;
    ``link``: schema-linking options of :class:`sqltune.linking.link.SchemaFilterConfig` (``schema_categories``,
    ``schema_values``, ...), the same for every split."""
    out_dir = Path(out_dir)
    db_path = create_database(out_dir / f"{DB_NAME}.sqlite", seed=seed)
    train, test = generate_examples(db_path, seed=seed)
    human = human_examples(db_path)
    train = add_forms(train, forms, seed, [e.question for e in (*test, *human)])
    reports = {}
    counter = None
    if tokenizer:
        from sqltune.models.load import TokenCounter, load_tokenizer

        counter = TokenCounter(load_tokenizer(tokenizer), tokenizer)
    for split, exs in (("train", train), ("test", test), ("human", human)):
        cfg = BuildConfig(
            benchmark="pairs",
            data_dir=str(out_dir),
            split=split,
            out=str(out_dir / f"{split}.jsonl"),
            format=fmt,
            schema=schema,
            tokenizer=tokenizer,
            seed=seed,
            **link,
        )
        reports[split] = build(cfg, examples=exs, counter=counter)
    card = _card(out_dir, reports, schema, db_path)
    (out_dir / "card.md").write_text(card)
    result = {
        "database": str(db_path),
        "train": str(out_dir / "train.jsonl"),
        "test": str(out_dir / "test.jsonl"),
        "n_train": reports["train"]["written"],
        "n_test": reports["test"]["written"],
        "human": str(out_dir / "human.jsonl"),
        "n_human": reports["human"]["written"],
        "reports": {s: str(report_path(out_dir / f"{s}.jsonl")) for s in reports},
        "card": str(out_dir / "card.md"),
    }
    write_json(out_dir / "demo.json", result)
    return result
