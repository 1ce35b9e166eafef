"""What every generation backend shares: the sampling settings (:class:`GenParams`), one answer
(:class:`Completion`), the interface (:class:`Backend`) and the per-request fan-out of the backends that take one
request per candidate (openai, llamacpp). The backends import this module; it imports none of them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

BACKENDS = ("hf", "openai", "vllm", "llamacpp")

LLAMACPP_SLOTS = 8
"""llamacpp's default parallel sequences: on 2 CPU cores the demo split ran 2.7-3.0 questions/s with 8 slots, 1.9 with
4 and 2.3-2.6 with 16 (``benchmarks/gguf_llamacpp.py``)."""


@dataclass(frozen=True)
class GenParams:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0
    num_samples: int = 1  # candidates per question: the first greedy, the others sampled
    sample_temperature: float = 0.7
    seed: int = 0
    stop_after_sql: bool = False
    """hf: end an answer once it holds a closed fenced SQL block, the one ``extract_sql`` takes from a
    non-CoT answer (what would follow cannot change it); off for chain of thought and chat."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    status: str = "ok"  # ok | prompt_too_long | error
    error: str = ""
    grounded: int = 0
    """Decoding steps value grounding restricted (:mod:`sqltune.models.grounding`; hf only)."""


def generate_per_request(
    one: Any, prompts: list[list[dict[str, str]]], params: GenParams, workers: int
) -> list[list[Completion]]:
    """For backends that take one request per candidate (openai, llamacpp): every prompt's first
    candidate at ``temperature``, its extra samples at ``sample_temperature`` with their own seeds,
    ``workers`` requests in flight; ``one(messages, temperature, params, seed)`` answers one."""
    jobs = []
    for i, m in enumerate(prompts):
        jobs.append((i, m, params.temperature, params.seed))
        for k in range(params.num_samples - 1):
            jobs.append((i, m, params.sample_temperature, params.seed + 1 + k))
    results: list[list[Completion]] = [[] for _ in prompts]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(one, m, t, params, s) for (_, m, t, s) in jobs]
        for (i, *_), f in zip(jobs, futures, strict=True):
            results[i].append(f.result())
    return results


class Backend(Protocol):
    name: str

    def generate(self, prompts: list[list[dict[str, str]]], params: GenParams) -> list[list[Completion]]: ...

    def info(self) -> dict[str, Any]: ...
