"""A string that never shows itself in reprs, logs or output."""

from __future__ import annotations

import attrs

__all__ = ["Secret"]

_MASK = "***"


@attrs.frozen(repr=False)
class Secret:
    """Wraps a secret value (a header, a token, a password).

    Equality and hashing use the value, so two configs with the same secret
    still share one strategy instance; ``repr`` and ``str`` only show a mask.
    """

    _value: str = attrs.field(validator=attrs.validators.instance_of(str))

    def get_secret_value(self) -> str:
        """The real value; call it only where the value is sent on the wire."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK
