"""The ONE place prompts are built: training records, prediction and serving all call this.

A prompt is the Llama cookbook's text-to-SQL chat format::

    system:    SYSTEM_PROMPT
    user:      -- DB Schema: <schema>\\n\\n-- External Knowledge: <evidence>\\n\\n-- Question: <question>
    assistant: <gold SQL>

The schema is rendered from the live database in one of three styles:

* ``ddl``: the CREATE TABLE statements stored in the database, joined by blank lines
  (exactly what the cookbook puts in its prompts);
* ``text``: DB-GPT-Hub's prose ("Table X has columns such as ...; K is the primary key;
  the F of A is the foreign key of G of B");
* ``compact``: one line per table, ``singer(singer_id PK, name, country, age)``, then one
  line per foreign key, ``concert.stadium_id -> stadium.stadium_id``. About a third of the
  DDL's tokens on Spider, which makes small models train and generate much faster.

Optional parts, in every style: N sample rows per table, and column descriptions (BIRD's
``database_description``) rendered as comments.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqltune.db.schema import Schema, Table
from sqltune.errors import ConfigError
from sqltune.linking.link import Linked, LinkSettings, link, prepare, value_query, with_categories
from sqltune.linking.names import short_names

SYSTEM_PROMPT = (
    "You are a text to SQL query translator. Using the SQLite DB Schema and the External Knowledge, "
    "translate the following text question into a SQLite SQL select statement."
)
COT_SYSTEM_PROMPT = (
    "You are a text to SQL query translator. Using the SQLite DB Schema and the External Knowledge, "
    "generate the step-by-step reasoning and the final SQLite SQL select statement from the text question."
)
"""The Llama cookbook's system prompt for chain-of-thought answers (create_reasoning_dataset.py)."""

ENGINE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL", "duckdb": "DuckDB"}
"""How the system prompt names each engine's SQL dialect."""


def system_prompt(dialect: str = "sqlite", cot: bool = False) -> str:
    """The system prompt for ``dialect`` (an engine name): the cookbook's text, with the engine named where it
    says SQLite; for SQLite it is the cookbook's text byte for byte."""
    text = COT_SYSTEM_PROMPT if cot else SYSTEM_PROMPT
    return text if dialect == "sqlite" else text.replace("SQLite", ENGINE_NAMES.get(dialect, dialect))


_I = " " * 8  # the cookbook's prompt is an indented triple-quoted string; its indentation is part of the text
TEACHER_PROMPT = (
    "\n" + _I + "You are a text to SQL query translator. Based on the DB Schema and External Knowledge, given the "
    "Text Question Input and its Gold SQL Output below, generate the step-by-step reasoning to infer the Gold SQL "
    "Output from the Text Question Input.\n\n"
    + _I
    + "-- DB Schema: {db_schema}\n"
    + _I
    + "-- External Knowledge: {external_knowledge}\n"
    + _I
    + "-- Text Question Input: {question}\n"
    + _I
    + "-- Gold SQL Output: {gold_SQL}\n\n"
    + _I
    + "Your response should be as follows:\n\n\n"
    + _I
    + "Let me think through this step by step:\n\n1. First, I need to consider...\n2. Then...\n3. Next...\n"
    "...\n\nFinally, the SQL statement for the text question is: \n" + _I + "```sql ...```\n\n\n" + _I
)
"""The cookbook's teacher prompt (create_reasoning_dataset.py), character for character."""

COT_FINAL = "Finally, the SQL statement for the text question is: "
"""The line before the SQL block in the cookbook's reasoning answers."""

QUESTION_WRITER_PROMPT = (
    "You write the questions that people who use a database ask about it.\n\n"
    "-- DB Schema: {db_schema}\n\n"
    "-- SQL: {sql}\n\n"
    "-- Its result ({columns}), first rows: {rows}\n\n"
    "Write the one question, in plain everyday words, whose exact answer is this SQL's result. "
    "Say what the SQL asks, no more and no less; keep its values as they are written in it; "
    "do not mention SQL, tables or column identifiers. Reply with the question only."
)
"""What a teacher LLM is asked to write a synthesized query's question from (``sqltune data synth
--teacher openai``); the question is kept only when SQL derived back from it returns the same result."""

SCHEMA_STYLES = ("ddl", "text", "compact")
RECORD_FORMATS = ("chat", "alpaca")

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _ident(name: str) -> str:
    return name if _PLAIN.match(name) else "`" + name.replace("`", "``") + "`"


