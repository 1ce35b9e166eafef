"""The quickstart end to end with the real default model (slow: a few minutes on 2 CPU cores).

It runs the real steps with a short fine-tune (3 steps, each logged) on 8 test questions, and checks the
contract: summary.json with ex_zero_shot, ex_fine_tuned in 0..1 and minutes, and the plots.
The full run's figures come from `sqltune quickstart --out runs/quickstart` (see the README).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_quickstart(out, *args: str) -> subprocess.CompletedProcess:
    """``sqltune quickstart --out OUT ARGS`` in a subprocess; fails the test on a non-zero exit."""
    r = subprocess.run(
        [sys.executable, "-m", "sqltune", "quickstart", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quickstart_contract(tmp_path):
    out = tmp_path / "qs"
    r = run_quickstart(out, "--limit", "8", "max_steps=3", "logging_steps=1")
    s = json.loads((out / "summary.json").read_text())
    assert 0 <= s["ex_zero_shot"] <= 1 and 0 <= s["ex_fine_tuned"] <= 1 and s["minutes"] > 0
    assert s["test_questions"] == 8
    assert (out / "accuracy.png").stat().st_size > 1000 and (out / "train" / "loss.png").stat().st_size > 1000
    assert "zero-shot EX" in r.stdout and "fine-tuned EX" in r.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quickstart_on_spider(tmp_path, spider_dir):
    out = tmp_path / "qs"
    run_quickstart(
        out, "--benchmark", "spider", "--data-dir", str(spider_dir), "--limit", "4", "max_steps=1", "logging_steps=1"
    )
    s = json.loads((out / "summary.json").read_text())
    assert s["benchmark"] == "spider" and s["test_questions"] == 4
    assert (out / "data" / "spider_train.jsonl").stat().st_size > 0


def test_speed_check_says_up_front_when_this_machine_is_slower(monkeypatch):
    """The quickstart probes the CPU's matmul speed and scales the reference minutes by it; a slow
    machine gets a warning with the minutes to expect, before anything long starts."""
    import torch

    from sqltune import quickstart
    from sqltune.models import load

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(load, "cpu_supports_bf16", lambda: True)
    ref = quickstart.REFERENCE["gflops"]["bf16"]
    for speed, warned in ((ref, False), (ref / 3, True)):
        monkeypatch.setattr(load, "matmul_gflops", lambda precision, s=speed: s)
        lines: list[str] = []
        check = quickstart.speed_check("demo", cot=False, log=lines.append)
        expected = quickstart.REFERENCE["minutes"] * ref / speed
        assert check["expected_minutes"] == round(expected, 1)
        assert f"expect about {expected:.0f} min here" in lines[0]
        assert any("warning: this machine is" in x for x in lines) is warned
    # another job than the demo's: the probe is reported, no minutes are promised
    lines = []
    check = quickstart.speed_check("spider", cot=False, log=lines.append)
    assert "expected_minutes" not in check and "GFLOP/s" in lines[0]


def test_matmul_probe_measures_something_plausible():
    from sqltune.models.load import matmul_gflops

    g = matmul_gflops("fp32", n=256, rounds=2, reps=4)
    assert 0.1 < g < 1e6
