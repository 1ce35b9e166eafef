"""``sqltune train``: supervised fine-tuning with TRL's SFTTrainer and PEFT, one code path.

``method`` switches what is trained: ``full`` (every weight), ``lora`` (PEFT adapters on a
frozen base) or ``qlora`` (the same adapters on a 4-bit NF4 base with double quantization and
bf16 compute, via bitsandbytes; CUDA only, refused up front elsewhere).

What the run folder holds: ``config.yaml`` (resolved), ``manifest.json`` (model and data
hashes, library versions, results), ``data_report.json``, ``checkpoint-*/``, ``logs/``
(tensorboard), ``loss.png``, and ``model/`` (full) or ``adapter/`` (lora, qlora) with the
tokenizer and chat template. Rerunning the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.errors import ConfigError, ModelError
from sqltune.io import package_versions, read_jsonl, sha256_file, weights_sha256, write_json
from sqltune.splits import holdout
from sqltune.train.config import TrainConfig, save_config
from sqltune.train.data import tokenize_file
from sqltune.train.loss import labelled_head_loss, trainer_class


def _device_precision(cfg: TrainConfig) -> tuple[str, str]:
    import torch

    from sqltune.models.load import pick_precision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return device, pick_precision(cfg.precision, device, training=True)


def check_method(cfg: TrainConfig) -> None:
    """Fail before loading anything when the method cannot run here."""
    import torch

    if cfg.method == "qlora":
        if not torch.cuda.is_available():
            raise ConfigError(
                "method: qlora loads the base model in 4-bit NF4 with bitsandbytes, which needs a CUDA GPU; "
                "this machine has none. Use method=lora (same adapters, unquantized base) or run on a GPU."
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("method: qlora needs bitsandbytes: pip install 'sqltune[qlora]'") from None
    if cfg.deepspeed:
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ConfigError("deepspeed: the config names a DeepSpeed file but deepspeed is not installed") from None


def last_checkpoint(run_dir: str | Path) -> str | None:
    cks = [p for p in Path(run_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    if not cks:
        return None
    return str(max(cks, key=lambda p: int(p.name.split("-")[-1])))


def load_model(cfg: TrainConfig, where: str, precision: str) -> Any:
    """The base model: NF4 for qlora; a bf16 frozen base for lora on GPUs (PEFT keeps the adapters
    in fp32); otherwise fp32 master weights, with bf16 compute through autocast."""
    import torch

    from sqltune.models.load import load_causal_lm

    if cfg.method == "qlora":
        return load_causal_lm(where, precision="bf16", load_in_4bit=True, resolve=False)
    base = "bf16" if precision == "bf16" and cfg.method == "lora" and torch.cuda.is_available() else "fp32"
    return load_causal_lm(where, precision=base, resolve=False)


def peft_config(cfg: TrainConfig) -> Any:
    if cfg.method == "full":
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_target,
        task_type="CAUSAL_LM",
        bias="none",
    )


def _tokens_per_second_callback() -> Any:
    """A TrainerCallback adding real (non-pad) tokens/s to the logs that the progress bar prints."""
    from transformers import TrainerCallback

    class TokensPerSecond(TrainerCallback):
        t0 = 0.0

        def on_train_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            self.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):  # type: ignore[no-untyped-def]
            if logs is not None and "num_tokens" in logs:
                logs["tokens_per_second"] = round(logs["num_tokens"] / max(time.perf_counter() - self.t0, 1e-9), 1)

    return TokensPerSecond()


def _time_budget_callback(minutes: float) -> Any:
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        t0 = 0.0

        def on_train_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if time.perf_counter() - self.t0 > minutes * 60:
                control.should_training_stop = True
                control.should_save = True
            return control

    return TimeBudget()


def use_shared_prefix(cfg: TrainConfig, device: str, padding_free: bool) -> bool:
    """Whether batches share their prompt prefix: ``shared_prefix: auto`` turns it on where
    sqltune's own CPU loss runs and nothing else reshapes the batch."""
    if cfg.shared_prefix != "auto":
        return bool(cfg.shared_prefix)
    return (
        device == "cpu"
        and cfg.lm_head_on_labels_only
        and not (cfg.packing or padding_free or cfg.gradient_checkpointing)
    )