def _cell(v: Any, width: int = 40) -> str:
    s = "NULL" if v is None else (f"<{len(v)} bytes>" if isinstance(v, bytes) else str(v))
    s = " ".join(s.split())
    return s if len(s) <= width else s[: width - 3] + "..."


def _rows_block(t: Table) -> str:
    cols = list(t.sample_columns)
    lines = [" | ".join(cols)] + [" | ".join(_cell(v) for v in r) for r in t.sample_rows]
    return f"/* {len(t.sample_rows)} example rows from {t.name}:\n" + "\n".join(lines) + "\n*/"


def _desc_block(t: Table) -> str:
    lines = []
    for c in t.columns:
        if not (c.description or c.value_description):
            continue
        text = c.description
        if c.value_description:
            text = f"{text}; values: {c.value_description}" if text else f"values: {c.value_description}"
        lines.append(f"-- {t.name}.{c.name}: {text}")
    return "\n".join(lines)


def _quote_all(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _values_block(t: Table) -> str:
    """Every value of the columns that hold few (``Column.categories``), and the values the question
    names (schema linking's value index), beside their columns."""
    return "\n".join(
        f"-- {t.name}.{c.name} is one of: {_quote_all(c.categories)}"
        if c.categories
        else f"-- {t.name}.{c.name} has values such as: {_quote_all(c.values)}"
        for c in t.columns
        if c.values or c.categories
    )


def _ddl_of(t: Table, schema: Schema) -> str:
    if t.ddl:
        return t.ddl
    cols = [f"  {_ident(c.name)} {c.type}".rstrip() for c in t.columns]
    pks = t.primary_keys
    if pks:
        cols.append(f"  PRIMARY KEY ({', '.join(_ident(p) for p in pks)})")
    for fk in schema.foreign_keys:
        if fk.table == t.name:
            cols.append(
                f"  FOREIGN KEY ({_ident(fk.column)}) REFERENCES {_ident(fk.ref_table)}({_ident(fk.ref_column)})"
            )
    return f"CREATE TABLE {_ident(t.name)} (\n" + ",\n".join(cols) + "\n)"


def _render_ddl(schema: Schema) -> str:
    parts = []
    for t in schema.tables:
        block = _ddl_of(t, schema)
        if schema.has_descriptions and (d := _desc_block(t)):
            block += "\n" + d
        if v := _values_block(t):
            block += "\n" + v
        if t.sample_rows:
            block += "\n" + _rows_block(t)
        parts.append(block)
    return "\n\n".join(parts)


def _render_text(schema: Schema) -> str:
    out = f"{schema.db_id} contains tables such as {', '.join(t.name for t in schema.tables)}. "
    for t in schema.tables:
        out += f"Table {t.name} has columns such as {', '.join(c.name for c in t.columns)}. "
        for pk in t.primary_keys:
            out += f"{pk} is the primary key.\n"
        if schema.has_descriptions and (d := _desc_block(t)):
            out += d + "\n"
        if v := _values_block(t):
            out += v + "\n"
        if t.sample_rows:
            out += _rows_block(t) + "\n"
    for fk in schema.foreign_keys:
        out += f"The {fk.column} of {fk.table} is the foreign key of {fk.ref_column} of {fk.ref_table}.\n"
    return out.strip()


def _render_compact(schema: Schema) -> str:
    lines = []
    for t in schema.tables:
        cols = ", ".join(_ident(c.name) + (" PK" if c.primary_key else "") for c in t.columns)
        lines.append(f"{_ident(t.name)}({cols})")
        if schema.has_descriptions and (d := _desc_block(t)):
            lines.append(d)
        if v := _values_block(t):
            lines.append(v)
        if t.sample_rows:
            lines.append(_rows_block(t))
    for fk in schema.foreign_keys:
        lines.append(f"{_ident(fk.table)}.{_ident(fk.column)} -> {_ident(fk.ref_table)}.{_ident(fk.ref_column)}")
    return "\n".join(lines)


_RENDERERS = {"ddl": _render_ddl, "text": _render_text, "compact": _render_compact}


def render_schema(schema: Schema, style: str = "ddl") -> str:
    """Render a schema in one of SCHEMA_STYLES."""
    try:
        return _RENDERERS[style](schema)
    except KeyError:
        raise ConfigError(f"unknown schema style {style!r}; choose one of: {', '.join(SCHEMA_STYLES)}") from None


_CATEGORISED: dict[tuple[int, int, int], tuple[Schema, Any, Schema]] = {}


def _categorised(schema: Schema, index: Any, n: int) -> Schema:
    """``schema`` with every value of its few-valued columns (``index.categories(n)``), made once per schema,
    index and n: the linker's ranking models are cached per schema object, so every question gets the same one."""
    key = (id(schema), id(index), n)
    hit = _CATEGORISED.get(key)
    if hit is not None and hit[0] is schema and hit[1] is index:
        return hit[2]
    out = with_categories(schema, index.categories(n))
    if len(_CATEGORISED) >= 64:
        _CATEGORISED.pop(next(iter(_CATEGORISED)))
    _CATEGORISED[key] = (schema, index, out)
    return out


def _linked_schema(schema: Schema, settings: LinkSettings, index: Any) -> Schema:
    """The schema the linker ranks: with every value of its few-valued columns when ``settings`` shows them."""
    return _categorised(schema, index, settings.categories) if settings.categories and index is not None else schema


def prepare_linking(schema: Schema, settings: LinkSettings | None, index: Any = None) -> None:
    """Build before the first question what :func:`question_schema` builds once for ``schema`` with
    ``settings`` (the linker's ranking state and column vectors: :func:`sqltune.linking.link.prepare`)."""
    if settings is not None and settings.active:
        prepare(_linked_schema(schema, settings, index), settings)


def question_schema(
    schema: Schema,
    question: str,
    evidence: str = "",
    style: str = "ddl",
    settings: LinkSettings | None = None,
    index: Any = None,
    counter: Any = None,
    dialect: str = "sqlite",
    cot: bool = False,
) -> tuple[str, Linked | None]:
    """The schema text of one question's prompt: the whole schema in ``style``, or, with schema linking
    (``settings``), what :func:`sqltune.linking.link.link` keeps for this question, with the values the
    question names from ``index`` (a :class:`sqltune.linking.values.ValueIndex`). Training (``data build``)
    and serving call this same function with the same settings, so both build the same prompt.

    ``counter``: a :class:`sqltune.models.load.TokenCounter`, needed by the ``budget`` mode."""
    if settings is None or not settings.active:
        return render_schema(schema, style), None
    schema = _linked_schema(schema, settings, index)
    hits = index.lookup(value_query(question, evidence)) if (index is not None and settings.values) else []

    def fits(s: Schema) -> bool:
        msgs = prompt_messages(render_schema(s, style), question, evidence, cot=cot, dialect=dialect)
        return bool(counter.count(msgs) <= settings.budget)

    linked = link(schema, question, evidence, settings, hits, fits if counter is not None else None, index)
    if not settings.short_names:
        return render_schema(linked.schema, style), linked
    best_first = list(dict.fromkeys(c["table"] for c in linked.columns if c["kept"]))  # by their best column
    shown, linked.names = short_names(linked.schema, best_first)
    return render_schema(shown, style), linked


def user_prompt(schema_text: str, question: str, evidence: str = "") -> str:
    """The user turn, byte for byte the cookbook's (the knowledge line is kept when empty)."""
    return f"-- DB Schema: {schema_text}\n\n-- External Knowledge: {evidence}\n\n-- Question: {question}"


def prompt_messages(
    schema_text: str, question: str, evidence: str = "", cot: bool = False, dialect: str = "sqlite"
) -> list[dict[str, str]]:
    """System and user turns: what the model sees at inference and before the answer in training.

    ``cot``: the chain-of-thought system prompt (the model reasons, then writes the SQL block).
    ``dialect``: the engine whose SQL to write (the system prompt names it)."""
    return [
        {"role": "system", "content": system_prompt(dialect, cot)},
        {"role": "user", "content": user_prompt(schema_text, question, evidence)},
    ]


def chat_record(schema_text: str, question: str, evidence: str, sql: str, dialect: str = "sqlite") -> dict[str, Any]:
    """A training record in chat format: ``{"messages": [system, user, assistant]}``."""
    msgs = prompt_messages(schema_text, question, evidence, dialect=dialect)
    return {"messages": [*msgs, {"role": "assistant", "content": sql}]}


def alpaca_record(schema_text: str, question: str, evidence: str, sql: str, dialect: str = "sqlite") -> dict[str, Any]:
    """A training record in alpaca format, with the same texts as the chat format."""
    return {
        "instruction": system_prompt(dialect),
        "input": user_prompt(schema_text, question, evidence),
        "output": sql,
    }


def messages_from_record(record: dict[str, Any], cot: bool = False) -> list[dict[str, str]]:
    """The prompt turns (no answer) of a chat or alpaca record, for inference.

    ``cot``: with the chain-of-thought system prompt in place of the record's own."""
    if "messages" in record:
        turns = [m for m in record["messages"] if m.get("role") != "assistant"]
    elif "instruction" in record:
        turns = [
            {"role": "system", "content": record["instruction"]},
            {"role": "user", "content": record.get("input", "")},
        ]
    else:
        raise ConfigError("record has neither 'messages' (chat format) nor 'instruction' (alpaca format)")
    if cot:
        turns = [{"role": "system", "content": COT_SYSTEM_PROMPT}] + [m for m in turns if m["role"] != "system"]
    return turns


def without_question(messages: list[dict[str, str]], question: str) -> list[dict[str, str]] | None:
    """The prompt with its question left out (the last user turn's last occurrence of it removed), all else
    as built: what the query bank's chooser scores an answer against to learn how likely the model finds it
    whatever the question (:data:`sqltune.linking.bank.PRIOR`). None where the question is not in that turn."""
    at = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    if at is None or not question:
        return None
    text = messages[at]["content"]
    cut = text.rfind(question)
    if cut < 0:
        return None
    out = [dict(m) for m in messages]
    out[at]["content"] = text[:cut] + text[cut + len(question) :]
    return out


def answer_from_record(record: dict[str, Any]) -> str:
    if "messages" in record:
        return next((m["content"] for m in record["messages"] if m.get("role") == "assistant"), "")
    return str(record.get("output", ""))


def teacher_prompt(db_schema: str, question: str, evidence: str, gold_sql: str) -> str:
    """The cookbook's teacher prompt filled in (by plain replacement, as the cookbook does)."""
    return (
        TEACHER_PROMPT.replace("{db_schema}", db_schema)
        .replace("{external_knowledge}", evidence)
        .replace("{question}", question)
        .replace("{gold_SQL}", gold_sql)
    )


def question_writer_prompt(db_schema: str, sql: str, columns: list[str], rows: list[Any]) -> str:
    """:data:`QUESTION_WRITER_PROMPT` filled in: the schema, the query, its columns and first rows."""
    shown = "; ".join(", ".join(_cell(v) for v in r) for r in rows[:5]) or "(no rows)"
    return (
        QUESTION_WRITER_PROMPT.replace("{db_schema}", db_schema)
        .replace("{sql}", sql)
        .replace("{columns}", ", ".join(columns) or "?")
        .replace("{rows}", shown)
    )


def cot_messages(record: dict[str, Any], answer: str) -> list[dict[str, str]]:
    """A record's prompt under the chain-of-thought system prompt, with ``answer`` as the assistant turn.

    The user turn is the record's own (its schema style, evidence and question), so ``train``
    trains on CoT records unchanged and ``predict --cot`` / ``ask --cot`` see the same prompt."""
    return [*messages_from_record(record, cot=True), {"role": "assistant", "content": answer}]


def make_record(
    fmt: str, schema_text: str, question: str, evidence: str, sql: str, dialect: str = "sqlite"
) -> dict[str, Any]:
    if fmt == "chat":
        return chat_record(schema_text, question, evidence, sql, dialect)
    if fmt == "alpaca":
        return alpaca_record(schema_text, question, evidence, sql, dialect)
    raise ConfigError(f"unknown record format {fmt!r}; choose one of: {', '.join(RECORD_FORMATS)}")


class PromptStyle(str):
    """A schema style with where it came from: ``contract`` (the model's prompt contract), ``option`` (set by
    the user) or ``default`` (``ddl``, for a model without a contract). It is the style string itself, and
    carries the schema-linking settings (``link``) prompts are built with, and a token counter for the budget
    mode (``counter``: the served model's tokenizer)."""

    source: str
    link: LinkSettings
    counter: Any

    def __new__(cls, style: str, source: str, link: LinkSettings | None = None, counter: Any = None) -> PromptStyle:
        obj = super().__new__(cls, style)
        obj.source = source
        obj.link = link or LinkSettings()
        obj.counter = counter
        return obj


def choose_style(
    model_style: str | None,
    option: str | None,
    force: bool = False,
    model_link: LinkSettings | None = None,
    link_options: Any = None,
) -> PromptStyle:
    """The schema style (and schema-linking settings) to serve a model with: its contract's; an option that
    contradicts the contract is an error unless ``force``; ``ddl`` (and no linking) for a model without a
    contract. ``link_options``: a :class:`sqltune.linking.link.SchemaFilterConfig` (the user's options)."""
    if option and model_style and option != model_style and not force:
        raise ConfigError(
            f"schema_style={option!r} contradicts the model's prompt contract ({model_style!r}: the prompts it was "
            "trained on); drop the option, or add --force-prompt to serve other prompts than it learned"
        )
    link_settings = model_link or LinkSettings()
    if link_options is not None and link_options.link_options_set():
        wanted = link_options.link_settings(model_link)
        if model_link is not None and wanted != model_link and not force:
            raise ConfigError(
                f"the schema-filter options ({wanted.to_dict()}) contradict the model's prompt contract "
                f"({model_link.to_dict()}: the prompts it was trained on); drop them, or add --force-prompt"
            )
        link_settings = wanted
    if option:
        return PromptStyle(option, "option", link_settings)
    if model_style:
        return PromptStyle(model_style, "contract", link_settings)
    return PromptStyle("ddl", "default", link_settings)


def trained_link(model: str) -> LinkSettings | None:
    """The schema-linking settings in a model's prompt contract (None without a contract)."""
    contract = read_contract(model)
    if contract is None:
        return None
    return LinkSettings.from_dict(contract.get("schema_filter"))


CONTRACT_FILE = "sqltune_model.json"
"""The model folder's card; its ``prompt`` key is the prompt contract."""
CONTRACT_VERSION = 1


def contract_from_records(train_file: str | Path) -> dict[str, Any]:
    """The prompt contract of a model trained on ``train_file`` (sqltune data records): everything the one
    prompt builder needs to rebuild the training prompt, read from the first record."""
    import json

    with open(train_file, encoding="utf-8") as fh:
        rec = json.loads(fh.readline())
    dialect = rec.get("dialect") or "sqlite"
    if "messages" in rec:
        fmt, system = "chat", next((m["content"] for m in rec["messages"] if m.get("role") == "system"), "")
    else:
        fmt, system = "alpaca", rec.get("instruction", "")
    return {
        "version": CONTRACT_VERSION,
        "schema_style": rec.get("schema_style") or "ddl",
        "dialect": dialect,
        "record_format": fmt,
        "cot": system == system_prompt(dialect, cot=True),
        "system_prompt": system,
        "evidence": bool(rec.get("evidence")),
        "schema_filter": LinkSettings.from_dict(rec.get("schema_filter")).to_dict(),
    }


def write_contract(folder: str | Path, contract: dict[str, Any]) -> None:
    """Put ``contract`` into the model folder's card (``sqltune_model.json``, its other keys kept)."""
    import json

    card = Path(folder) / CONTRACT_FILE
    try:
        data = json.loads(card.read_text()) if card.is_file() else {}
    except ValueError:
        data = {}
    data["prompt"] = contract
    card.write_text(json.dumps(data, indent=2) + "\n")


def read_contract(model: str | Path) -> dict[str, Any] | None:
    """The prompt contract a model carries: its folder's card, a run's ``model/`` or ``adapter/`` folder, or a
    ``.gguf`` file's report beside it. None for a model without one (a hub model, a base model)."""
    import json

    p = Path(model)
    cards = [p.with_name(p.name + ".sqltune.json")] if p.suffix == ".gguf" else []
    cards += [
        p / CONTRACT_FILE,
        p / "model" / CONTRACT_FILE,
        p / "merged" / CONTRACT_FILE,
        p / "adapter" / CONTRACT_FILE,
    ]
    for card in cards:
        try:
            c = json.loads(card.read_text()).get("prompt")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(c, dict) and c.get("schema_style"):
            return c
    return None


def trained_schema_style(model: str) -> str | None:
    """The schema style a model was trained with: its prompt contract's (:func:`read_contract`); for a run
    made before contracts, ``RUN/config.yaml`` -> its train_file's first record; a ``.gguf``'s report."""
    import json

    import yaml

    contract = read_contract(model)
    if contract is not None:
        return str(contract["schema_style"])
    p = Path(model)
    if p.suffix == ".gguf":
        report = p.with_name(p.name + ".sqltune.json")
        try:
            style = json.loads(report.read_text()).get("schema_style")
        except (OSError, ValueError, AttributeError):
            return None
        return str(style) if style else None
    for run in (p, p.parent):
        cfg = run / "config.yaml"
        if cfg.is_file():
            try:
                train_file = str((yaml.safe_load(cfg.read_text()) or {}).get("train_file"))
                with open(train_file, encoding="utf-8") as fh:
                    style = json.loads(fh.readline()).get("schema_style")
            except (OSError, ValueError, TypeError, AttributeError):
                return None
            return str(style) if style else None
    return None
