"""The one walk over configs: their values, and their classes' field types.

Configs nest: an attrs record holds tables, lists and other records, and a
composite's ``checks`` hold whole strategy specs. Rendering a spec for output,
collecting its secrets for the redactor, finding the specs a factory acquires as
children and asking whether a config class can hold a secret all follow the same
tree; its shape is defined here, once, so they cannot disagree about it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["collect", "walk"]


def walk(
    node: Any,
    leaf: Callable[[Any], Any],
    *,
    stop: Callable[[Any], bool] | None = None,
    shown_only: bool = False,
) -> Any:
    """``node`` rebuilt as plain data, with ``leaf`` applied to each part that does not nest.

    A record (an attrs instance) becomes a dict keyed by its config keys (field
    aliases; with ``shown_only``, fields hidden from reprs are left out: they are
    never shown), a mapping a dict with string keys, a list, tuple or set a list.
    A config class (an attrs class) becomes a dict of its field types, and a
    parametrized type (``tuple[Secret, ...]``, ``int | None``) a list of its
    arguments, so a walk can also ask what values of a class may hold.
    ``stop(node)`` true makes ``node`` a leaf even if it nests.
    """
    seen: set[int] = set()

    def visit(node: Any) -> Any:
        if stop is not None and stop(node):
            return leaf(node)
        if isinstance(node, type) and attrs.has(node):
            if id(node) in seen:  # a class met again (or a recursive one): already walked
                return {}
            seen.add(id(node))
            return {name: visit(tp) for name, tp in typing.get_type_hints(node).items()}
        if attrs.has(type(node)):
            return {
                (f.alias or f.name): visit(getattr(node, f.name))
                for f in attrs.fields(type(node))
                if not (shown_only and f.repr is False)
            }
        if isinstance(node, Mapping):
            return {str(k): visit(v) for k, v in node.items()}
        if isinstance(node, list | tuple | set | frozenset):
            return [visit(v) for v in node]
        if typing.get_origin(node) is not None:
            return [visit(arg) for arg in typing.get_args(node)]
        return leaf(node)

    return visit(node)


def collect(
    node: Any, wanted: Callable[[Any], bool], *, stop: Callable[[Any], bool] | None = None
) -> list[Any]:
    """Every part of ``node`` for which ``wanted`` is true, in order; those are not entered.

    ``stop`` as for :func:`walk`: parts it picks are neither collected nor entered
    (unless ``wanted`` as well).
    """
    found: list[Any] = []

    def leaf(part: Any) -> Any:
        if wanted(part):
            found.append(part)
        return None

    def ends(part: Any) -> bool:
        return wanted(part) or (stop is not None and stop(part))

    walk(node, leaf, stop=ends)
    return found
