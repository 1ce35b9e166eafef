"""The one way to load a model: device, precision, tokenizer, causal LM, prompt tokens.

Every stage (data, train, predict, serve, export) loads through these functions, so the
checks live in one place:

* :func:`pick_device` and :func:`pick_precision` speak one vocabulary: ``auto | bf16 | fp16 |
  fp32`` (``bfloat16``, ``float16``, ``float32`` are accepted as spellings of the same three).
  ``auto`` is bf16 where the hardware computes it natively (CUDA GPUs with bf16, CPUs with
  AVX512-BF16 or AMX), fp16 on older GPUs and Apple MPS, fp32 elsewhere.
* :func:`load_tokenizer` resolves any model source (:func:`sqltune.models.registry.resolve_model`),
  requires a chat template where prompts are rendered, and gives a pad token without adding
  one (the EOS), so embeddings are never resized.
* :func:`load_causal_lm` loads weights in a precision, optionally as 4-bit NF4 (bitsandbytes,
  CUDA only, refused up front elsewhere) with a device map.
* :func:`encode_prompt` is the prompt's token ids through the model's own chat template, used by
  training for the prompt part of each example and by every generation backend; token counts
  (:class:`TokenCounter`) are the same ids' lengths.
"""

from __future__ import annotations

from typing import Any

from sqltune.errors import ConfigError, DataError, ModelError
from sqltune.models.hf import causal_lm_from, tokenizer_from
from sqltune.models.registry import resolve_model

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_SPELLINGS = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}
_TORCH_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def normalize_precision(value: str) -> str:
    """``auto``, ``bf16``, ``fp16`` or ``fp32`` for any accepted spelling; ConfigError otherwise."""
    v = _SPELLINGS.get(str(value).lower(), str(value).lower())
    if v not in PRECISIONS:
        raise ConfigError(
            f"unknown precision {value!r}; choose one of: {', '.join(PRECISIONS)} "
            f"(or {', '.join(_SPELLINGS)} for the same)"
        )
    return v


def cpu_supports_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch
        return False


def matmul_gflops(precision: str = "bf16", n: int = 1024, rounds: int = 3, reps: int = 8) -> float:
    """This CPU's matmul speed in GFLOP/s (n x n, all of torch's threads, best of ``rounds``): the
    peak that a training step's achieved GFLOP/s is measured against (benchmarks/train_throughput.py)."""
    import time

    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def pick_device(device: str = "auto") -> str:
    """``auto``: cuda, else mps, else cpu; any other value is used as given."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_precision(precision: str, device: str, training: bool = False) -> str:
    """The precision to compute in on ``device`` (see the module docstring for ``auto``).

    Training refuses fp16 on a CPU (no fp16 autocast there)."""
    import torch

    p = normalize_precision(precision)
    if p == "auto":
        if device.startswith("cuda"):
            p = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device == "mps":
            p = "fp16"
        else:
            p = "bf16" if cpu_supports_bf16() else "fp32"
    if training and p == "fp16" and device == "cpu":
        raise ConfigError("precision: fp16 training needs a GPU; use bf16 or fp32 on a CPU")
    return p


def torch_dtype(precision: str) -> Any:
    """The torch dtype of a resolved precision (bf16, fp16 or fp32)."""
    import torch

    p = normalize_precision(precision)
    if p == "auto":
        raise ConfigError("torch_dtype needs a resolved precision; call pick_precision first")
    return getattr(torch, _TORCH_NAMES[p])


def load_tokenizer(
    name_or_path: str,
    chat_template: bool = False,
    padding_side: str | None = None,
    resolve: bool = True,
) -> Any:
    """The tokenizer of any model source, with a pad token (the EOS when it has none).

    ``chat_template=True`` requires one (sqltune renders every prompt through it)."""
    where = name_or_path
    if resolve:
        where = resolve_model(name_or_path)
    tok = tokenizer_from(where)
    if chat_template and not getattr(tok, "chat_template", None):
        raise ModelError(f"{where}: the tokenizer has no chat template; sqltune renders prompts with the model's own")
    if tok.pad_token_id is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token  # an existing token: no new tokens, no embedding resize
    if padding_side is not None:
        tok.padding_side = padding_side
    return tok


def nf4_config() -> Any:
    """4-bit NF4 with double quantization and bf16 compute (the cookbook's and QLoRA's setting)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_causal_lm(
    name_or_path: str,
    precision: str = "fp32",
    load_in_4bit: bool = False,
    device: str | None = None,
    device_map: Any = None,
    resolve: bool = True,
) -> Any:
    """Weights of any model source in ``precision`` (a resolved one: bf16, fp16, fp32).

    ``load_in_4bit``: NF4 through bitsandbytes, placed by ``device_map`` (default: the current
    CUDA device); it needs CUDA and is refused before anything is loaded elsewhere.
    ``device``: move the model there after loading (not with 4-bit weights)."""
    where = name_or_path
    if resolve:
        where = resolve_model(name_or_path)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(precision)}
    if load_in_4bit:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "4-bit NF4 weights (bitsandbytes) need a CUDA GPU; this machine has none. "
                "Load in bf16/fp32 instead (drop --load-in-4bit, or use method=lora instead of qlora)."
            )
        kwargs["quantization_config"] = nf4_config()
        kwargs["device_map"] = device_map if device_map is not None else {"": torch.cuda.current_device()}
    elif device_map is not None:
        kwargs["device_map"] = device_map
    model = causal_lm_from(where, **kwargs)
    if device is not None and not load_in_4bit and device_map is None:
        model.to(device)
    return model


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends an answer: the tokenizer's EOS and the generation config's."""
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = {tokenizer.eos_token_id}
    if isinstance(gen_eos, int):
        eos.add(gen_eos)
    elif gen_eos:
        eos.update(gen_eos)
    return sorted(e for e in eos if e is not None)


def context_length(model: Any, tokenizer: Any) -> int:
    """The model's context in tokens (0 when unknown)."""
    return int(getattr(model.config, "max_position_embeddings", 0) or getattr(tokenizer, "model_max_length", 0))


