"""LangChain (``pip install 'sqltune[langchain]'``): sqltune models and the ask engine where LangChain expects them.

* :class:`SqltuneChatModel`: any sqltune model (hf, llamacpp, vllm, openai backends), in-process,
  as a LangChain chat model (``invoke``, ``batch``, ``bind(stop=...)``, in chains and agents).
* :class:`SQLOutputParser`: model text -> the SQL, whatever wraps it (```sql fences,
  ``SQLQuery:`` prefixes, prose before or after), through sqltune's one extractor.
* :func:`sql_chain`: the LitGPT article's chain, question -> SQL -> execute -> answer, as a
  Runnable over any LangChain chat model (``ChatOpenAI(base_url=<sqltune serve>/v1)`` or
  :class:`SqltuneChatModel`) and a ``langchain_community`` ``SQLDatabase``. It *is* the ask
  engine: the prompt is sqltune's (the one the model was trained on, not LangChain's), the SQL
  runs read-only by the engine with a timeout and row/byte caps, an error is repaired with the
  error message, and when nothing runs the answer is an honest "I don't know" with the reason.
* :func:`ask_database_tool`: the ask engine as a LangChain tool (``ask_database``) for agents.

LangChain's own ``create_sql_query_chain`` (now in ``langchain_classic``) also works with
:class:`SqltuneChatModel` followed by :class:`SQLOutputParser`; its prompt, though, is
LangChain's, not the one a sqltune model was fine-tuned with.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.errors import ConfigError
from sqltune.extract import extract_sql
from sqltune.models.backends import Completion, GenParams
from sqltune.serve.ask import AskConfig, Database, ask, served_model

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.output_parsers import BaseOutputParser
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.runnables import Runnable, RunnableLambda
    from langchain_core.tools import StructuredTool
    from pydantic import ConfigDict, PrivateAttr
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImportError("sqltune's LangChain integration needs: pip install 'sqltune[langchain]'") from None

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool", "chat": "user"}


def to_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> the role/content dicts sqltune's backends take."""
    out = []
    for m in messages:
        role = getattr(m, "role", None) or _ROLES.get(m.type, "user")
        out.append({"role": role, "content": m.content if isinstance(m.content, str) else str(m.content)})
    return out


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    for s in stop or []:
        k = text.find(s)
        if k >= 0:
            text = text[:k]
    return text


class SqltuneChatModel(BaseChatModel):
    """A sqltune model, in-process, as a LangChain chat model.

    ``SqltuneChatModel(model="runs/quickstart/train")`` loads it with the hf backend;
    ``backend="llamacpp"`` with a ``.gguf``; or wrap a backend already loaded with
    ``SqltuneChatModel.from_backend(b)``."""

    model: str = "smollm2-135m"
    backend: str = "hf"
    max_new_tokens: int = 256
    temperature: float = 0.0
    backend_options: dict[str, Any] = {}

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _engine: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_backend(cls, engine: Any, **kwargs: Any) -> SqltuneChatModel:
        info = engine.info()
        m = cls(model=str(info.get("model", "")), backend=str(info.get("backend", "")), **kwargs)
        m._engine = engine
        return m

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from sqltune.models.backend_config import make_backend

            where = served_model(self.model)[0] if self.backend in ("hf", "llamacpp") else self.model
            self._engine = make_backend(self.backend, where, **self.backend_options)
        return self._engine

    @property
    def _llm_type(self) -> str:
        return "sqltune"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "max_new_tokens": self.max_new_tokens}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = GenParams(
            max_new_tokens=int(kwargs.get("max_tokens", self.max_new_tokens)),
            temperature=float(kwargs.get("temperature", self.temperature)),
            seed=int(kwargs.get("seed", 0)),
        )
        with self._lock:  # one model, one generate at a time (batch() calls come from threads)
            c: Completion = self.engine.generate([to_messages(messages)], params)[0][0]
        if c.status not in ("ok",):
            raise ValueError(f"sqltune model: {c.status}: {c.error}")
        text = _cut_at_stop(c.text, stop)
        usage = {"input_tokens": c.prompt_tokens, "output_tokens": c.completion_tokens}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        msg = AIMessage(content=text, usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=msg)])


