"""The train stage on a tiny real model: configs, loss masking, full and LoRA runs, resume, merge."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import make_school_dataset
from sqltune.errors import ConfigError
from sqltune.io import read_jsonl
from sqltune.train.config import FIELDS, load_config
from sqltune.train.data import IGNORE, tokenize_file

ROOT = Path(__file__).resolve().parents[1]
RUN_CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "accelerate" not in p.parts)
ACCEL_CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))


@pytest.fixture
def data(tmp_path, school_db):
    return make_school_dataset(tmp_path / "train.jsonl", school_db, n=16)


def base_overrides(data, tiny_model, out, **kw):
    d = {
        "model": str(tiny_model),
        "train_file": str(data),
        "output_dir": str(out),
        "batch_size": 4,
        "max_steps": 3,
        "logging_steps": 1,
        "save_steps": 100,
        "learning_rate": 1e-2,
        "report_to": "[]",
        "precision": "fp32",
    }
    d.update(kw)
    return [f"{k}={v}" for k, v in d.items()]


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=[str(p.relative_to(ROOT)) for p in RUN_CONFIGS])
def test_every_shipped_config_validates(path):
    text = path.read_text()
    assert text.startswith("# ") and ("sqltune train" in text.splitlines()[0]), "a config opens with its command"
    cfg = load_config(path, check_files=False)
    assert cfg.method in ("full", "lora", "qlora")


@pytest.mark.parametrize("path", ACCEL_CONFIGS, ids=[p.name for p in ACCEL_CONFIGS])
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import ClusterConfig

    assert path.read_text().startswith("# accelerate launch")
    cfg = ClusterConfig.from_yaml_file(str(path))
    assert cfg.distributed_type is not None
    ds = (cfg.deepspeed_config or {}).get("deepspeed_config_file")
    if ds:
        stage = json.loads((ROOT / ds).read_text())["zero_optimization"]["stage"]
        assert f"zero{stage}" in path.name


def test_config_errors_name_the_key_and_the_choices(data):
    with pytest.raises(ConfigError, match=r"unknown key 'lerning_rate' \(did you mean 'learning_rate'\?\).*valid keys"):
        load_config(None, [f"train_file={data}", "lerning_rate=1e-4"])
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"train_file={data}", "method=dora", "precision=fp8", "batch_size=0"])
    msg = str(e.value)
    assert "method: 'dora' is not one of full, lora, qlora" in msg
    assert "precision: 'fp8'" in msg and "batch_size: 0" in msg
    with pytest.raises(ConfigError, match="learning_rate: 'fast' should be a float"):
        load_config(None, [f"train_file={data}", "learning_rate=fast"])
    with pytest.raises(ConfigError, match="train_file: /nope.jsonl does not exist"):
        load_config(None, ["train_file=/nope.jsonl"])
    cfg = load_config(None, [f"train_file={data}", "learning_rate=2e-4", "lora_target=[q_proj,v_proj]", "epochs=2"])
    assert cfg.learning_rate == 2e-4 and cfg.lora_target == ["q_proj", "v_proj"] and cfg.epochs == 2.0
    assert set(FIELDS) >= {"method", "packing", "padding_free", "deepspeed"}


def test_qlora_on_cpu_fails_up_front(data, tiny_model, tmp_path):
    from sqltune.train.sft import train

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = load_config(None, base_overrides(data, tiny_model, tmp_path / "run", method="qlora"))
    with pytest.raises(ConfigError, match="qlora.*needs a CUDA GPU"):
        train(cfg)
    assert not (tmp_path / "run").exists(), "nothing is written before the check"


def test_loss_mask_and_overlong_examples(data, tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ex, rep = tokenize_file(data, tok, max_length=1024)
    assert rep["examples"] == 16 and rep["skipped"] == {}
    for e in ex:
        first = next(i for i, x in enumerate(e["labels"]) if x != IGNORE)
        assert first > 20  # the whole prompt is masked
        assert e["labels"][first:] == e["input_ids"][first:]  # the answer is not
        assert e["labels"][-1] == tok.eos_token_id  # and ends with the end-of-turn token
    longest = max(len(e["input_ids"]) for e in ex)
    _, rep = tokenize_file(data, tok, max_length=longest - 1)
    assert rep["skipped"]["over_max_length"] >= 1 and rep["examples"] < 16
    ex2, rep = tokenize_file(data, tok, max_length=longest - 1, overlong="truncate")
    assert rep["truncated"] >= 1 and rep["examples"] == 16 and max(len(e["input_ids"]) for e in ex2) == longest - 1


def test_padding_free_batches_keep_examples_apart(tiny_model):
    """A padding-free row (examples concatenated, positions restarting) gives each example the
    same logits as running it alone: attention never crosses the boundary."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    a, b = list(range(5, 25)), list(range(30, 42))
    batch = DataCollatorForLanguageModeling(pad_token_id=3, padding_free=True)(
        [{"input_ids": a, "labels": a}, {"input_ids": b, "labels": b}]
    )
    assert batch["input_ids"].shape == (1, len(a) + len(b)) and "attention_mask" not in batch
    # as in training: no KV cache, so the packed positions are turned into a block-diagonal mask
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "position_ids")} | {"use_cache": False}
    with torch.no_grad():
        packed = model(**inputs).logits[0]
        alone_a = model(input_ids=torch.tensor([a])).logits[0]
        alone_b = model(input_ids=torch.tensor([b])).logits[0]
    torch.testing.assert_close(packed[: len(a)], alone_a, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(packed[len(a) :], alone_b, atol=1e-4, rtol=1e-4)


def test_labelled_head_loss_equals_the_full_logits_loss(data, tiny_model):
    """Projecting only labelled positions onto the vocabulary gives the same loss and the same
    gradients as the model's own loss over full logits (padded batch, answers at different offsets)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from sqltune.train.sft import labelled_head_loss

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ex, _ = tokenize_file(data, tok, max_length=1024)
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(ex[:4])
    assert len({len(e["input_ids"]) for e in ex[:4]}) > 1  # really padded
    grads = []
    for labelled in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        if labelled:
            loss, stats = labelled_head_loss(model, dict(batch))
            assert stats["label_tokens"] == (batch["labels"][:, 1:] != IGNORE).sum()
        else:
            loss = model(**batch).loss
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_full, g_full), (loss_lab, g_lab) = grads
    torch.testing.assert_close(loss_lab, loss_full, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_lab, g_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_full_run_trains_and_writes_the_run_folder(data, tiny_model, tmp_path):
    from safetensors.torch import load_file

    from sqltune.train.sft import train

    run = tmp_path / "run"
    m = train(load_config(None, base_overrides(data, tiny_model, run, method="full", val_fraction=0.25, eval_steps=2)))
    assert m["global_steps"] == 3 and m["method"] == "full"
    history = json.loads((run / "log_history.json").read_text())
    assert [h["step"] for h in history if "eval_loss" in h] == [2, 3]  # at eval_steps and at the end
    assert 0 < m["eval_loss"] < 20 and json.loads((run / "data_report.json").read_text())["validation"]["examples"] == 4
    for f in ("config.yaml", "manifest.json", "data_report.json", "loss.png", "log_history.json"):
        assert (run / f).is_file(), f
    assert yaml.safe_load((run / "config.yaml").read_text())["method"] == "full"
    assert m["model_sha256"] and m["train_sha256"] and "trl" in m["versions"]
    before = load_file(str(Path(tiny_model) / "model.safetensors"))
    after = load_file(str(run / "model" / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before), "full fine-tuning updates every weight"
    assert (run / "model" / "tokenizer.json").is_file() and (run / "model" / "chat_template.jinja").is_file()
    assert after["model.embed_tokens.weight"].shape == before["model.embed_tokens.weight"].shape  # no resize
    args = torch.load(run / "model" / "training_args.bin", weights_only=False)
    assert not args.gradient_checkpointing  # TRL's default is on; sqltune's only when asked
    losses = [h["loss"] for h in json.loads((run / "log_history.json").read_text()) if "loss" in h]
    assert len(losses) == 3 and losses[-1] < losses[0]


def test_lora_run_merge_and_resume(data, tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from sqltune.models.merge import merge
    from sqltune.train.sft import train

    run = tmp_path / "lora"
    over = base_overrides(data, tiny_model, run, method="lora", lora_r=4, lora_alpha=8, save_steps=2, max_steps=2)
    m = train(load_config(None, over))
    assert m["global_steps"] == 2 and (run / "checkpoint-2").is_dir()
    # resume: the same command with more steps continues from checkpoint-2
    m = train(load_config(None, [*over, "max_steps=4"]))
    assert m["resumed_from"].endswith("checkpoint-2") and m["global_steps"] == 4
    assert (run / "adapter" / "adapter_config.json").is_file()

    merged_dir = tmp_path / "merged"
    info = merge(run, merged_dir)
    assert info["changed_tensors"] > 0
    assert (merged_dir / "tokenizer.json").is_file() and (merged_dir / "chat_template.jinja").is_file()
    assert not (merged_dir / "adapter_config.json").exists()
    x = torch.tensor([list(range(5, 40))])
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        plain = base(input_ids=x).logits
        peft_logits = PeftModel.from_pretrained(base, str(run / "adapter")).eval()(input_ids=x).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(merged_dir).eval()(input_ids=x).logits
    assert not torch.allclose(plain, peft_logits, atol=1e-4), "the adapter must change the model"
    torch.testing.assert_close(merged_logits, peft_logits, atol=1e-4, rtol=1e-4)


def test_merge_of_a_full_run_fails_clearly(data, tiny_model, tmp_path):
    from sqltune.models.merge import merge

    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"method": "full", "output": str(run / "model")}))
    with pytest.raises(ConfigError, match="method=full.*no adapter to merge"):
        merge(run, tmp_path / "out")
    with pytest.raises(ConfigError, match="no manifest.json"):
        merge(tmp_path, tmp_path / "out")


def test_train_cli_and_predict_with_the_result(data, tiny_model, tmp_path):
    run = tmp_path / "cli_run"
    args = base_overrides(data, tiny_model, run, method="full", max_steps=2)
    r = subprocess.run([sys.executable, "-m", "sqltune", "train", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trained 2 steps" in r.stdout
    from sqltune.predict.run import PredictConfig, predict

    s = predict(
        PredictConfig(
            dataset=str(data),
            out=str(tmp_path / "p.jsonl"),
            model=str(run / "model"),
            max_new_tokens=4,
            limit=3,
            precision="fp32",
        ),
        progress=False,
    )
    assert s["total_written"] == 3
    r = subprocess.run([sys.executable, "-m", "sqltune", "train", *args, "method=dora"], capture_output=True, text=True)
    assert r.returncode == 2 and "method: 'dora' is not one of" in r.stderr and "Traceback" not in r.stderr


def test_two_process_cpu_run_via_accelerate(data, tiny_model, tmp_path):
    """Two CPU processes (gloo DDP) through accelerate launch and the shipped config (~20 s)."""
    if shutil.which("accelerate") is None:
        pytest.skip("accelerate CLI not on PATH")
    run = tmp_path / "ddp"
    args = base_overrides(data, tiny_model, run, method="full", max_steps=2)
    cmd = [
        "accelerate",
        "launch",
        "--config_file",
        str(ROOT / "configs/accelerate/cpu_2proc.yaml"),
        "-m",
        "sqltune",
        "train",
        *args,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "manifest.json").read_text())["global_steps"] == 2
    assert read_jsonl(data)


def test_lm_head_on_labels_only_switches_the_trainer_and_trl_fields_are_checked(
    data, tiny_model, tmp_path, monkeypatch
):
    import trl

    from sqltune.errors import ModelError
    from sqltune.train import sft
    from sqltune.train.loss import trainer_class

    assert trainer_class(False) is trl.SFTTrainer
    labelled = trainer_class(True)
    assert labelled is not trl.SFTTrainer and issubclass(labelled, trl.SFTTrainer)
    run = tmp_path / "off"
    m = sft.train(load_config(None, base_overrides(data, tiny_model, run, method="full", lm_head_on_labels_only=False)))
    assert m["global_steps"] == 3
    # a TRL that no longer has the private fields the CPU loss updates fails up front, clearly
    original = trl.SFTTrainer.__init__

    def init_without_fields(self, *a, **k):
        original(self, *a, **k)
        del self._total_train_tokens

    monkeypatch.setattr(trl.SFTTrainer, "__init__", init_without_fields)
    with pytest.raises(ModelError, match=r"has no SFTTrainer\._total_train_tokens.*lm_head_on_labels_only: false"):
        sft.train(load_config(None, base_overrides(data, tiny_model, tmp_path / "moved", method="full")))


def test_neftune_noise_changes_the_training_and_is_checked(data, tiny_model, tmp_path):
    from safetensors.torch import load_file

    from sqltune.train.sft import train

    for bad, why in (("0", "must be a number > 0"), ("-1", "must be a number > 0"), ("loud", "should be a float")):
        with pytest.raises(ConfigError, match=f"neftune_noise_alpha: .*{why}"):
            load_config(None, base_overrides(data, tiny_model, tmp_path / "x", neftune_noise_alpha=bad))
    with pytest.raises(ConfigError, match="neftune_noise_alpha: an SFT setting"):
        load_config(None, base_overrides(data, tiny_model, tmp_path / "x", objective="grpo", neftune_noise_alpha=5))

    def weights(name, **kw):
        run = tmp_path / name
        m = train(load_config(None, base_overrides(data, tiny_model, run, method="full", max_steps=2, **kw)))
        assert m["global_steps"] == 2
        return run, load_file(str(run / "model" / "model.safetensors"))

    _, plain = weights("plain")
    _, again = weights("again")
    noisy_run, noisy = weights("noisy", neftune_noise_alpha=5)
    assert all(torch.equal(plain[k], again[k]) for k in plain), "the same seed trains the same weights"
    assert any(not torch.equal(plain[k], noisy[k]) for k in plain), "the noise reached the training"
    assert torch.load(noisy_run / "model" / "training_args.bin", weights_only=False).neftune_noise_alpha == 5