def _checkpointing_field(config_cls: Any) -> str:
    """The training-args field for activation checkpointing: its new name where transformers has it."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def common_args(
    cfg: TrainConfig, config_cls: Any, run: Path, precision: str, device: str, report_to: list[str]
) -> dict[str, Any]:
    """The TrainingArguments that SFT and GRPO set alike from a TrainConfig (``config_cls``: TRL's SFTConfig or
    GRPOConfig, for the name its version gives gradient checkpointing)."""
    return {
        "output_dir": str(run),
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler,
        "warmup_steps": cfg.warmup_steps if cfg.warmup_steps else cfg.warmup_ratio,  # < 1: a share of the steps
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "optim": cfg.optim,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        # TRL turns checkpointing on by default; it costs a forward pass, so it is on only when asked
        _checkpointing_field(config_cls): cfg.gradient_checkpointing,
        "logging_steps": cfg.logging_steps,
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "seed": cfg.seed,
        "report_to": report_to or "none",
        "deepspeed": cfg.deepspeed,
        "use_cpu": device == "cpu",
    }


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one fine-tuning run; return the manifest."""
    import datasets
    import torch
    from trl import SFTConfig

    from sqltune.models.load import load_tokenizer
    from sqltune.models.registry import resolve_model

    cfg.validate()
    if cfg.objective != "sft":
        raise ConfigError(f"objective: {cfg.objective}: run it with sqltune.train.run.train ('sqltune train')")
    check_method(cfg)
    device, precision = _device_precision(cfg)
    run = Path(cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "config.yaml")

    where = resolve_model(cfg.model)
    tok = load_tokenizer(where, chat_template=True, resolve=False)
    vocab_before = len(tok)

    train_records = read_jsonl(cfg.train_file)
    eval_records = read_jsonl(cfg.eval_file) if cfg.eval_file else []
    if not eval_records and cfg.val_fraction > 0:
        train_records, eval_records, _ = holdout(train_records, cfg.val_fraction, cfg.seed, cfg.val_split)
    train_ex, train_rep = tokenize_file(cfg.train_file, tok, cfg.max_length, cfg.overlong, train_records)
    eval_ex, eval_rep = (
        tokenize_file(cfg.eval_file or cfg.train_file, tok, cfg.max_length, cfg.overlong, eval_records)
        if eval_records
        else ([], None)
    )
    if not train_ex:
        raise ConfigError(
            f"{cfg.train_file}: no training example fits max_length={cfg.max_length} "
            f"(skipped: {train_rep['skipped']}); raise max_length or use overlong=truncate"
        )
    write_json(run / "data_report.json", {"train": train_rep, "validation": eval_rep})

    padding_free = cfg.padding_free if cfg.padding_free != "auto" else (device == "cuda" or cfg.packing)
    shared_prefix = use_shared_prefix(cfg, device, padding_free)
    keys = [e.pop("prefix_key") for e in train_ex]
    eval_ex.sort(key=lambda e: e["prefix_key"])  # consecutive validation examples share prefixes too
    for e in eval_ex:
        e.pop("prefix_key")
    train_ds = datasets.Dataset.from_list(train_ex)
    eval_ds = datasets.Dataset.from_list(eval_ex) if eval_ex else None
    if cfg.packing:
        from trl.data_utils import pack_dataset

        train_ds = pack_dataset(train_ds, cfg.max_length, strategy="bfd")
        if eval_ds is not None:
            eval_ds = pack_dataset(eval_ds, cfg.max_length, strategy="bfd")

    model = load_model(cfg, where, precision)
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)

    eval_strategy = "no"
    if eval_ds is not None:
        eval_strategy = "steps" if cfg.eval_steps else "epoch"
    report_to = [r for r in cfg.report_to if r != "none"]
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run / "logs"))
    args = SFTConfig(
        **common_args(cfg, SFTConfig, run, precision, device, report_to),
        per_device_eval_batch_size=cfg.batch_size,
        eval_strategy=eval_strategy,
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        padding_free=padding_free,
        train_sampling_strategy="random" if padding_free or shared_prefix else "group_by_length",
        packing=False,  # packed above, on token ids, when asked
        max_length=None,  # lengths are enforced (and reported) above
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
        neftune_noise_alpha=cfg.neftune_noise_alpha,
    )
    # On CUDA, TRL's own fused head already scores only labelled positions.
    extra: dict[str, Any] = {}
    if shared_prefix:
        from sqltune.train.prefix import PrefixCollator

        extra["data_collator"] = PrefixCollator(tok.pad_token_id)
    trainer = trainer_class(
        labelled_head=cfg.lm_head_on_labels_only and device != "cuda",
        shared_prefix_keys=keys if shared_prefix else None,
        lengths=[len(e["input_ids"]) for e in train_ex],
    )(
        model=model,
        args=args,
        **extra,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tok,
        peft_config=peft_config(cfg),
        callbacks=[_tokens_per_second_callback()]
        + ([_time_budget_callback(cfg.max_minutes)] if cfg.max_minutes else []),
    )
    if len(tok) != vocab_before or trainer.model.get_input_embeddings().weight.shape[0] < len(tok):
        raise ModelError("the tokenizer changed during setup; sqltune never adds tokens")
    resume = last_checkpoint(run) if cfg.resume else None
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    minutes = (time.perf_counter() - t0) / 60
    final_eval: dict[str, Any] = {}
    if eval_ds is not None:  # the Trainer may have evaluated at the last step already
        evals = [h for h in trainer.state.log_history if "eval_loss" in h]
        at_end = evals and evals[-1].get("step") == trainer.state.global_step
        final_eval = evals[-1] if at_end else trainer.evaluate()

    target = run / ("model" if cfg.method == "full" else "adapter")
    trainer.save_model(str(target))
    tok.save_pretrained(str(target))
    # the prompt contract travels with the weights: whatever serves them rebuilds the training prompt
    prompts.write_contract(target, prompts.contract_from_records(cfg.train_file))
    history = trainer.state.log_history
    (run / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
    plot = plot_loss(history, run / "loss.png")
    real_tokens = sum(len(e["input_ids"]) for e in train_ex)
    manifest = {
        "kind": "sqltune.train",
        "method": cfg.method,
        "model": cfg.model,
        "model_path": where,
        "model_sha256": weights_sha256(where),
        "train_file": str(Path(cfg.train_file).resolve()),
        "train_sha256": sha256_file(cfg.train_file),
        "eval_file": str(Path(cfg.eval_file).resolve()) if cfg.eval_file else None,
        "device": device,
        "precision": precision,
        "padding_free": padding_free,
        "shared_prefix": shared_prefix,
        "resumed_from": resume,
        "output": str(target),
        "global_steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "eval_loss": final_eval.get("eval_loss"),
        "train_minutes": round(minutes, 2),
        "epoch_tokens": real_tokens,
        "loss_plot": plot,
        "versions": package_versions(
            ("sqltune", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "deepspeed")
        ),
        "config": cfg.to_dict(),
    }
    write_json(run / "manifest.json", manifest)
    del trainer
    if device == "cuda":
        torch.cuda.empty_cache()
    return manifest


def plot_loss(history: list[dict[str, Any]], path: str | Path) -> str | None:
    """Train and validation loss against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    ev = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    if not tr and not ev:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if tr:
        ax.plot(*zip(*tr, strict=False), label="train")
    if ev:
        ax.plot(*zip(*ev, strict=False), marker="o", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


__all__ = ["train", "plot_loss", "last_checkpoint", "check_method", "labelled_head_loss", "use_shared_prefix"]
