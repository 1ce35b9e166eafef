"""``objective: grpo``: reinforcement learning with the execution reward, on TRL's ``GRPOTrainer``.

The same run as SFT (:mod:`sqltune.train.sft`): one run folder with ``config.yaml``, checkpoints (a rerun
resumes), ``manifest.json``, ``log_history.json``, the model or adapter with its prompt contract, and plots
(loss and each reward component). It starts from any model, an SFT run's ``model/`` included, on the data
stage's records: the prompt is the record's own system and user turns (the prompt contract's), the gold SQL
and the database travel as dataset columns to the rewards (:mod:`sqltune.train.rewards`: the judge, never a
second executor).

Prompt selection (``select_prompts``): before training, each prompt's group of ``num_generations`` answers
is sampled with the start model and rewarded; prompts whose answers are all right or all wrong carry no
gradient (every advantage is zero) and are dropped. ``selection.json`` reports how many were kept.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.errors import ConfigError
from sqltune.io import package_versions, read_jsonl, sha256_file, weights_sha256, write_json
from sqltune.judge import Judge
from sqltune.train.config import TrainConfig, save_config
from sqltune.train.rewards import SqlRewards
from sqltune.train.sft import (
    _device_precision,
    _time_budget_callback,
    check_method,
    common_args,
    last_checkpoint,
    load_model,
)
from sqltune.train.sft import peft_config as make_peft_config


def grpo_rows(records: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """TRL's conversational prompts with the gold query and database beside each."""
    rows, problems = [], []
    for i, r in enumerate(records, 1):
        missing = [k for k in ("sql", "db_path") if not r.get(k)]
        if missing:
            problems.append(
                f"{path}:{i}: no {' or '.join(missing)} (GRPO's reward runs the gold query on the database)"
            )
            continue
        rows.append(
            {
                "prompt": prompts.messages_from_record(r),
                "sql": r["sql"],
                "db_path": r["db_path"],
                "table_names": json.dumps(r.get("table_names") or {}),  # text: one column type for every row
            }
        )
    if problems:
        raise ConfigError("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    return rows


def select_prompts(
    rows: list[dict[str, Any]], model: Any, tok: Any, rewards: SqlRewards, cfg: TrainConfig
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows whose sampled group's rewards differ (see the module docstring), and the report."""
    from sqltune.models.backends import HFBackend
    from sqltune.models.generation import GenParams

    backend = HFBackend(str(cfg.model), model_obj=model, tokenizer=tok, batch_size=cfg.batch_size)
    params = GenParams(
        max_new_tokens=cfg.max_completion_length,
        temperature=cfg.temperature,
        num_samples=cfg.num_generations,
        sample_temperature=cfg.temperature,
        seed=cfg.seed,
    )
    t0 = time.perf_counter()
    kept, all_right, all_wrong = [], 0, 0
    for start in range(0, len(rows), 32):
        chunk = rows[start : start + 32]
        outs = backend.generate([r["prompt"] for r in chunk], params)
        for r, comps in zip(chunk, outs, strict=True):
            n = len(comps)
            vals = rewards.total([c.text for c in comps], [r["sql"]] * n, [r["db_path"]] * n, [r["table_names"]] * n)
            if max(vals) == min(vals):
                if max(vals) >= sum(rewards.weights()):
                    all_right += 1
                else:
                    all_wrong += 1
            else:
                kept.append(r)
    model.train()
    return kept, {
        "prompts": len(rows),
        "kept": len(kept),
        "all_right": all_right,
        "all_same_not_right": all_wrong,
        "samples_per_prompt": cfg.num_generations,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _reward_log_callback(path: Path) -> Any:
    from transformers import TrainerCallback

    class RewardLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):  # type: ignore[no-untyped-def]
            if logs and any(k.startswith("reward") for k in logs):
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return RewardLog()


def plot_rewards(history: list[dict[str, Any]], path: str | Path) -> str | None:
    """The loss and every reward component against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    keys = ["reward"] + keys
    series = {k: [(h["step"], h[k]) for h in history if k in h and "step" in h] for k in keys}
    loss = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    if not any(series.values()) and not loss:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for k, pts in series.items():
        if pts:
            a1.plot(*zip(*pts, strict=False), label=k.removeprefix("rewards/").removesuffix("/mean"))
    a1.set_xlabel("optimizer step")
    a1.set_ylabel("mean reward")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8)
    if loss:
        a2.plot(*zip(*loss, strict=False))
    a2.set_xlabel("optimizer step")
    a2.set_ylabel("GRPO loss")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def train_grpo(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one GRPO run; return the manifest."""
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    from sqltune.models.load import load_tokenizer
    from sqltune.models.registry import resolve_model

    cfg.validate()
    check_method(cfg)
    device, precision = _device_precision(cfg)
    if cfg.use_vllm and device != "cuda":
        raise ConfigError("use_vllm: vLLM generates on a CUDA GPU; this machine has none (drop use_vllm)")
    run = Path(cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "config.yaml")
    where = resolve_model(cfg.model)
    tok = load_tokenizer(where, chat_template=True, resolve=False)
    tok.padding_side = "left"
    rows = grpo_rows(read_jsonl(cfg.train_file), cfg.train_file)
    model = load_model(cfg, where, precision)
    with Judge(workers=2, timeout=cfg.reward_timeout) as judge:
        rewards = SqlRewards(
            judge, cfg.reward, timeout=cfg.reward_timeout, cot=prompts.contract_from_records(cfg.train_file)["cot"]
        )
        resume = last_checkpoint(run) if cfg.resume else None
        selection_file = run / "selection.json"
        if cfg.select_prompts and selection_file.is_file() and resume:
            selection = json.loads(selection_file.read_text())
            keep = set(selection.pop("kept_ids"))
            rows = [r for i, r in enumerate(rows) if i in keep]
        elif cfg.select_prompts:
            model.eval()
            ids = {id(r): i for i, r in enumerate(rows)}
            rows, selection = select_prompts(rows, model, tok, rewards, cfg)
            write_json(selection_file, {**selection, "kept_ids": [ids[id(r)] for r in rows]})
        else:
            selection = {"prompts": len(rows), "kept": len(rows), "selected": False}
        if not rows:
            raise ConfigError(
                f"{cfg.train_file}: no prompt left after select_prompts ({selection}): every group was all right or "
                "all wrong under the start model; start from a stronger model, raise num_generations or temperature, "
                "or set select_prompts: false"
            )
        report_to = [r for r in cfg.report_to if r != "none"]
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run / "logs"))
        args = GRPOConfig(
            **common_args(cfg, GRPOConfig, run, precision, device, report_to),
            num_generations=cfg.num_generations,
            max_completion_length=cfg.max_completion_length,
            temperature=cfg.temperature,
            beta=cfg.beta,
            loss_type=cfg.loss_type,
            reward_weights=rewards.weights(),
            use_vllm=cfg.use_vllm,
            vllm_mode="colocate",
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=rewards.functions(),
            args=args,
            train_dataset=datasets.Dataset.from_list(rows),
            processing_class=tok,
            peft_config=make_peft_config(cfg),
            callbacks=[_reward_log_callback(run / "rewards.jsonl")]
            + ([_time_budget_callback(cfg.max_minutes)] if cfg.max_minutes else []),
        )
        t0 = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=resume)
        minutes = (time.perf_counter() - t0) / 60
        judged = rewards.judged
    target = run / ("model" if cfg.method == "full" else "adapter")
    trainer.save_model(str(target))
    tok.padding_side = "right"
    tok.save_pretrained(str(target))
    prompts.write_contract(target, prompts.contract_from_records(cfg.train_file))
    history = trainer.state.log_history
    (run / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
    plot = plot_rewards(history, run / "rewards.png")
    manifest = {
        "kind": "sqltune.train",
        "objective": "grpo",
        "method": cfg.method,
        "model": cfg.model,
        "model_path": where,
        "model_sha256": weights_sha256(where),
        "train_file": str(Path(cfg.train_file).resolve()),
        "train_sha256": sha256_file(cfg.train_file),
        "device": device,
        "precision": precision,
        "resumed_from": resume,
        "output": str(target),
        "global_steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "train_minutes": round(minutes, 2),
        "selection": selection,
        "reward": {"weights": rewards.weights_by_name, "answers_judged": judged},
        "loss_plot": plot,
        "versions": package_versions(("sqltune", "torch", "transformers", "trl", "peft", "accelerate", "datasets")),
        "config": cfg.to_dict(),
    }
    write_json(run / "manifest.json", manifest)
    return manifest
