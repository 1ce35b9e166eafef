"""Docs that cannot drift: the CLI reference is generated from the Typer app, the architecture page names
every module, and the README stays short. Regenerate the CLI reference with:

    SQLTUNE_WRITE_DOCS=1 pytest tests/test_docs.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click
import typer
from typer.testing import CliRunner

from sqltune.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    out = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        if getattr(cmd, "hidden", False):
            continue
        if isinstance(cmd, click.Group):
            if cmd.callback is not None and name == "eval":
                out.append([*prefix, name])
            out += _commands(cmd, [*prefix, name])
        else:
            out.append([*prefix, name])
    return out


def cli_reference(monkeypatch) -> str:
    monkeypatch.setattr(typer.core, "HAS_RICH", False)  # plain click help: stable text, no boxes
    root = typer.main.get_command(app)
    runner = CliRunner()
    parts = [
        "# CLI reference",
        "",
        "Generated from the CLI by `tests/test_docs.py` (`SQLTUNE_WRITE_DOCS=1 pytest tests/test_docs.py` rewrites it);",
        "a test fails when it differs from what `--help` prints.",
        "",
    ]
    env = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    for cmd in _commands(root, []):
        r = runner.invoke(app, [*cmd, "--help"], terminal_width=100, env=env)
        assert r.exit_code == 0, (cmd, r.output)
        text = "\n".join(line.rstrip() for line in r.output.strip().splitlines())
        parts += [f"## sqltune {' '.join(cmd)}", "", "```text", text, "```", ""]
    return "\n".join(parts)


def test_cli_reference_is_current(monkeypatch):
    want = cli_reference(monkeypatch)
    path = DOCS / "cli.md"
    if os.environ.get("SQLTUNE_WRITE_DOCS"):
        path.write_text(want)
    assert path.is_file() and path.read_text() == want, (
        "docs/cli.md is stale: SQLTUNE_WRITE_DOCS=1 pytest tests/test_docs.py"
    )


def test_architecture_names_every_module():
    arch = (DOCS / "architecture.md").read_text()
    src = ROOT / "src" / "sqltune"
    missing = [
        str(p.relative_to(src)) for p in sorted(src.rglob("*.py")) if p.name != "__init__.py" and p.name not in arch
    ]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_readme_is_short_and_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert readme.count("```bash") == 2, "the first screen has exactly the two commands"
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for link in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if "://" in link:
                continue
            assert (page.parent / link).exists(), f"{page.name}: broken link {link}"