def encode_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a prompt, through the model's own chat template, ending where the answer starts.

    Training uses this same function for the prompt part of each example, so inference sees
    exactly the tokens training conditioned on.
    """
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in recent transformers
        ids = ids["input_ids"]
    return list(ids)


def encode_answer(tokenizer: Any, messages: list[dict[str, str]], answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of a conversation: the prompt exactly as :func:`encode_prompt` gives it, the
    answer the rest of the chat template's rendering of the whole conversation (to its end-of-turn token),
    tokenized on its own, so that a BPE merge across the boundary can never change the prompt. Training
    labels these answer ids; scoring an answer sums their log-likelihoods."""
    prompt_ids, (answer_ids,) = encode_answers(tokenizer, messages, [answer])
    return prompt_ids, answer_ids


def encode_answers(
    tokenizer: Any, messages: list[dict[str, str]], answers: list[str]
) -> tuple[list[int], list[list[int]]]:
    """:func:`encode_answer` for several answers to one prompt, the prompt rendered and tokenized once."""
    prompt_str = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    out = []
    for answer in answers:
        full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)
        if not full.startswith(prompt_str):
            raise DataError(
                "the chat template renders the prompt differently with and without the answer; "
                "sqltune cannot mask the prompt reliably for this template"
            )
        out.append(list(tokenizer(full[len(prompt_str) :], add_special_tokens=False)["input_ids"]))
    return encode_prompt(tokenizer, messages), out


def prompt_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The text :func:`encode_prompt` tokenizes: the chat template's rendering, up to where the answer starts."""
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


class TokenCounter:
    """Prompt lengths exactly as the model sees them: :func:`encode_prompt`'s ids.

    A tokenizer without a chat template (a bare tokenizer given for statistics) counts the
    turns' texts joined by blank lines."""

    def __init__(self, tokenizer: Any, name: str = "custom"):
        self.tok = tokenizer
        self.name = name

    def count_many(self, messages: list[list[dict[str, str]]]) -> list[int]:
        if not messages:
            return []
        if getattr(self.tok, "chat_template", None):
            # the rendering encode_prompt tokenizes, tokenized as one batch (same ids, tested)
            texts = [prompt_text(self.tok, m) for m in messages]
        else:
            texts = ["\n\n".join(t["content"] for t in m) for m in messages]
        return [len(x) for x in self.tok(texts, add_special_tokens=False)["input_ids"]]

    def count(self, messages: list[dict[str, str]]) -> int:
        return self.count_many([messages])[0]
