"""The shape of the code: no stage imports another stage, and each shared job exists once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "sqltune"
STAGES = ("data", "train", "predict", "evaluate", "serve", "export")
SHARED = (
    "models",
    "db",
    "judge",
    "linking",
    "prompts",
    "io",
    "errors",
    "config",
    "splits",
    "sqlutil",
    "extract",
    "records",
)
TOP = ("cli", "quickstart", "__main__", "__init__")  # may import everything


def _module_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The sqltune top-level parts a module imports (at module level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "sqltune"]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] == "sqltune" and len(parts) > 1:
                out.add(parts[1])
    return out


SOURCES = sorted(p for p in SRC.rglob("*.py"))


def test_every_module_belongs_to_a_known_part():
    unknown = {_module_of(p) for p in SOURCES} - set(STAGES) - set(SHARED) - set(TOP)
    assert not unknown, f"add {unknown} to STAGES or SHARED in this test, deliberately"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_import_rule(path):
    me = _module_of(path)
    if me in TOP:
        assert "cli" not in _imports(path) or me == "__main__"
        return
    imported = _imports(path) - {me}
    assert "cli" not in imported, f"{path}: nothing imports the CLI"
    assert "quickstart" not in imported, f"{path}: nothing imports the quickstart"
    if me in STAGES:
        others = imported & set(STAGES)
        assert not others, f"{path}: the {me} stage imports the {sorted(others)} stage(s); move what they share below"
    else:
        stages = imported & set(STAGES)
        assert not stages, f"{path}: the shared layer imports the {sorted(stages)} stage(s)"


def _grep(pattern: str) -> list[str]:
    rx = re.compile(pattern, re.M)
    return sorted(str(p.relative_to(SRC)) for p in SOURCES if rx.search(p.read_text(encoding="utf-8")))


def test_one_tokenizer_loader_one_model_loader():
    assert _grep(r"AutoTokenizer\.from_pretrained") == ["models/hf.py"]
    assert _grep(r"AutoModelForCausalLM\.from_pretrained") == ["models/hf.py"]
    assert _grep(r"apply_chat_template\(") == ["models/load.py"]  # prompts and answers (training, scoring) alike


def test_one_path_executes_sql_for_judging():
    # SQLite's run_query is called by its executor only; the judge's worker runs SQL through the executors
    assert _grep(r"\brun_query\(") == ["db/execute.py"]
    # model SQL runs in the judge's worker; the value index runs only its own SELECT DISTINCTs and row counts
    # (read-only and time-limited by the same executors)
    assert _grep(r"\bconn\.run\(") == ["judge/worker.py", "linking/values.py"]
    # one executor per engine, opened by one function
    assert _grep(r"^class \w+Executor\b") == ["db/duckdb_exec.py", "db/execute.py", "db/mysql.py", "db/postgres.py"]
    assert _grep(r"\b(Sqlite|Postgres|Mysql|Duckdb)Executor\(") == [
        "db/engine.py",
        "db/schema.py",
    ]  # schema.py: DuckDB's catalog
    # the one-shot execute() is for callers outside the judge (scripts, tests); no module uses it
    assert [p for p in _grep(r"(?<![.\w])execute\(") if p != "db/execute.py"] == []
    assert _grep(r"^def (majority_vote|result_key)\(") == ["judge/score.py"]


def test_one_list_of_error_types():
    assert _grep(r"^ERROR_TYPES\s*=") == ["judge/score.py"]


def _module_graph() -> dict[str, set[str]]:
    """Each module's sqltune imports (dotted names, at module level or inside functions)."""
    names = {}
    for p in SOURCES:
        parts = ("sqltune", *p.relative_to(SRC).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph: dict[str, set[str]] = {}
    for name, p in names.items():
        deps = set()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    deps.add(full if full in names else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in names and d != name}
    return graph


def test_no_import_cycles():
    """No module reaches itself through imports, also not through an import inside a function (the way a
    cycle hides): what two modules share goes into a third below them."""
    graph = _module_graph()
    state: dict[str, int] = {}
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                cycles.append(path[path.index(w) :] + [w])
            elif w not in state:
                visit(w)
        path.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_a_cycle_inside_a_function(tmp_path, monkeypatch):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from sqltune.b import x\n")
    b.write_text("def f():\n    from sqltune.a import y\n")
    monkeypatch.setitem(globals(), "SRC", tmp_path)
    monkeypatch.setitem(globals(), "SOURCES", [a, b])
    with pytest.raises(AssertionError, match="import cycles: sqltune.a -> sqltune.b -> sqltune.a"):
        test_no_import_cycles()
