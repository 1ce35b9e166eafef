"""Generation backends behind one interface: ``hf`` (transformers), ``openai`` (any
OpenAI-compatible server), ``vllm`` (the offline engine) and ``llamacpp`` (a ``.gguf`` in-process,
:mod:`sqltune.models.llamacpp`).

Every backend takes chat prompts (lists of messages built by :mod:`sqltune.prompts`) and returns,
per prompt, a list of :class:`Completion`: the first is greedy (or the requested temperature),
the others are samples for self-consistency.
"""

from __future__ import annotations

from typing import Any

from sqltune.errors import ConfigError, ModelError
from sqltune.models.generation import BACKENDS, LLAMACPP_SLOTS, Backend, Completion, GenParams, generate_per_request

__all__ = [  # the generation vocabulary is re-exported: callers may import it from here
    "BACKENDS",
    "LLAMACPP_SLOTS",
    "MIN_SHARED_PREFIX",
    "Backend",
    "Completion",
    "GenParams",
    "HFBackend",
    "OpenAIBackend",
    "VLLMBackend",
    "generate_per_request",
    "prompt_too_long",
    "sql_block_ends",
]

# --------------------------------------------------------------------------- hf


MIN_SHARED_PREFIX = 32
"""Tokens a batch's prompts must share (and at least half of their mean length) before the hf
backend computes their prefix once."""


def sql_block_ends(tokenizer: Any, answer: list[int], ticks: frozenset[int]) -> bool:
    """Whether the answer's last token closes the query :func:`sqltune.extract.sql_block_closed` reads (a fenced
    SQL block, or the bare statement the answer opens with, closed by ``;``): decoded only when that token holds a
    backtick or a semicolon (``ticks``), so most steps cost nothing."""
    from sqltune.extract import sql_block_closed

    if not answer or answer[-1] not in ticks:
        return False
    return sql_block_closed(tokenizer.decode(answer, skip_special_tokens=True))


class _SqlStop:
    """A stopping criterion for ``generate``: a row ends once its text holds the query it answers with, closed
    (:func:`sqltune.extract.sql_block_closed`); ``ended[row]`` is its answer's length then."""

    def __init__(self, tokenizer: Any, start: int, ticks: frozenset[int]):
        self.tokenizer, self.start, self.ticks = tokenizer, start, ticks
        self.ended: list[int | None] = []

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if not self.ended:
            self.ended = [None] * input_ids.shape[0]
        length = input_ids.shape[1] - self.start
        for r, t in enumerate(input_ids[:, -1].tolist()):
            answer = input_ids[r, self.start :]  # a view; read (tolist, decode) only after a closing token
            if (
                self.ended[r] is None
                and t in self.ticks
                and sql_block_ends(self.tokenizer, answer.tolist(), self.ticks)
            ):
                self.ended[r] = length
        return torch.tensor([e is not None for e in self.ended], dtype=torch.bool, device=input_ids.device)


def prompt_too_long(backend: Any, n_tokens: int, params: GenParams) -> Completion | None:
    """The refusal for a prompt of ``n_tokens`` that leaves no room for ``max_new_tokens`` in the
    hf model's context (``backend.max_context``), or None when it fits."""
    room = backend.max_context - params.max_new_tokens if backend.max_context else None
    if room is None or n_tokens <= room:
        return None
    return Completion(
        "",
        n_tokens,
        0,
        "prompt_too_long",
        f"prompt has {n_tokens} tokens; with max_new_tokens={params.max_new_tokens} the model's context of "
        f"{backend.max_context} leaves room for {room}: use a shorter schema style (--schema compact) or lower "
        "--max-new-tokens",
    )


