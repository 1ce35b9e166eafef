"""Shared-prefix batches: the prefix runs once per batch, and nothing the model learns changes."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from conftest import make_school_dataset, make_school_db
from sqltune.errors import ConfigError
from sqltune.io import read_jsonl
from sqltune.train.config import load_config
from sqltune.train.data import IGNORE, tokenize_file
from sqltune.train.loss import labelled_head_loss
from sqltune.train.prefix import (
    MIN_PREFIX,
    PrefixCollator,
    PrefixGroupedSampler,
    common_prefix_length,
    expand_cache,
    shared_prefix_loss,
)


@pytest.fixture
def two_db_data(tmp_path):
    """Chat records over two databases (different schemas, so different prefixes)."""
    a = make_school_dataset(tmp_path / "a.jsonl", make_school_db(tmp_path / "school.sqlite"), n=10)
    db2 = tmp_path / "campus.sqlite"
    make_school_db(db2)
    import sqlite3

    with sqlite3.connect(db2) as conn:
        conn.execute("CREATE TABLE room (room_id INTEGER PRIMARY KEY, name TEXT)")
    b = make_school_dataset(tmp_path / "b.jsonl", db2, n=6)
    rows = read_jsonl(a) + [dict(r, db_id="campus", id=f"c-{i}") for i, r in enumerate(read_jsonl(b))]
    out = tmp_path / "train.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _examples(path, tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ex, _ = tokenize_file(path, tok, max_length=1024)
    return tok, ex


def test_prefix_is_exact_and_stops_before_the_answer(two_db_data, tiny_model):
    _, ex = _examples(two_db_data, tiny_model)
    school = [e for e in ex if e["prefix_key"].startswith("school")]
    p = common_prefix_length(school[:4])
    first_label = min(next(i for i, x in enumerate(e["labels"]) if x != IGNORE) for e in school[:4])
    assert MIN_PREFIX <= p < first_label  # position p-1 predicts an unlabelled token
    assert all(e["input_ids"][:p] == school[0]["input_ids"][:p] for e in school[:4])
    assert len({e["input_ids"][p] for e in school[:4]}) > 1  # and it is the longest such prefix
    # examples of two databases share the system prompt only; a single example has no prefix
    mixed = [school[0], next(e for e in ex if e["prefix_key"].startswith("campus"))]
    assert common_prefix_length(mixed) < p
    assert common_prefix_length(school[:1]) == 0


def test_suffix_logits_against_the_broadcast_cache_equal_the_full_forward(data_and_model):
    """Logit by logit: prefix once + each suffix against the expanded cache == each example whole."""
    from transformers import AutoModelForCausalLM

    path, tiny_model = data_and_model
    tok, ex = _examples(path, tiny_model)
    batch = PrefixCollator(tok.pad_token_id)(ex[:4])
    p = batch["prefix_ids"].shape[1]
    assert p >= MIN_PREFIX and batch["input_ids"].shape[0] == 4
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with torch.no_grad():
        head = model(input_ids=batch["prefix_ids"], use_cache=True)
        cache = getattr(head, "cache", None) or head.past_key_values
        s = batch["input_ids"].shape[1]
        kwarg = "cache" if hasattr(head, "cache") else "past_key_values"
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=torch.cat([torch.ones(4, p, dtype=torch.long), batch["attention_mask"]], 1),
            position_ids=torch.arange(p, p + s).expand(4, -1),
            use_cache=True,
            **{kwarg: expand_cache(cache, 4)},
        ).logits
        for i, e in enumerate(ex[:4]):
            whole = model(input_ids=torch.tensor([e["input_ids"]])).logits[0]
            n = len(e["input_ids"]) - p
            torch.testing.assert_close(out[i, :n], whole[p:], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(head.logits[0], whole[:p], atol=1e-5, rtol=1e-5)


@pytest.fixture
def data_and_model(tmp_path, school_db, tiny_model):
    return make_school_dataset(tmp_path / "train.jsonl", school_db, n=16), tiny_model


@pytest.mark.parametrize("method", ["full", "lora"])
def test_shared_prefix_loss_and_gradients_equal_the_plain_batch(data_and_model, method):
    """Gradient by gradient, for a full model and for LoRA adapters: the gradient of the one
    prefix computation is the sum over the examples, as when each example runs its own prefix."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    path, tiny_model = data_and_model
    tok, ex = _examples(path, tiny_model)
    rows = [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in ex[:4]]
    assert len({len(e["input_ids"]) for e in rows}) > 1  # padded, answers at different offsets
    results = []
    for shared in (False, True):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        if method == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(
                model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
            )
        if shared:
            batch = PrefixCollator(tok.pad_token_id)(rows)
            assert batch["prefix_ids"].shape[1] >= MIN_PREFIX
            assert batch["num_tokens"] == sum(len(e["input_ids"]) for e in rows)
            loss, stats = shared_prefix_loss(model, batch)
        else:
            batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(rows)
            loss, stats = labelled_head_loss(model, dict(batch))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((loss.detach(), stats["label_tokens"], grads))
    (l0, n0, g0), (l1, n1, g1) = results
    assert n0 == n1 and n0 > 0
    torch.testing.assert_close(l1, l0, atol=1e-6, rtol=1e-5)
    assert g0.keys() == g1.keys() and g0
    for name in g0:
        assert g0[name].abs().sum() > 0
        torch.testing.assert_close(g1[name], g0[name], atol=1e-6, rtol=1e-4, msg=name)


