"""Validators for strategy config fields, with messages that read well after a path.

They follow the attrs validator signature, so plugin configs use them as
``attrs.field(validator=healthkit.validators.gt(0))``. A failing value raises
``ValueError("must be > 0, got -1")``; the config loader puts the field's path
in front.

:func:`target_name` is a plain check, not an attrs validator: the rule for model
names and versions, for configs and for names a client sends. So is
:func:`format_template`, for templates such as ``path = "/check/{model}"``.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Collection, Sequence
from typing import Any

__all__ = [
    "MAX_NAME_LENGTH",
    "format_template",
    "ge",
    "gt",
    "le",
    "non_empty",
    "one_of",
    "target_name",
]

#: Longest model name or version accepted, in characters.
MAX_NAME_LENGTH = 256

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


def target_name(value: object, *, what: str = "model name", allow_slash: bool = False) -> str:
    """``value`` if it is a valid model name (or version), else ``ValueError`` saying why.

    The rule: 1 to :data:`MAX_NAME_LENGTH` printable characters (no control, format
    or line-separator characters), no ``/``, no leading or trailing whitespace, and
    not ``.`` or ``..``. A name becomes one URL path segment upstream
    (``/v2/models/{name}/ready``): KServe and Triton route on ``[^/]+``, and a dot
    segment would be resolved away (``/check/..`` asks ``/``).

    ``allow_slash`` admits ``/`` for names that only an upstream uses (``upstream_model``:
    vLLM serves ``meta-llama/Llama-3.1-8B-Instruct``); no part between slashes may be
    empty, ``.`` or ``..``, and the http strategy sends it percent-encoded as one segment.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} must be at most {MAX_NAME_LENGTH} characters, got {len(value)}")
    if value in (".", ".."):
        raise ValueError(f"{what} must not be {value!r} (a dot segment in URLs)")
    for index, char in enumerate(value):
        if not char.isprintable():
            raise ValueError(
                f"{what} must contain only printable characters, got {char!r} at position {index}"
            )
    if "/" in value and not allow_slash:
        raise ValueError(f"{what} must not contain '/'")
    if allow_slash and any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError(f"{what} must not have an empty, '.' or '..' part between slashes")
    if value != value.strip():
        raise ValueError(f"{what} must not start or end with whitespace")
    return value


def format_template(text: str, *, fields: Sequence[str], what: str = "template") -> str:
    """``text`` if it is a :meth:`str.format` template that fills in only ``fields``.

    Each replacement field must be one of ``fields`` and bare: no conversion
    (``{model!r}``), format spec (``{model:>8}``), index or attribute, and no
    positional ``{}``; ``{{`` and ``}}`` are literal braces. Otherwise ``ValueError``
    (``bad template field {name} in '{name}-v3'; use only {model}; write {{ and }}
    for literal braces``), where ``what`` names the template.
    """
    shown = " and ".join(f"{{{field}}}" for field in fields)
    allowed = f"use only {shown}; write {{{{ and }}}} for literal braces"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"bad {what} {text!r}: {exc}; {allowed}") from None
    for _literal, field, spec, conversion in parsed:
        if field is not None and (field not in fields or spec or conversion):
            raise ValueError(f"bad {what} field {{{field}}} in {text!r}; {allowed}")
    return text