class HFBackend:
    """Batched generation with transformers: left padding, a static KV cache; with ``shared_prefix``
    (default) the prompts are batched by their common prefix (a database's system prompt and schema),
    which each batch computes once and shares (:mod:`sqltune.models.kvcache`)."""

    name = "hf"

    def __init__(
        self,
        model: str,
        device: str = "auto",
        precision: str = "auto",
        load_in_4bit: bool = False,
        batch_size: int = 16,
        static_cache: bool = True,
        model_obj: Any = None,
        tokenizer: Any = None,
        shared_prefix: bool = True,
    ):
        from sqltune.models.load import (
            context_length,
            eos_token_ids,
            load_causal_lm,
            load_tokenizer,
            pick_device,
            pick_precision,
        )
        from sqltune.models.registry import resolve_model

        self.model_name = model
        self.device = pick_device(device)
        self.precision = pick_precision(precision, self.device)
        self.batch_size = batch_size
        self.parallel = batch_size
        """Prompts this backend answers together: what a server gathers into one call."""
        self.static_cache = static_cache
        self.shared_prefix = shared_prefix
        self.load_in_4bit = load_in_4bit
        if load_in_4bit and not self.device.startswith("cuda"):
            raise ConfigError(
                "--load-in-4bit (NF4 via bitsandbytes) needs a CUDA GPU; this machine has none. "
                "Drop the option to run in bf16/fp32."
            )
        where = resolve_model(model) if model_obj is None else model
        self.where = where
        self.tokenizer = tokenizer or load_tokenizer(where, chat_template=True, resolve=False)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"{where}: the tokenizer has no chat template; sqltune prompts need one")
        self.tokenizer.padding_side = "left"
        if model_obj is not None:
            self.model = model_obj
        else:
            self.model = load_causal_lm(
                where,
                precision="bf16" if load_in_4bit else self.precision,
                load_in_4bit=load_in_4bit,
                device=self.device,
                resolve=False,
            )
        self.model.eval()
        self.max_context = context_length(self.model, self.tokenizer)
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "path": self.where,
            "device": self.device,
            "precision": "nf4" if self.load_in_4bit else self.precision,
            "batch_size": self.batch_size,
            "static_cache": self.static_cache,
            "shared_prefix": self.shared_prefix,
            "eos_token_ids": self.eos_ids,
        }

    grounds_values = True
    """Literals compared to a column decode to the values it holds when ``generate`` gets a grounding."""

    def _guides(self, grounding: Any, rows: int) -> list[Any]:
        from sqltune.models.grounding import TokenTable, ValueGuide

        if grounding is None:
            return [None] * rows
        return [ValueGuide(grounding, TokenTable.of(self.tokenizer)) for _ in range(rows)]

    def _generate_batch(
        self, batch: list[list[int]], params: GenParams, sample: bool, n: int, grounding: list[Any] | None = None
    ) -> tuple[list[list[int]], list[int]]:
        """The answers' token ids, a row per prompt and sample (prompt-major), and the steps grounding
        restricted in each."""
        import torch

        from sqltune.models.kvcache import cache_kwarg, common_length, expand_cache, prefill, static_cache

        p = 0
        if self.shared_prefix and len(batch) * n > 1 and not self.load_in_4bit:
            p = common_length(batch, min(len(x) for x in batch) - 1)  # every row keeps a token to run
            # worth it when the prefix is most of the prompt (one database's schema), not when only
            # the system prompt is shared: then the static cache's faster decoding wins
            p = p if p >= MIN_SHARED_PREFIX and 2 * p >= sum(map(len, batch)) / len(batch) else 0
        n_samples = n
        if p:
            batch = [x for x in batch for _ in range(n)]  # the n samples of a prompt are rows of their own
            n = 1
        width = p + max(len(x) - p for x in batch)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, x in enumerate(batch):
            # [shared prefix | left padding | the row's own suffix]: positions come from the mask
            ids[i, :p], mask[i, :p] = torch.tensor(x[:p], dtype=torch.long), 1
            ids[i, width - len(x) + p :] = torch.tensor(x[p:])
            mask[i, width - len(x) + p :] = 1
        temperature = params.sample_temperature if sample else params.temperature
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": self.eos_ids,
            "pad_token_id": pad,
            "num_return_sequences": n,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=params.top_p, top_k=params.top_k or None)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        guides: list[Any] = []
        if grounding is not None and any(g is not None for g in grounding):
            from transformers import LogitsProcessorList

            from sqltune.models.grounding import GroundingProcessor

            # the rows are prompt-major, a prompt's n samples side by side (expanded above, or by generate)
            guides = [g for g0 in grounding for g in self._guides(g0, n_samples)]
            kwargs["logits_processor"] = LogitsProcessorList([GroundingProcessor(self.tokenizer, guides, width)])
        stop = None
        if params.stop_after_sql:
            from transformers import StoppingCriteriaList

            stop = _SqlStop(self.tokenizer, width, self._closer_ids())
            kwargs["stopping_criteria"] = StoppingCriteriaList([stop])
        with torch.inference_mode():
            if p:  # the prefix once, its keys and values shared by every row
                cache, _ = prefill(self.model, ids[:1, :p].to(self.model.device))
                if self.static_cache:  # written in place while decoding: half the step of a growing cache
                    rows = len(batch) * n
                    shared = static_cache(self.model, cache, rows, width + params.max_new_tokens)
                else:
                    shared = expand_cache(cache, len(batch))
                kwargs[cache_kwarg(self.model)] = shared
            elif self.static_cache and not self.load_in_4bit:
                kwargs["cache_implementation"] = "static"
            out = self.model.generate(
                input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device), **kwargs
            )
        new = out[:, width:].tolist()
        result = []
        for r, row in enumerate(new):
            cut = len(row)
            ended = stop.ended[r] if stop is not None else None
            if ended is not None:
                cut = ended
            for j, t in enumerate(row[:cut]):
                if t in self.eos_ids:
                    cut = j
                    break
            result.append(row[:cut])
        return result, [g.steps if g is not None else 0 for g in guides] or [0] * len(result)

    def _closer_ids(self) -> frozenset[int]:
        """Token ids whose text holds a backtick or a semicolon: only those can close a fence or a statement."""
        if getattr(self, "_ticks", None) is None:
            self._ticks = frozenset(i for tok, i in self.tokenizer.get_vocab().items() if "`" in tok or ";" in tok)
        return self._ticks

    def stream(self, messages: list[dict[str, str]], params: GenParams) -> Any:
        """One prompt's answer as it is generated: an iterator of text pieces (the greedy or sampled first candidate)."""
        import threading

        import torch
        from transformers import TextIteratorStreamer

        from sqltune.models.load import encode_prompt

        ids = torch.tensor([encode_prompt(self.tokenizer, messages)], device=self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "streamer": streamer,
        }
        if params.temperature > 0:
            kwargs.update(
                do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or None
            )
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)

        def run() -> None:
            with torch.inference_mode():
                self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()

    def generate(
        self, prompts: list[list[dict[str, str]]], params: GenParams, grounding: list[Any] | None = None
    ) -> list[list[Completion]]:
        import torch

        from sqltune.models.load import encode_prompt

        encoded = [encode_prompt(self.tokenizer, m) for m in prompts]
        results: list[list[Completion]] = [[] for _ in prompts]
        if self.shared_prefix:  # prompts with the same prefix (system prompt, schema) side by side
            order = sorted(range(len(prompts)), key=lambda i: encoded[i])
        else:  # similar lengths side by side: the least padding
            order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        runnable = []
        for i in order:
            refused = prompt_too_long(self, len(encoded[i]), params)
            if refused:
                results[i] = [refused]
            else:
                runnable.append(i)
        for start in range(0, len(runnable), self.batch_size):
            idx = runnable[start : start + self.batch_size]
            batch = [encoded[i] for i in idx]
            if params.seed is not None:
                torch.manual_seed(params.seed + start)
            ground = [grounding[i] for i in idx] if grounding is not None else None
            outs, steps = self._generate_batch(batch, params, sample=False, n=1, grounding=ground)
            for i, toks, g in zip(idx, outs, steps, strict=False):
                text = self.tokenizer.decode(toks, skip_special_tokens=True)
                results[i].append(Completion(text, len(encoded[i]), len(toks), grounded=g))
            extra = params.num_samples - 1
            if extra > 0:
                outs, steps = self._generate_batch(batch, params, sample=True, n=extra, grounding=ground)
                for k, i in enumerate(idx):
                    for toks, g in zip(
                        outs[k * extra : (k + 1) * extra], steps[k * extra : (k + 1) * extra], strict=False
                    ):
                        text = self.tokenizer.decode(toks, skip_special_tokens=True)
                        results[i].append(Completion(text, len(encoded[i]), len(toks), grounded=g))
        return results

    scores_answers = True
    """:meth:`score` gives answers' log-likelihoods (what the query bank chooses by)."""

    def score(self, prompts: list[list[dict[str, str]]], answers: list[list[str]]) -> list[list[float]]:
        """The log-likelihood of each answer after its prompt, summed over the answer's tokens as training
        labels them (the chat template's end of turn included); ``-inf`` where prompt and answer exceed the
        model's context. Nothing is computed twice: the prefix every prompt shares (the system prompt and
        schema of one database) once (:mod:`sqltune.models.kvcache`), then each prompt's own rest (its
        question) once for all its answers, then the answers in batches over those keys and values; an
        answer given twice to one prompt is scored once."""
        import torch

        from sqltune.models.kvcache import common_length, prefill
        from sqltune.models.load import encode_answers

        out: list[list[float]] = [[float("-inf")] * len(a) for a in answers]
        heads: list[list[int]] = []  # each distinct prompt's ids
        seen: dict[tuple[int, ...], int] = {}
        todo: dict[tuple[int, tuple[int, ...]], list[tuple[int, int]]] = {}  # (prompt, answer ids): where it goes
        for i, (msgs, texts) in enumerate(zip(prompts, answers, strict=True)):
            if not texts:
                continue
            pi, ais = encode_answers(self.tokenizer, msgs, texts)
            g = seen.setdefault(tuple(pi), len(heads))
            if g == len(heads):
                heads.append(pi)
            for j, ai in enumerate(ais):
                if ai and len(pi) + len(ai) <= self.max_context:
                    todo.setdefault((g, tuple(ai)), []).append((i, j))
        if not todo:
            return out
        used = sorted({g for g, _ in todo})
        p = common_length([heads[g] for g in used], limit=min(len(heads[g]) for g in used) - 1)
        p = p if self.shared_prefix else 0
        dev = self.model.device
        by_head: dict[int, list[tuple[int, ...]]] = {}
        for g, key in todo:
            by_head.setdefault(g, []).append(key)
        with torch.inference_mode():
            prefix = prefill(self.model, torch.tensor([heads[used[0]][:p]], device=dev))[0] if p else None
            chunk: list[int] = []
            rows = 0
            for n, g in enumerate(used):
                chunk.append(g)
                rows += len(by_head[g])
                if rows >= 4 * self.batch_size or n == len(used) - 1:
                    for where, lp in self._score_chunk(chunk, heads, by_head, p, prefix).items():
                        for i, j in todo[where]:
                            out[i][j] = lp
                    chunk, rows = [], 0
        return out

    def _score_chunk(
        self,
        chunk: list[int],
        heads: list[list[int]],
        by_head: dict[int, list[tuple[int, ...]]],
        p: int,
        prefix: Any,
    ) -> dict[tuple[int, tuple[int, ...]], float]:
        """:meth:`score` for the answers of the prompts ``chunk`` (indices into ``heads``): the prompts' rests
        after the shared ``p`` tokens run once, left-padded so that each one's last token (whose logits give
        its answers' first token) is the last slot; then each answer's other tokens run over those keys and
        values, its positions continuing its own prompt's."""
        import torch
        from transformers import DynamicCache

        from sqltune.models.kvcache import cache_kwarg, expand_cache

        dev = self.model.device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        tails = [heads[g][p:] for g in chunk]
        t = max(len(x) for x in tails)
        ids = torch.full((len(chunk), t), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), p + t), dtype=torch.long)
        mask[:, :p] = 1
        pos = torch.zeros((len(chunk), t), dtype=torch.long)
        for r, x in enumerate(tails):
            ids[r, t - len(x) :] = torch.tensor(x)
            mask[r, p + t - len(x) :] = 1
            pos[r, t - len(x) :] = torch.arange(p, p + len(x))
        kwargs: dict[str, Any] = {}
        if prefix is not None:
            kwargs = {cache_kwarg(self.model): expand_cache(prefix, len(chunk))}
        res = self.model(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            position_ids=pos.to(dev),
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        cache = getattr(res, "cache", None) or res.past_key_values
        first = torch.log_softmax(res.logits[:, -1].float(), dim=-1)  # each prompt's next-token distribution
        rows = [(r, ai) for r, g in enumerate(chunk) for ai in by_head[g]]
        got: dict[tuple[int, tuple[int, ...]], float] = {}
        for start in range(0, len(rows), self.batch_size):
            part = rows[start : start + self.batch_size]
            width = max(len(ai) for _, ai in part) - 1  # the last token predicts nothing
            lps = [float(first[r, ai[0]]) for r, ai in part]
            if width > 0:
                sel = torch.tensor([r for r, _ in part], device=dev)
                pairs = [(layer.keys.index_select(0, sel), layer.values.index_select(0, sel)) for layer in cache.layers]
                a_ids = torch.full((len(part), width), pad, dtype=torch.long)
                a_mask = torch.zeros((len(part), width), dtype=torch.long)
                a_pos = torch.zeros((len(part), width), dtype=torch.long)
                for k, (r, ai) in enumerate(part):
                    a_ids[k, : len(ai) - 1] = torch.tensor(ai[:-1])
                    a_mask[k, : len(ai) - 1] = 1
                    a_pos[k] = torch.arange(p + len(tails[r]), p + len(tails[r]) + width)
                full_mask = torch.cat([mask[sel.cpu()], a_mask], dim=1)
                logits = self.model(
                    input_ids=a_ids.to(dev),
                    attention_mask=full_mask.to(dev),
                    position_ids=a_pos.to(dev),
                    use_cache=True,
                    **{cache_kwarg(self.model): DynamicCache(ddp_cache_data=pairs)},
                ).logits
                for k, (_, ai) in enumerate(part):
                    n = len(ai) - 1
                    if n:
                        lp = torch.log_softmax(logits[k, :n].float(), dim=-1)
                        tgt = torch.tensor(ai[1:], device=lp.device)
                        lps[k] += float(lp[torch.arange(n, device=lp.device), tgt].sum())
            for k, (r, ai) in enumerate(part):
                got[(chunk[r], ai)] = lps[k]
        return got


# --------------------------------------------------------------------------- openai


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions server (``vllm serve``, llama.cpp's server, OpenAI), through
    the one client (:mod:`sqltune.models.openai_client`) and its retry policy.

    Requests run ``concurrency`` at a time; after a request's last retry the run stops with an error naming
    the server (what was already written stays written); a request the server refuses (400, e.g. a prompt
    over its context) is that answer's error.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        retries: int = 4,
        timeout: float = 120.0,
        backoff: float = 0.5,
    ):
        from sqltune.models.openai_client import ChatClient, RetryPolicy

        self.model_name = model
        self.client = ChatClient(model, base_url, api_key, RetryPolicy(retries, backoff, timeout))
        self.base_url = self.client.base_url
        self.concurrency = concurrency
        self.parallel = concurrency

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "base_url": self.base_url,
            "concurrency": self.concurrency,
            "retries": self.client.policy.retries,
        }

    def _one(self, messages: list[dict[str, str]], temperature: float, params: GenParams, seed: int) -> Completion:
        r = self.client.complete(
            messages, max_tokens=params.max_new_tokens, temperature=temperature, top_p=params.top_p, seed=seed
        )
        if r.status == "unavailable":
            raise ModelError(f"{r.error}; check that it is running and that --base-url is right")
        if r.status == "refused":
            return Completion("", 0, 0, "error", r.error)
        return Completion(r.text, r.prompt_tokens, r.completion_tokens)

    def generate(self, prompts: list[list[dict[str, str]]], params: GenParams) -> list[list[Completion]]:
        return generate_per_request(self._one, prompts, params, self.concurrency)


