"""Stage configs written once: a frozen dataclass whose attribute docstrings are the only help text.

Every stage (``data build``, ``predict``, ``eval``, ``train``) takes its settings the same three
ways, later ones winning: a YAML file of flat keys, ``key=value`` overrides (values parsed as
YAML: ``epochs=2``, ``lora_target=[q_proj,v_proj]``, ``eval_file=null``), and, for the stages
that have them, command-line options, which :mod:`sqltune.cli` derives from the same dataclass
(:func:`field_docs` gives their help). Unknown keys are an error naming the closest valid key and
listing them all; a value of the wrong type names the field and the type it wants.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sqltune.errors import ConfigError

T = TypeVar("T")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literal written under each field of a dataclass."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def base_type(cls: type, name: str) -> tuple[type, bool]:
    """(the field's type without None, whether None is allowed)."""
    hints = typing.get_type_hints(cls)
    t = hints[name]
    args = typing.get_args(t)
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else object), type(None) in args
    return t, False


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r}: expected key=value, e.g. epochs=2")
        k, v = o.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v) if v.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {o!r}: value is not valid YAML ({e})") from None
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    return loaded or {}


def _coerce(cls: type, name: str, value: Any) -> tuple[Any, str | None]:
    t, nullable = base_type(cls, name)
    if value is None:
        return None, (None if nullable or t is object else f"{name}: null is not allowed (a {t.__name__} is)")
    if typing.get_origin(t) is list:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return [str(value)], None  # one value where a list is wanted: a YAML scalar, an override
        if not isinstance(value, list | tuple):
            return value, f"{name}: {value!r} should be a list"
        return [str(v) for v in value], None
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value), None
    if t is float and isinstance(value, str):
        try:
            return float(value), None  # YAML 1.1 reads 2e-4 as a string
        except ValueError:
            pass
    if t is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value), None
    if t in (int, float, bool, str):
        ok = isinstance(value, t) and not (isinstance(value, bool) and t is not bool)
        if not ok:
            return value, f"{name}: {value!r} should be a {t.__name__}"
    return value, None


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build ``cls`` from flat keys, checking every key and type and reporting all problems at once."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [k for k in data if k not in names]
    problems = []
    for k in unknown:
        close = difflib.get_close_matches(k, names, n=1)
        problems.append(f"unknown key {k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    values = {}
    for k, v in data.items():
        if k in unknown:
            continue
        values[k], problem = _coerce(cls, k, v)
        if problem:
            problems.append(problem)
    required = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in values
    ]
    problems += [f"{k}: required" for k in required]
    if problems:
        extra = f"; valid keys: {', '.join(names)}" if unknown else ""
        raise ConfigError(f"{where}: " + "; ".join(problems) + extra)
    return cls(**values)


def load(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    options: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> T:
    """``base`` < the YAML at ``path`` < ``key=value`` overrides < explicit ``options``; validated."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data.update(read_yaml(path))
    data.update(parse_overrides(overrides or []))
    data.update({k: v for k, v in (options or {}).items() if v is not None})
    cfg = from_dict(cls, data, str(path) if path is not None else "config")
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


SECRET_FIELDS = ("api_key", "openai_api_key")
"""Config fields never written to a manifest, report or log."""


def to_dict(cfg: Any, secret: tuple[str, ...] = SECRET_FIELDS) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in secret}


def save(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
