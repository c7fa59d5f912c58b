"""A spec as JSON-ready data, with every secret masked: for output, never for loading."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from .._secret import Secret
from .._strategy import StrategySpec
from .._walk import walk

__all__ = ["describe_spec"]


def _public_leaf(value: Any) -> Any:
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, StrategySpec):
        return describe_spec(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # Anything else (URLs with secrets, say) shows its own redacted str().
    return str(value)


def _public(value: Any) -> Any:
    # Fields hidden from reprs are hidden here too; a nested spec is described whole.
    return walk(
        value,
        _public_leaf,
        stop=lambda part: isinstance(part, Secret | StrategySpec),
        shown_only=True,
    )


def describe_spec(
    spec: StrategySpec, *, redact: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """A JSON-ready view of a spec with every secret masked.

    ``redact`` (a :class:`~healthkit._redact.Redactor`, say) is applied to every
    string as well: pass one to also mask values that came from ``${VAR}``.
    """
    out: dict[str, Any] = {"strategy": spec.strategy}
    if spec.config is not None:
        config = _public(spec.config)
        if isinstance(config, dict):
            out.update(config)
    if redact is not None:
        masked = walk(out, lambda part: redact(part) if isinstance(part, str) else part)
        return typing.cast(dict[str, Any], masked)
    return out