# --------------------------------------------------------------------------- vllm


class VLLMBackend:
    """vLLM's offline engine (``pip install 'sqltune[vllm]'``, needs a GPU)."""

    name = "vllm"

    def __init__(self, model: str, precision: str = "auto", **engine_kwargs: Any):
        try:
            import vllm
        except ImportError:
            raise ModelError(
                "the vllm backend needs vLLM (pip install vllm, on a CUDA machine); use --backend hf or "
                "--backend openai with a running 'vllm serve' instead"
            ) from None
        from sqltune.models.load import _TORCH_NAMES, normalize_precision
        from sqltune.models.registry import resolve_model

        self.model_name = model
        self.where = resolve_model(model)
        p = normalize_precision(precision)
        self.llm = vllm.LLM(model=self.where, dtype=_TORCH_NAMES.get(p, "auto"), **engine_kwargs)
        self.version = vllm.__version__
        self.parallel = 64  # vLLM schedules any number; a server gathers this many per call

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "path": self.where, "vllm": self.version}

    def generate(self, prompts: list[list[dict[str, str]]], params: GenParams) -> list[list[Completion]]:
        from vllm import SamplingParams

        def sp(t: float, n: int, seed: int) -> Any:
            return SamplingParams(
                n=n,
                temperature=t,
                top_p=params.top_p,
                top_k=params.top_k or -1,
                max_tokens=params.max_new_tokens,
                seed=seed,
            )

        results: list[list[Completion]] = [[] for _ in prompts]
        outs = self.llm.chat(prompts, sp(params.temperature, 1, params.seed), use_tqdm=False)
        for i, o in enumerate(outs):
            c = o.outputs[0]
            results[i].append(Completion(c.text, len(o.prompt_token_ids), len(c.token_ids)))
        if params.num_samples > 1:
            outs = self.llm.chat(
                prompts, sp(params.sample_temperature, params.num_samples - 1, params.seed + 1), use_tqdm=False
            )
            for i, o in enumerate(outs):
                for c in o.outputs:
                    results[i].append(Completion(c.text, len(o.prompt_token_ids), len(c.token_ids)))
        return results
