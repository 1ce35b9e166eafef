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


OBJECTIVES = ("sft", "grpo")
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "smollm2-135m"
    """Registry name, model folder, .gguf file, hub id, or an earlier run's model folder (GRPO after SFT)."""
    objective: str = "sft"
    """sft (supervised: the gold SQL as the answer) | grpo (reinforcement learning: sampled answers rewarded by
    the judge, TRL's GRPOTrainer); one run folder, manifest, resume, plots and prompt contract either way."""
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
    neftune_noise_alpha: float | None = None
    """sft: add uniform noise of this scale (alpha / sqrt(tokens x width)) to the input embeddings while
    training (NEFTune, transformers' own hook; 5 is the paper's usual value); off when unset."""
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

    num_generations: int = 4
    """grpo: answers sampled per prompt (a group; rewards are compared within it)."""
    max_completion_length: int = 128
    """grpo: most tokens per sampled answer."""
    temperature: float = 1.0
    """grpo: sampling temperature of the answers."""
    beta: float = 0.0
    """grpo: KL penalty towards the start model (0: none, and no reference model is kept)."""
    loss_type: str = "dapo"
    """grpo: dapo | grpo | dr_grpo | bnpo (TRL's loss normalisations)."""
    reward: Any = "arctic"
    """grpo: a preset (arctic | dense | arctic+format | dense+format | arctic+ngram) or a mapping of component
    weights, e.g. {execution: 1, format: 0.2} (see sqltune.train.rewards)."""
    select_prompts: bool = True
    """grpo: before training, sample each prompt's group with the start model and keep only prompts whose
    answers are neither all right nor all wrong (the others give no gradient); the count is reported."""
    reward_timeout: float = 10.0
    """grpo: seconds a sampled answer's SQL may run."""
    use_vllm: bool = False
    """grpo: generate the groups with vLLM in colocate mode (a CUDA GPU and 'pip install vllm')."""

    def validate(self, check_files: bool = True) -> None:
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"objective: {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        grpo_keys = (
            "num_generations",
            "max_completion_length",
            "temperature",
            "beta",
            "loss_type",
            "reward",
            "select_prompts",
            "reward_timeout",
            "use_vllm",
        )
        sft_keys = (
            "packing",
            "padding_free",
            "shared_prefix",
            "overlong",
            "lm_head_on_labels_only",
            "val_fraction",
            "neftune_noise_alpha",
        )
        if self.objective == "sft":
            for k in grpo_keys:
                if getattr(self, k) != defaults[k]:
                    problems.append(f"{k}: a GRPO setting; with objective: sft drop it (or set objective: grpo)")
        else:
            for k in sft_keys:
                if getattr(self, k) != defaults[k]:
                    problems.append(f"{k}: an SFT setting; with objective: grpo drop it")
            if self.loss_type not in LOSS_TYPES:
                problems.append(f"loss_type: {self.loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
            if not isinstance(self.num_generations, int) or self.num_generations < 2:
                problems.append(f"num_generations: {self.num_generations!r} must be at least 2 (rewards are compared)")
            elif (self.batch_size * self.grad_accum) % self.num_generations:
                problems.append(
                    f"batch_size x grad_accum ({self.batch_size * self.grad_accum}) must be a multiple of "
                    f"num_generations ({self.num_generations}): each step holds whole groups"
                )
            if self.max_completion_length < 8 or self.temperature <= 0 or self.beta < 0 or self.reward_timeout <= 0:
                problems.append("max_completion_length >= 8, temperature > 0, beta >= 0 and reward_timeout > 0")
            try:
                from sqltune.train.rewards import reward_weights

                reward_weights(self.reward)
            except ConfigError as e:
                problems.append(str(e))
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
        alpha = self.neftune_noise_alpha
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0):
            problems.append(f"neftune_noise_alpha: {alpha!r} must be a number > 0 (or drop it: off)")
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