class SQLOutputParser(BaseOutputParser[str]):
    """The SQL in a model's answer: fences, ``SQLQuery:`` prefixes and prose removed ("" when there is none)."""

    @property
    def _type(self) -> str:
        return "sqltune_sql"

    def parse(self, text: str) -> str:
        t = text.strip()
        for prefix in ("SQLQuery:", "SQL Query:", "SQL:", "Query:"):
            k = t.find(prefix)
            if k >= 0 and not extract_sql(t[:k]):
                t = t[k + len(prefix) :]
                break
        return extract_sql(t.strip().strip('"'))


class ChatModelBackend:
    """A sqltune generation backend over any LangChain chat model (ChatOpenAI, SqltuneChatModel, ...)."""

    name = "langchain"

    def __init__(self, llm: Any, concurrency: int = 4):
        self.llm = llm
        self.concurrency = concurrency

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "model": type(self.llm).__name__}

    def generate(self, prompts: list[list[dict[str, str]]], params: GenParams) -> list[list[Completion]]:
        jobs = []
        for i, m in enumerate(prompts):
            jobs.append((i, m, params.temperature))
            jobs += [(i, m, params.sample_temperature)] * (params.num_samples - 1)
        results: list[list[Completion]] = [[] for _ in prompts]
        by_temp: dict[float, list[tuple[int, list[dict[str, str]]]]] = {}
        for i, m, t in jobs:
            by_temp.setdefault(t, []).append((i, m))
        for t, group in by_temp.items():
            llm = self.llm.bind(temperature=t, max_tokens=params.max_new_tokens)
            outs = llm.batch(
                [[(x["role"], x["content"]) for x in m] for _, m in group],
                config={"max_concurrency": self.concurrency},
                return_exceptions=True,
            )
            for (i, _), o in zip(group, outs, strict=True):
                if isinstance(o, Exception):
                    results[i].append(Completion("", status="error", error=f"{type(o).__name__}: {o}"))
                else:
                    usage = getattr(o, "usage_metadata", None) or {}
                    results[i].append(
                        Completion(str(o.content), usage.get("input_tokens", 0), usage.get("output_tokens", 0))
                    )
        return results


def database_path(db: Any) -> str:
    """The database behind a ``SQLDatabase``, a :class:`Database`, a path or a URL: a SQLite path or a URL."""
    if isinstance(db, Database):
        return db.path
    if isinstance(db, str | Path):
        return str(db)
    engine = getattr(db, "_engine", None)
    if engine is None or not engine.url.database:
        raise ConfigError("give a SQLDatabase over a database, a Database, a SQLite path or a database URL")
    if engine.dialect.name == "sqlite":
        return engine.url.database
    # the URL as SQLAlchemy holds it; sqltune refuses one that carries a password, saying where it goes instead
    return engine.url.render_as_string(hide_password=False)


class _Asker:
    """The ask engine with its judge (one worker process, closed with the object)."""

    def __init__(self, db: Any, llm: Any, cfg: AskConfig, style: str | None, concurrency: int):
        from sqltune.judge import Judge

        cfg.validate()
        self.database = Database(database_path(db), cfg.allow_privileged_role)
        model_link = None
        if isinstance(llm, SqltuneChatModel):
            self.backend: Any = llm.engine  # in-process: batch through the backend itself
            style = style or served_model(llm.model)[1]
            model_link = prompts.trained_link(llm.model)
        else:
            self.backend = ChatModelBackend(llm, concurrency)
        # the model's prompt contract (schema style and schema linking), as the CLI serves it
        self.cfg = cfg
        self.style = prompts.choose_style(style, cfg.schema_style, True, model_link, cfg)
        self.judge = Judge(workers=1, timeout=cfg.timeout, allow_privileged_role=cfg.allow_privileged_role)
        weakref.finalize(self, self.judge.close)

    def __call__(self, question: str, evidence: str = "") -> dict[str, Any]:
        a = ask(question, self.database, self.backend, self.judge, self.cfg, evidence, self.style)
        d = a.to_dict()
        d["answer"] = _answer_text(a)
        return d


