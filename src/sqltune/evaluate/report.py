"""Evaluation outputs: summary.json, results.jsonl, report.md, chart.png; and run comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqltune.errors import DataError
from sqltune.evaluate.metrics import METRICS
from sqltune.io import read_json, read_jsonl, write_json, write_jsonl


def write_outputs(out_dir: str | Path, summary: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "results.jsonl", records)
    write_json(out / "summary.json", summary)
    (out / "report.md").write_text(markdown_report(summary, records), encoding="utf-8")
    chart(summary, out / "chart.png")
    return {
        k: str(out / f)
        for k, f in (
            ("summary", "summary.json"),
            ("results", "results.jsonl"),
            ("report", "report.md"),
            ("chart", "chart.png"),
        )
    }


def _table(title: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"| {title} | n | correct | EX |", "| --- | --- | --- | --- |"]
    for k, v in groups.items():
        lines.append(f"| {k} | {v['n']} | {v['correct']} | {100 * v['ex']:.1f}% |")
    return lines


def markdown_report(summary: dict[str, Any], records: list[dict[str, Any]], max_misses: int = 50) -> str:
    s = summary
    lines = [
        "# Evaluation report",
        "",
        f"**EX {100 * s['ex']:.2f}%** ({s['correct']} / {s['n']}), comparison mode `{s['mode']}`.",
        ", ".join(
            f"{name} {100 * s[name]:.1f}%"
            for name in ("normalized_match", "spider_em", "exact_match", "token_match", "soft_f1")
            if s.get(name) is not None
        )
        + ".",
        "",
        "What each metric means:",
        "",
        *[f"- `{name}`: {METRICS[name]}" for name in s.get("metrics", []) if name in METRICS],
    ]
    if s.get("spider_em_n") is not None:
        lines.append(
            f"- Spider EM scored {s['spider_em_n']} pairs; the official script could score "
            f"{s['spider_em_official']} of them the same way (it cannot parse `<>`, aliases without AS, IN lists, ...)."
        )
    if "ves" in s:
        lines.append(f"VES {s['ves']:.2f}.")
    if "pass_at_k" in s:
        lines.append(
            "pass@k: "
            + ", ".join(f"pass@{k} {100 * v:.1f}%" for k, v in s["pass_at_k"].items())
            + f"; majority-vote EX {100 * s['majority_ex']:.1f}%."
        )
    if s.get("schema_linking"):
        k = s["schema_linking"]
        pct = {
            n: "n/a" if k[n] is None else f"{100 * k[n]:.1f}%"
            for n in ("column_recall", "table_recall", "value_recall")
        }
        lines.append(
            f"Schema linking ({k['settings']['mode']}): the gold queries' columns kept {pct['column_recall']}, "
            f"tables {pct['table_recall']}, values {pct['value_recall']}; every gold column kept for "
            f"{100 * k['all_columns_kept']:.1f}% of the questions; {100 * (k['kept_columns_share'] or 0):.1f}% of "
            f"the schema's columns shown"
            + (f"; {k['prompt_tokens_mean']} prompt tokens on average." if k.get("prompt_tokens_mean") else ".")
        )
    if s["excluded"]:
        lines.append(
            "Excluded from the denominator (gold problems, not model errors): "
            + ", ".join(f"{k}: {v}" for k, v in s["excluded"].items())
            + "."
        )
    lines += [
        "",
        "## By difficulty",
        "",
        *_table("difficulty", s["by_difficulty"]),
        "",
        "## By database",
        "",
        *_table("database", s["by_database"]),
        "",
        "## Misses by error type",
        "",
    ]
    if s["errors"]:
        lines += ["| error type | count |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in s["errors"].items()]]
    else:
        lines.append("No misses.")
    misses = [r for r in records if r["counted"] and not r["correct"]]
    if misses:
        lines += ["", f"## Misses (first {min(max_misses, len(misses))} of {len(misses)})", ""]
        for r in misses[:max_misses]:
            lines += [
                f"- `{r['id']}` ({r['db_id']}, {r['error_type']}): {r['question']}",
                f"  - gold: `{r['gold_sql']}`",
                f"  - pred: `{r['pred_sql']}`",
            ]
            if r.get("error"):
                lines.append(f"  - error: {r['error']}")
    if s["gold_problems"]:
        lines += ["", "## Gold problems", ""]
        for g in s["gold_problems"][:100]:
            lines.append(f"- `{g['id']}` ({g['db_id']}): {g['status']}: {g['error']}")
    return "\n".join(lines) + "\n"


def chart(summary: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    diff = summary["by_difficulty"]
    names = list(diff)
    a.bar(names, [100 * diff[k]["ex"] for k in names], color="#4C72B0")
    for i, k in enumerate(names):
        a.text(i, 100 * diff[k]["ex"] + 1, f"{100 * diff[k]['ex']:.0f}%\n(n={diff[k]['n']})", ha="center", fontsize=8)
    a.set_ylim(0, 115)
    a.set_ylabel("execution accuracy (%)")
    a.set_title(f"EX by difficulty (overall {100 * summary['ex']:.1f}%)")
    errs = summary["errors"]
    b.barh(list(errs) or ["no misses"], list(errs.values()) or [0], color="#C44E52")
    b.set_title("misses by error type")
    b.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_runs(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Questions whose verdict flipped between two eval output folders."""
    recs = []
    for run in (run_a, run_b):
        p = Path(run) / "results.jsonl"
        if not p.is_file():
            raise DataError(f"{run}: no results.jsonl here; pass folders written by 'sqltune eval --out'")
        recs.append({r["id"]: r for r in read_jsonl(p)})
    a, b = recs
    common = [i for i in a if i in b]
    fixed = [i for i in common if not a[i]["correct"] and b[i]["correct"]]
    broken = [i for i in common if a[i]["correct"] and not b[i]["correct"]]
    sa, sb = (read_json(Path(r) / "summary.json") for r in (run_a, run_b))
    scored = [i for i in common if a[i].get("counted", True) and b[i].get("counted", True)]
    return {
        "a": str(run_a),
        "b": str(run_b),
        "ex_a": sa["ex"],  # each run's own EX, on its own questions
        "ex_b": sb["ex"],
        "n_a": sa.get("n"),
        "n_b": sb.get("n"),
        "ex_a_common": sum(1 for i in scored if a[i]["correct"]) / len(scored) if scored else 0.0,
        "ex_b_common": sum(1 for i in scored if b[i]["correct"]) / len(scored) if scored else 0.0,
        "common": len(common),
        "only_in_a": len([i for i in a if i not in b]),
        "only_in_b": len([i for i in b if i not in a]),
        "fixed": [
            {
                "id": i,
                "question": b[i]["question"],
                "pred_a": a[i]["pred_sql"],
                "pred_b": b[i]["pred_sql"],
                "error_a": a[i]["error_type"],
            }
            for i in fixed
        ],
        "broken": [
            {
                "id": i,
                "question": a[i]["question"],
                "pred_a": a[i]["pred_sql"],
                "pred_b": b[i]["pred_sql"],
                "error_b": b[i]["error_type"],
            }
            for i in broken
        ],
    }
