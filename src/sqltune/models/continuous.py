"""Continuous batching for the hf backend: what ``sqltune serve`` generates with.

A batch made of whoever asked together runs as long as its longest answer, and a question back
for a repair waits for the next batch. Here every request has a row of its own in one running
batch (``slots`` rows at most): a request joins as soon as a row is free, its answer leaves the
batch the step it ends, and each decode step runs exactly the rows in flight, so one client alone
costs what it would cost without batching. Requests come from any thread
(:meth:`ContinuousHF.generate` blocks its caller); one thread drives the model.

The keys and values live in one preallocated tensor per layer (``[rows, kv_heads, length,
head_dim]``, written in place like transformers' ``StaticCache``): every row writes its next
token at the same slot ``w``; a row's own tokens start where it joined, its positions are its
own, and a boolean mask lets each row see only its slots. When ``w`` reaches the end, the slots
in use move back to the start (a copy of the live window, rare).

Prompts that share a beginning (one database's system prompt and schema; a repair turn's first
messages) reuse its keys and values: the engine keeps the last ``prefixes`` prompts' caches and
computes only the part of a new prompt that none of them holds.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqltune.models.backends import prompt_too_long, sql_block_ends
from sqltune.models.generation import Completion, GenParams
from sqltune.models.kvcache import cache_kwarg, common_length

MIN_REUSED_PREFIX = 16
"""Tokens a new prompt must share with a kept one before its keys and values are reused."""


@dataclass
class _Request:
    prompt: list[int]
    max_new: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    stop_after_sql: bool
    guide: Any = None
    """The answer's :class:`sqltune.models.grounding.ValueGuide` (None: not grounded)."""
    future: Future[list[int]] = field(default_factory=Future)
    """The answer's token ids."""


@dataclass
class _Row:
    req: _Request
    start: int  # the slot of the row's first token
    pos: int  # the position of the next token to run
    last: int  # the token to run next
    out: list[int] = field(default_factory=list)
    gen: Any = None  # the sampler's torch.Generator (None: greedy)
    warp: Any = None  # transformers' logits warpers for a sampled row


class _Slots:
    """Every layer's keys and values for the rows in flight, and where they are."""

    def __init__(self, n_layers: int, rows: int, heads: int, dim: int, length: int, dtype: Any, device: Any):
        import torch

        def block() -> Any:
            return torch.zeros((rows, heads, length, dim), dtype=dtype, device=device)

        self.k = [block() for _ in range(n_layers)]
        self.v = [block() for _ in range(n_layers)]
        self.rows, self.heads, self.dim, self.length = rows, heads, dim, length
        self.dtype, self.device = dtype, device
        self.w = 0  # the slot the next step writes
        self.lo = 0  # the first slot a row in flight reads
        self._cache: Any = None

    def move(self, n: int, src: int, dst: int, width: int) -> None:
        """Slots [src, src + width) of the first ``n`` rows to [dst, dst + width)."""
        for t in (*self.k, *self.v):
            t[:n, :, dst : dst + width] = t[:n, :, src : src + width].clone()

    def grow(self, n: int, length: int) -> None:
        """Room for ``length`` slots, keeping the first ``n`` rows' slots [0, w)."""
        import torch

        for group in (self.k, self.v):
            for i, t in enumerate(group):
                new = torch.zeros((self.rows, self.heads, length, self.dim), dtype=self.dtype, device=self.device)
                new[:n, :, : self.w] = t[:n, :, : self.w]
                group[i] = new
        self.length = length

    def copy_row(self, src: int, dst: int, start: int) -> None:
        for t in (*self.k, *self.v):
            t[dst, :, start : self.w] = t[src, :, start : self.w]

    def cache(self) -> Any:
        """A transformers ``Cache`` over these tensors for the decode steps (made once: its layers
        read ``w``, ``lo`` and the tensors as they are at each step)."""
        if self._cache is not None:
            return self._cache
        from transformers.cache_utils import Cache, CacheLayerMixin

        slots = self

        class SlotLayer(CacheLayerMixin):  # type: ignore[no-untyped-call]
            def __init__(self, i: int):
                super().__init__()  # type: ignore[no-untyped-call]
                self.i, self.is_initialized = i, True

            def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
                pass

            def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
                n, w = key_states.shape[0], slots.w
                k, v = slots.k[self.i], slots.v[self.i]
                k[:n, :, w] = key_states[:, :, 0]
                v[:n, :, w] = value_states[:, :, 0]
                return k[:n, :, slots.lo : w + 1], v[:n, :, slots.lo : w + 1]

            def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
                return slots.w + 1 - slots.lo, 0

            def get_seq_length(self) -> int:
                return slots.w

            def get_max_length(self) -> int:
                return slots.length

        self._cache = Cache(layers=[SlotLayer(i) for i in range(len(self.k))])
        return self._cache