def _answer_text(a: Any) -> str:
    if not a.answered:
        return f"I don't know: {a.abstain_reason}"
    if not a.rows:
        return "No rows match."
    if len(a.rows) == 1 and len(a.columns) == 1:
        return str(a.rows[0][0])
    shown = a.rows[:10]
    lines = [" | ".join(a.columns)] + [" | ".join("NULL" if v is None else str(v) for v in r) for r in shown]
    more = f"\n... {len(a.rows) - len(shown)} more rows" if len(a.rows) > len(shown) else ""
    return "\n".join(lines) + more + (" (cut at the row cap)" if a.truncated else "")


ANSWER_PROMPT = (
    "Given the following user question, corresponding SQL query, and SQL result, answer the user question.\n\n"
    "Question: {question}\nSQL Query: {sql}\nSQL Result: {result}\nAnswer: "
)
"""The article's answer prompt, for ``sql_chain(..., answer_llm=...)``."""


def sql_chain(
    llm: Any,
    db: Any,
    cfg: AskConfig | None = None,
    schema_style: str | None = None,
    answer_llm: Any = None,
    concurrency: int = 4,
) -> Runnable:
    """question -> SQL -> execute (read-only) -> answer, as a Runnable.

    Input: a question string, or ``{"question": ..., "evidence"?: ...}``. Output: the ask engine's
    answer as a dict (``sql``, ``columns``, ``rows``, ``truncated``, ``answered``, ``abstain_reason``,
    ``attempts``, ``timings``) plus ``answer``: the result in words (one value as itself, a few rows
    as a table, "I don't know: <why>"), or phrased by ``answer_llm`` with the article's prompt."""
    asker = _Asker(db, llm, cfg or AskConfig(), schema_style, concurrency)

    def run(inp: Any) -> dict[str, Any]:
        q = inp if isinstance(inp, str) else inp["question"]
        ev = "" if isinstance(inp, str) else inp.get("evidence", "")
        out = asker(q, ev)
        if answer_llm is not None and out["answered"]:
            prompt = ANSWER_PROMPT.format(question=q, sql=out["sql"], result=out["rows"][:20])
            out["answer"] = str(answer_llm.invoke(prompt).content).strip()
        return out

    chain = RunnableLambda(run, name="sqltune_sql_chain")
    # keeps the judge alive as long as the chain
    chain._sqltune_asker = asker  # type: ignore[attr-defined]
    return chain


def ask_database_tool(llm: Any, db: Any, cfg: AskConfig | None = None, schema_style: str | None = None) -> Any:
    """The ask engine as a LangChain tool named ``ask_database`` (read-only, time-limited)."""
    asker = _Asker(db, llm, cfg or AskConfig(), schema_style, 4)

    def ask_database(question: str, evidence: str = "") -> dict[str, Any]:
        out = asker(question, evidence)
        keep = ("answered", "answer", "sql", "columns", "rows", "truncated", "abstain_reason", "vote_share")
        return {k: out[k] for k in keep}

    tool = StructuredTool.from_function(
        ask_database,
        name="ask_database",
        description=(
            f"Answer a question about the SQLite database '{asker.database.name}' "
            f"(tables: {', '.join(t.name for t in asker.database.schema.tables)}): returns the SQL it ran "
            "(read-only) and the rows, or 'I don't know' with the reason."
        ),
    )
    tool.metadata = {"read_only": True, "asker": asker}
    return tool