def test_sampler_batches_one_key_sees_every_example_once_and_reshuffles_per_epoch():
    keys = ["a"] * 11 + ["b"] * 6 + ["c"] * 2
    s = PrefixGroupedSampler(keys, batch_size=4, seed=3)
    epochs = []
    for epoch in range(3):
        s.set_epoch(epoch)
        order = list(s)
        assert sorted(order) == list(range(len(keys))) and len(s) == len(keys)
        batches = [order[i : i + 4] for i in range(0, len(order), 4)]
        assert all(len(b) == 4 for b in batches[:-1])
        one_key = [b for b in batches if len({keys[i] for i in b}) == 1]
        assert len(one_key) >= 3  # a: 2 full batches, b: 1; the rest are pooled remainders
        epochs.append(order)
    assert epochs[0] != epochs[1] != epochs[2]
    again = PrefixGroupedSampler(keys, batch_size=4, seed=3)
    again.set_epoch(1)
    assert list(again) == epochs[1]  # a resumed run sees the same order


def test_training_groups_batches_by_database_and_trains(two_db_data, tiny_model, tmp_path, monkeypatch):
    from sqltune.train import prefix, sft

    seen = []
    original = prefix.PrefixCollator.__call__
    _, ex = _examples(two_db_data, tiny_model)
    keys = {tuple(e["input_ids"]): e["prefix_key"] for e in ex}  # which database each batch row is from

    def spy_ids(self, examples):
        seen.append(Counter(keys[tuple(e["input_ids"])].split("\x1f")[0] for e in examples))
        return original(self, examples)

    monkeypatch.setattr(prefix.PrefixCollator, "__call__", spy_ids)
    cfg = load_config(
        None,
        [
            f"model={tiny_model}",
            f"train_file={two_db_data}",
            f"output_dir={tmp_path / 'run'}",
            "method=full",
            "batch_size=4",
            "epochs=2",
            "logging_steps=1",
            "save_steps=100",
            "report_to=[]",
            "precision=fp32",
            "learning_rate=1e-2",
        ],
    )
    m = sft.train(cfg)
    assert m["shared_prefix"] is True and m["global_steps"] == 8  # 16 examples, batch 4, 2 epochs
    train_batches = seen[: m["global_steps"]]
    assert sum(len(c) == 1 for c in train_batches) >= 6  # school 10 -> 2 full, campus 6 -> 1 full, per epoch
    losses = [h["loss"] for h in json.loads((tmp_path / "run" / "log_history.json").read_text()) if "loss" in h]
    assert losses[-1] < losses[0]
    # the plain path stays selectable
    m2 = sft.train(load_config(None, [*cfg_overrides(cfg, tmp_path / "plain"), "shared_prefix=false"]))
    assert m2["shared_prefix"] is False and m2["global_steps"] == 8


def cfg_overrides(cfg, out):
    keep = ("model", "train_file", "method", "batch_size", "epochs", "save_steps", "precision", "learning_rate")
    return [f"{k}={getattr(cfg, k)}" for k in keep] + [f"output_dir={out}", "report_to=[]"]


@pytest.mark.parametrize(
    "extra, clash",
    [
        (["packing=true", "padding_free=true"], "packing"),
        (["gradient_checkpointing=true"], "gradient_checkpointing"),
        (["lm_head_on_labels_only=false"], "lm_head_on_labels_only"),
        (["padding_free=true"], "padding_free"),
    ],
)
def test_shared_prefix_true_refuses_what_reshapes_the_batch(data_and_model, tmp_path, extra, clash):
    path, tiny_model = data_and_model
    with pytest.raises(ConfigError, match=rf"shared_prefix: true cannot be combined with {clash}"):
        load_config(None, [f"model={tiny_model}", f"train_file={path}", "shared_prefix=true", *extra])
    with pytest.raises(ConfigError, match="shared_prefix: 'sometimes' is not one of true, false, auto"):
        load_config(None, [f"model={tiny_model}", f"train_file={path}", "shared_prefix=sometimes"])


def test_auto_is_off_where_another_path_reshapes_the_batch(data_and_model):
    from sqltune.train.sft import use_shared_prefix

    path, tiny_model = data_and_model
    base = [f"model={tiny_model}", f"train_file={path}"]
    assert use_shared_prefix(load_config(None, base), "cpu", padding_free=False)
    assert not use_shared_prefix(load_config(None, base), "cuda", padding_free=True)
    assert not use_shared_prefix(load_config(None, [*base, "gradient_checkpointing=true"]), "cpu", False)
    assert not use_shared_prefix(load_config(None, [*base, "shared_prefix=false"]), "cpu", False)


@pytest.mark.parametrize("method, shared", [("full", "auto"), ("lora", "false")])
def test_probe_times_the_runs_own_first_batches(two_db_data, tiny_model, tmp_path, method, shared):
    from sqltune.train.probe import probe_steps

    cfg = load_config(
        None,
        [
            f"model={tiny_model}",
            f"train_file={two_db_data}",
            f"method={method}",
            "batch_size=4",
            "precision=fp32",
            f"shared_prefix={shared}",
        ],
    )
    p = probe_steps(cfg, steps=2)
    assert p["steps"] == 2 and p["shared_prefix"] is (shared == "auto")
    assert set(p["phases"]) == {"collate", "forward", "backward", "optimizer"}
    assert p["s_per_step"] == pytest.approx(sum(p["phases"].values()))
    assert all(s["rows"] == 4 and s["head"] > 0 for s in p["shapes"])
    assert all((s["prefix"] >= MIN_PREFIX) is (shared == "auto") for s in p["shapes"][:1])