class ContinuousHF:
    """The hf backend behind a continuous batch: :meth:`generate` from any number of threads at once.

    ``slots``: rows decoded together at most; ``length``: the slots first allocated per row (more
    when a prompt needs them); ``prefixes``: prompts whose keys and values are kept for reuse."""

    continuous = True
    """Requests from any number of threads join one running batch (serve puts questions on threads)."""

    name = "hf"

    def __init__(self, backend: Any, slots: int = 16, length: int = 1024, prefixes: int = 16):
        self.backend, self.model, self.tokenizer = backend, backend.model, backend.tokenizer
        self.model_name = backend.model_name
        self.slots, self.length, self.n_prefixes = slots, length, prefixes
        self.eos = set(backend.eos_ids)
        self.cache_arg = cache_kwarg(self.model)  # the forward's name for its cache argument
        self.lock = threading.Lock()  # the model: held for each step, and by stream() for its whole answer
        self.q: queue.Queue[_Request | None] = queue.Queue()  # None: close
        self.rows: list[_Row] = []
        self.prefixes: OrderedDict[tuple[int, ...], list[tuple[Any, Any]]] = OrderedDict()
        self.store: _Slots | None = None
        self.steps = 0  # decode steps run
        self.row_steps = 0  # rows decoded, summed over the steps
        self.widest = 0  # most rows in one step
        self.prefilled = self.reused = 0  # prompt tokens computed, and taken from a kept prefix
        self.closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="sqltune-continuous")
        self._thread.start()

    def info(self) -> dict[str, Any]:
        return {**self.backend.info(), "continuous": True, "slots": self.slots}

    def close(self) -> None:
        """End the batch's thread once the answers asked for are delivered, and free its keys and values
        (the backend's model stays loaded: it is the caller's). Generating after this is an error."""
        self.closed = True
        self.q.put(None)
        self._thread.join()
        self.store, self.prefixes = None, OrderedDict()

    def stats(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "rows_per_step": round(self.row_steps / self.steps, 2) if self.steps else 0.0,
            "most_rows": self.widest,
            "prompt_tokens_computed": self.prefilled,
            "prompt_tokens_reused": self.reused,
        }

    # ----------------------------------------------------------------------------- requests

    grounds_values = True

    def generate(
        self, prompts: list[list[dict[str, str]]], params: GenParams, grounding: list[Any] | None = None
    ) -> list[list[Completion]]:
        """Like :meth:`HFBackend.generate`: per prompt, the first candidate at ``temperature``, then
        ``num_samples - 1`` samples at ``sample_temperature`` (seeds ``seed + 1 + k``); ``grounding``: per
        prompt, its database's values for literals (:mod:`sqltune.models.grounding`)."""
        from sqltune.models.load import encode_prompt

        if self.closed:
            raise RuntimeError("this continuous batch is closed")
        results: list[list[Completion]] = []
        waits: list[tuple[int, int, _Request]] = []
        for i, messages in enumerate(prompts):
            ids = encode_prompt(self.tokenizer, messages)
            refused = prompt_too_long(self.backend, len(ids), params)
            results.append([refused] if refused else [])
            if refused:
                continue
            for k in range(params.num_samples):
                temp = params.temperature if k == 0 else params.sample_temperature
                req = _Request(
                    ids,
                    params.max_new_tokens,
                    temp,
                    params.top_p,
                    params.top_k,
                    params.seed + k,
                    params.stop_after_sql,
                    self.backend._guides(grounding[i], 1)[0] if grounding is not None else None,
                )
                waits.append((i, len(ids), req))
        for _, _, req in waits:  # queued together, once every prompt is encoded
            self.q.put(req)
        for i, n, req in waits:
            toks = req.future.result()
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            results[i].append(Completion(text, n, len(toks), grounded=req.guide.steps if req.guide else 0))
        return results

    scores_answers = True

    def score(self, prompts: list[list[dict[str, str]]], answers: list[list[str]]) -> list[list[float]]:
        """:meth:`HFBackend.score`, between the batcher's steps (the model is held while it runs)."""
        with self.lock:
            return self.backend.score(prompts, answers)  # type: ignore[no-any-return]

    def stream(self, messages: list[dict[str, str]], params: GenParams) -> Any:
        """One answer piece by piece (the hf backend's streamer), the batch paused meanwhile."""
        with self.lock:
            yield from self.backend.stream(messages, params)

    # ----------------------------------------------------------------------------- the loop

    def _loop(self) -> None:
        import torch

        waiting: deque[_Request] = deque()
        closing = False
        while True:
            if not self.rows and not waiting:
                if closing:
                    return
                got = self.q.get()
                if got is None:
                    return
                waiting.append(got)
            with self.lock, torch.inference_mode():
                # drained after the lock is held: what arrived while a stream held it joins this step
                while True:
                    try:
                        got = self.q.get_nowait()
                    except queue.Empty:
                        break
                    if got is None:
                        closing = True  # the rows in flight and those waiting finish first
                    else:
                        waiting.append(got)
                try:
                    while waiting and len(self.rows) < self.slots:
                        req = waiting.popleft()
                        try:
                            self._admit(req)
                        except Exception as e:  # this request's failure, reported to it alone
                            req.future.set_exception(e)
                    if self.rows:
                        self._step()
                except Exception as e:  # the batch's failure: reported to every row in flight, never lost
                    for row in self.rows:
                        if not row.req.future.done():
                            row.req.future.set_exception(e)
                    self.rows = []
                    self.store = None

    def _ensure_store(self, need: int) -> _Slots:
        if self.store is None:
            cfg = self.model.config
            heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
            dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            p = next(self.model.parameters())
            self.store = _Slots(
                cfg.num_hidden_layers, self.slots, heads, dim, max(self.length, need), p.dtype, p.device
            )
        elif self.store.length < need:
            self.store.grow(len(self.rows), max(need, 2 * self.store.length))
        return self.store

    def _prefill(self, prompt: list[int]) -> tuple[list[tuple[Any, Any]], Any]:
        """The prompt's keys and values ([1, heads, P, dim] per layer) and its last logits, from the
        longest kept prefix on."""
        import torch
        from transformers import DynamicCache

        best, have = None, 0
        for key in self.prefixes:
            c = common_length([key, prompt], len(prompt) - 1)  # the last token always runs
            if c > have:
                best, have = key, c
        kwargs: dict[str, Any] = {}
        if best is not None and have >= MIN_REUSED_PREFIX:
            self.prefixes.move_to_end(best)
            kept = self.prefixes[best]
            kwargs[self.cache_arg] = DynamicCache(ddp_cache_data=[(k[:, :, :have], v[:, :, :have]) for k, v in kept])
        else:
            have = 0
        dev = self.store.device if self.store is not None else next(self.model.parameters()).device
        ids = torch.tensor([prompt[have:]], dtype=torch.long, device=dev)
        pos = torch.arange(have, len(prompt), device=dev)[None]
        out = self.model(input_ids=ids, position_ids=pos, use_cache=True, logits_to_keep=1, **kwargs)
        cache = getattr(out, "cache", None) or out.past_key_values
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        self.prefilled += len(prompt) - have
        self.reused += have
        self.prefixes[tuple(prompt)] = kv
        while len(self.prefixes) > self.n_prefixes:
            self.prefixes.popitem(last=False)
        return kv, out.logits[0, -1]

    def _admit(self, req: _Request) -> None:
        """Prefill a request's prompt and give it the next row."""
        import torch

        P = len(req.prompt)
        kv, logits = self._prefill(req.prompt)
        row = _Row(req, 0, P, 0)
        if req.temperature > 0:
            from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

            row.gen = torch.Generator(device=logits.device).manual_seed(req.seed)
            warpers: list[Any] = [TemperatureLogitsWarper(req.temperature)]
            if req.top_k:
                warpers.append(TopKLogitsWarper(req.top_k))
            if req.top_p < 1.0:
                warpers.append(TopPLogitsWarper(req.top_p))
            row.warp = LogitsProcessorList(warpers)
        if self._take(row, self._pick(row, logits)):
            return  # done at its first token
        s = self._ensure_store(P + req.max_new + 1)
        n = len(self.rows)
        if s.w < P:  # room on the left for the prompt: the rows in flight move right
            d = P - s.w
            if s.w + d + req.max_new + 1 > s.length:
                s.grow(n, 2 * s.length + d)
            if n:
                s.move(n, s.lo, s.lo + d, s.w - s.lo)
            for r in self.rows:
                r.start += d
            s.lo += d
            s.w = P
        row.start = s.w - P
        for i, (k, v) in enumerate(kv):
            s.k[i][n, :, row.start : s.w] = k[0]
            s.v[i][n, :, row.start : s.w] = v[0]
        s.lo = row.start if n == 0 else min(s.lo, row.start)
        self.rows.append(row)

    def _step(self) -> None:
        """One token for every row in flight."""
        import torch

        s = self.store
        assert s is not None
        n = len(self.rows)
        if s.w >= s.length:  # the end: the live window moves back to the first slot
            width = s.w - s.lo
            s.move(n, s.lo, 0, width)
            for r in self.rows:
                r.start -= s.lo
            s.w, s.lo = width, 0
        starts = torch.tensor([r.start - s.lo for r in self.rows], device=s.device)
        mask = (torch.arange(s.w + 1 - s.lo, device=s.device)[None] >= starts[:, None])[:, None, None, :]
        ids = torch.tensor([[r.last] for r in self.rows], dtype=torch.long, device=s.device)
        pos = torch.tensor([[r.pos] for r in self.rows], dtype=torch.long, device=s.device)
        out = self.model(
            input_ids=ids,
            position_ids=pos,
            attention_mask=mask,
            use_cache=True,
            logits_to_keep=1,
            **{self.cache_arg: s.cache()},
        )
        s.w += 1
        self.steps += 1
        self.row_steps += n
        self.widest = max(self.widest, n)
        logits = out.logits[:, -1]
        finished = []
        for i, r in enumerate(self.rows):
            r.pos += 1
            if self._take(r, self._pick(r, logits[i])):
                finished.append(i)
        for i in reversed(finished):  # the last row in flight takes a finished row's place
            last = len(self.rows) - 1
            if i != last:
                s.copy_row(last, i, self.rows[last].start)
                self.rows[i] = self.rows[last]
            self.rows.pop()
        if self.rows:
            s.lo = min(r.start for r in self.rows)
        else:
            s.w = s.lo = 0

    def _pick(self, row: _Row, logits: Any) -> int:
        import torch

        if row.req.guide is not None:
            from sqltune.models.grounding import mask_scores

            allowed, banned = row.req.guide.allowed(self.tokenizer.decode(row.out, skip_special_tokens=True))
            if allowed is not None or banned is not None:
                logits = mask_scores(logits, allowed, banned)
        if row.gen is None:
            return int(torch.argmax(logits))
        scores = row.warp(None, logits.float()[None])
        return int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=row.gen)[0, 0])

    def _take(self, row: _Row, tok: int) -> bool:
        """Add a token to the row's answer; True when the answer is complete (then it is delivered)."""
        done = tok in self.eos
        if not done:
            row.out.append(tok)
            row.last = tok
            done = len(row.out) >= row.req.max_new
            if not done and row.req.stop_after_sql:
                done = sql_block_ends(self.tokenizer, row.out, self.backend._closer_ids())
        if done:
            row.req.future.set_result(row.out)
        return done


def continuous_engine(backend: Any, slots: int) -> Any:
    """``backend`` behind a continuous batch of ``slots`` rows where it can be (the hf backend, not in 4-bit),
    else ``backend`` itself: what ``predict`` and ``serve`` decode with."""
    from sqltune.models.backends import HFBackend

    if isinstance(backend, HFBackend) and not backend.load_in_4bit:
        return ContinuousHF(backend, slots=slots)
    return backend


__all__ = ["ContinuousHF", "continuous_engine"]
