"""Validators for strategy config fields, with messages that read well after a path.

They follow the attrs validator signature, so plugin configs use them as
``attrs.field(validator=healthkit.validators.gt(0))``. A failing value raises
``ValueError("must be > 0, got -1")``; the config loader puts the field's path
in front.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

__all__ = ["ge", "gt", "le", "non_empty", "one_of"]

Validator = Callable[[Any, Any, Any], None]


def _show(value: Any) -> str:
    # ``timeout = -1`` is read as a float; show it as the user wrote it.
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))
    return repr(value)


def gt(bound: float) -> Validator:
    """The value must be greater than ``bound``."""

    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None and not value > bound:
            raise ValueError(f"must be > {bound}, got {_show(value)}")

    return check


def ge(bound: float) -> Validator:
    """The value must be at least ``bound``."""

    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None and not value >= bound:
            raise ValueError(f"must be >= {bound}, got {_show(value)}")

    return check


def le(bound: float) -> Validator:
    """The value must be at most ``bound``."""

    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None and not value <= bound:
            raise ValueError(f"must be <= {bound}, got {_show(value)}")

    return check


def one_of(choices: Collection[Any]) -> Validator:
    """The value must be one of ``choices``."""

    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise ValueError(f"must be one of {listed}, got {_show(value)}")

    return check


def non_empty(_inst: Any, _attr: Any, value: Any) -> None:
    """The value (a string or a collection) must not be empty."""
    if value is not None and len(value) == 0:
        raise ValueError("must not be empty")
