"""Config files in, raw tables out: reading, decoding, and the limits of a document.

A document is refused before anything else looks at it when it is cyclic, nested
too deeply or blown up by YAML aliases: every later walk can then recurse safely
and costs the document as written.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError, ConfigIssue

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = ["MAX_ALIAS_EXPANSION", "MAX_DEPTH", "check_shape", "join", "read_source"]

#: Tables and lists of a config document nest at most this many levels deep.
MAX_DEPTH = 100
#: YAML aliases may add at most this many values to a document when expanded: a few
#: hundred bytes of nested aliases can otherwise stand for billions of values.
MAX_ALIAS_EXPANSION = 1_000_000


def join(path: str, key: str | int) -> str:
    """``path`` extended by a table key (``a.b``) or a list index (``a[0]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def read_source(source: str | os.PathLike[str]) -> Any:
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = (
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); "
            "save the file as UTF-8"
        )
        raise ConfigError([ConfigIssue("", message)], source=str(path)) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                hint = "YAML configs need PyYAML: pip install 'model-healthkit[yaml]'"
                raise ConfigError([ConfigIssue("", hint)], source=str(path)) from None
            return _load_yaml(yaml, text)
    except ConfigError:
        raise
    except RecursionError:
        message = f"nested too deeply to parse (at most {MAX_DEPTH} levels)"
        raise ConfigError([ConfigIssue("", message)], source=str(path)) from None
    except Exception as exc:  # each parser has its own error type
        message = f"invalid {suffix.lstrip('.').upper()}: {_parse_error(exc)}"
        raise ConfigError([ConfigIssue("", message)], source=str(path)) from None
    message = f"unsupported config file type {suffix!r}; use .toml, .json, .yaml or .yml"
    raise ConfigError([ConfigIssue("", message)], source=str(path))


def _load_yaml(yaml: Any, text: str) -> Any:
    """``yaml.safe_load`` that stops at ``MAX_DEPTH`` levels instead of recursing on.

    PyYAML composes recursively: a few KB of ``[[[[...`` would otherwise cost
    seconds of scanning before Python's recursion limit ends it.
    """

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise yaml.composer.ComposerError(
                        None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    loader = Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _parse_error(exc: Exception) -> str:
    """A parser's message without quoting the source line: it may hold a secret.

    PyYAML prints the offending line with a caret; TOML and JSON only say where.
    """
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem is None or mark is None:
        return str(exc)
    context = getattr(exc, "context", None)
    prefix = f"{context}: " if context else ""
    return f"{prefix}{problem} (line {mark.line + 1}, column {mark.column + 1})"


class _ShapeError(Exception):
    def __init__(self, issue: ConfigIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def check_shape(raw: Any) -> ConfigIssue | None:
    """Refuse documents that are cyclic, too deep, or that aliases blow up.

    YAML aliases make tables and lists shared objects (and anchors can make them
    contain themselves). Sizes and heights are memoized per object, so this walk
    costs the document as written, never as expanded, and recursion never goes
    deeper than ``MAX_DEPTH``.
    """
    # Two dicts of ints, not one of (values, height) tuples: up to 2,000 freed tuples
    # of a size stay in CPython's free list, here scattered over the parser's
    # memory, and keep it resident (see _load._packed).
    totals: dict[int, int] = {}  # id -> values it expands to
    heights: dict[int, int] = {}  # id -> levels below it
    active: set[int] = set()
    stack: list[str | int] = []
    unique = 0

    def where() -> str:
        path = ""
        for key in stack[:4]:
            path = join(path, key)
        return path + ("..." if len(stack) > 4 else "")

    def walk(node: Any, depth: int) -> tuple[int, int]:
        nonlocal unique
        if isinstance(node, Mapping):
            items: Iterable[tuple[str | int, Any]] = ((str(k), v) for k, v in node.items())
        elif isinstance(node, list | tuple):
            items = enumerate(node)
        else:
            return 1, 0
        key = id(node)
        known = totals.get(key)
        if known is not None:
            if depth + heights[key] > MAX_DEPTH:
                raise _ShapeError(ConfigIssue(where(), f"nested deeper than {MAX_DEPTH} levels"))
            return known, heights[key]
        if key in active:
            message = "a YAML alias refers to a table or list that contains it (a cycle)"
            raise _ShapeError(ConfigIssue(where(), message))
        if depth >= MAX_DEPTH:
            raise _ShapeError(ConfigIssue(where(), f"nested deeper than {MAX_DEPTH} levels"))
        active.add(key)
        total, height = 1, 0
        unique += 1
        for name, child in items:
            stack.append(name)
            size, child_height = walk(child, depth + 1)  # noqa: F821 (deleted after the walk)
            stack.pop()
            if not isinstance(child, Mapping | list | tuple):
                unique += 1
            total += size
            height = max(height, child_height + 1)
        active.discard(key)
        totals[key] = total
        heights[key] = height
        return total, height

    try:
        total, _ = walk(raw, 0)
    except _ShapeError as exc:
        return exc.issue
    finally:
        # walk refers to itself (it recurses): a reference cycle, which only the
        # garbage collector would free, and the memos with it (two ints a table),
        # scattered over the document's memory, pinning it (see _load._packed).
        del walk
    if total - unique > MAX_ALIAS_EXPANSION:
        return ConfigIssue(
            "",
            f"YAML aliases expand the document to {total:,} values; at most "
            f"{MAX_ALIAS_EXPANSION:,} may come from aliases (an alias bomb?)",
        )
    return None
