"""Masking every secret of a config in free text: the last line of defence in output."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._config import ServerConfig
from ._strategy import StrategySpec
from ._url import SecretUrl

__all__ = ["Redactor"]


def _secrets_in(value: Any, out: set[str]) -> None:
    getter = getattr(value, "get_secret_value", None)
    if callable(getter):
        secret = getter()
        if isinstance(secret, str):
            out.add(secret)
        return
    if isinstance(value, SecretUrl):
        out.update(value.auth or ())
        return
    if isinstance(value, StrategySpec):
        _secrets_in(value.config, out)
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            _secrets_in(getattr(value, field.name), out)
    elif isinstance(value, Mapping):
        for item in value.values():
            _secrets_in(item, out)
    elif isinstance(value, list | tuple | frozenset | set):
        for item in value:
            _secrets_in(item, out)


class Redactor:
    """Masks every secret value of a config in free text.

    Defence in depth: strategies should never put a secret in a result, but a
    third-party one might echo a header in an error message, and the CLI is the
    last place to catch it. Values shorter than four characters are left alone,
    since masking them would garble ordinary words.
    """

    def __init__(self, specs: Iterable[StrategySpec]) -> None:
        found: set[str] = set()
        for spec in specs:
            _secrets_in(spec, found)
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted((s for s in found if len(s) >= 4), key=len, reverse=True)

    @classmethod
    def for_config(cls, config: ServerConfig) -> Redactor:
        # load_config shares equal specs between models: walk each object once.
        specs = {id(s): s for s in (config.default, *(m.check for m in config.models.values()))}
        return cls(specs.values())

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def data(self, value: Any) -> Any:
        """Redact every string inside a JSON-ready structure."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
