"""One training run = one YAML file of flat keys (the fields below), validated up front.

``load_config(path, overrides)`` reads the YAML, applies ``key=value`` overrides (values parsed
as YAML, so ``epochs=2``, ``lora_target=[q_proj,v_proj]`` and ``eval_file=null`` work), and
reports every problem at once: unknown keys with the valid ones, bad values with the choices.
The resolved config is saved as ``RUN_DIR/config.yaml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqltune import config as stage_config
from sqltune.config import parse_overrides
from sqltune.errors import ConfigError
from sqltune.splits import SPLITS

METHODS = ("full", "lora", "qlora")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
OVERLONG = ("drop", "truncate")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "smollm2-135m"
    """Registry name, model folder, .gguf file or hub id."""
    method: str = "lora"
    """full | lora | qlora (4-bit NF4 base, double quantization, bf16 compute; CUDA only)."""
    train_file: str = ""
    """Chat or alpaca JSONL from 'sqltune data build' or 'sqltune data demo'."""
    eval_file: str | None = None
    """Validation JSONL; default: none, or a share of train_file by val_fraction."""
    val_fraction: float = 0.0
    """Hold out this share of train_file for validation (see val_split)."""
    val_split: str = "auto"
    """What val_fraction holds out whole: auto (databases when there are several, else query
    structures) | database | structure (the SQL with literals masked: no template on both sides) | random."""
    output_dir: str = "runs/train"
    """Run folder: checkpoints, logs, config.yaml, manifest.json, the model or adapter, plots."""
    max_length: int = 1024
    """Longest example in tokens (prompt + answer)."""
    overlong: str = "drop"
    """drop | truncate: what to do with longer examples (always counted in data_report.json)."""
    packing: bool = False
    """Pack several examples per row (best-fit decreasing); attention never crosses examples."""
    padding_free: Any = "auto"
    """Concatenate each batch into one row with per-example positions (no pad tokens at all).
    auto: on with CUDA (flash/varlen attention makes it free); off on CPU, where the
    block-diagonal mask costs more than the padding saved, and batches are grouped by length."""
    shared_prefix: Any = "auto"
    """Batch examples of one database together and run their common prompt prefix (system prompt
    and schema) once per batch instead of once per example; same loss and gradients, 2-3x more
    examples/s on CPU. auto: on where sqltune's CPU loss runs (no CUDA, no packing or padding-free
    rows, no gradient checkpointing); false: random batches grouped by length, as before."""
    epochs: float = 1.0
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run all epochs)."""
    max_minutes: float | None = None
    """Stop (and save) once training has run this long; the schedule still follows max_steps/epochs."""
    batch_size: int = 8
    """Examples per device per step."""
    grad_accum: int = 1
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch_fused"
    """A transformers optimizer name; adamw_torch_fused (one fused kernel: its step is 6x faster than
    adamw_torch on CPU, where the optimizer was 8% of a step), adamw_torch, adamw_8bit, ..."""
    precision: str = "auto"
    """auto (bf16 on GPUs and CPUs that compute it natively, else fp32) | bf16 | fp16 | fp32."""
    gradient_checkpointing: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target: Any = "all-linear"
    """'all-linear' or a list of module names, e.g. [q_proj, v_proj]."""
    logging_steps: int = 10
    eval_steps: int | None = None
    """Validation every N steps (default: at the end of each epoch)."""
    save_steps: int = 200
    save_total_limit: int = 2
    seed: int = 0
    resume: bool = True
    """Continue from the last checkpoint in output_dir when there is one."""
    deepspeed: str | None = None
    """A DeepSpeed JSON config (configs/accelerate/ds_zero2.json ...), for multi-GPU runs."""
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    lm_head_on_labels_only: bool = True
    """Project onto the vocabulary only the positions whose next token is labelled (the answer):
    TRL's fused head does this on CUDA; elsewhere sqltune's labelled_head_loss (same loss and
    gradients, 2.2x faster CPU steps). false: TRL's full-logits loss off CUDA, for comparison."""

    def validate(self, check_files: bool = True) -> None:
        problems = []
        if not self.train_file:
            problems.append("train_file: required (a JSONL from 'sqltune data build')")
        elif check_files and not Path(self.train_file).is_file():
            problems.append(f"train_file: {self.train_file} does not exist")
        if check_files and self.eval_file and not Path(self.eval_file).is_file():
            problems.append(f"eval_file: {self.eval_file} does not exist")
        choices = {
            "val_split": SPLITS,
            "method": METHODS,
            "precision": PRECISIONS,
            "overlong": OVERLONG,
            "lr_scheduler": SCHEDULERS,
        }
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                problems.append(f"{key}: {getattr(self, key)!r} is not one of {', '.join(valid)}")
        positive = ("max_length", "batch_size", "grad_accum", "logging_steps", "save_steps", "lora_r", "lora_alpha")
        for key in positive:
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                problems.append(f"{key}: {getattr(self, key)!r} must be a positive integer")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val_fraction: {self.val_fraction} must be in [0, 1)")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate: {self.learning_rate} must be > 0")
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.append("epochs or max_steps must be positive")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout: {self.lora_dropout} must be in [0, 1)")
        if not (self.lora_target == "all-linear" or (isinstance(self.lora_target, list) and self.lora_target)):
            problems.append(f"lora_target: {self.lora_target!r} must be 'all-linear' or a list of module names")
        if self.padding_free not in (True, False, "auto"):
            problems.append(f"padding_free: {self.padding_free!r} is not one of true, false, auto")
        if self.shared_prefix not in (True, False, "auto"):
            problems.append(f"shared_prefix: {self.shared_prefix!r} is not one of true, false, auto")
        if self.shared_prefix is True:
            clash = [k for k in ("packing", "gradient_checkpointing") if getattr(self, k)]
            clash += ["padding_free"] if self.padding_free is True else []
            clash += ["lm_head_on_labels_only: false"] if not self.lm_head_on_labels_only else []
            for k in clash:
                problems.append(
                    f"shared_prefix: true cannot be combined with {k} (set shared_prefix: auto or false, or drop {k})"
                )
        if self.packing and self.padding_free is False:
            problems.append("packing: needs padding_free: true (otherwise attention would cross packed examples)")
        if check_files and self.deepspeed and not Path(self.deepspeed).is_file():
            problems.append(f"deepspeed: {self.deepspeed} does not exist")
        if problems:
            raise ConfigError("invalid training config:\n  - " + "\n  - ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in fields(TrainConfig)}


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    return stage_config.from_dict(TrainConfig, data, where)


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    check_files: bool = True,
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """``base`` < the YAML at ``path`` < ``key=value`` overrides; validated (files checked unless told not to)."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data.update(stage_config.read_yaml(path))
    data.update(parse_overrides(overrides or []))
    cfg = config_from_dict(data, str(path) if path is not None else "config")
    cfg.validate(check_files)
    return cfg


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    stage_config.save(cfg, path)
