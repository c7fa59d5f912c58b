"""Masking every secret of a config in free text: the last line of defence in output."""

from __future__ import annotations

import base64
import contextlib
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._result import CheckResult, ErrorInfo, RequestInfo
from ._strategy import StrategySpec
from ._url import SecretUrl
from ._walk import collect

if TYPE_CHECKING:
    # Only its type: configs are loaded above this module (the toolkit, which the
    # strategies that configs name use, imports it).
    from ._config import ServerConfig

__all__ = ["Redactor", "secret_forms"]

#: Secrets (and forms of them) shorter than this are left alone: masking them would
#: garble ordinary words.
MIN_SECRET_LENGTH = 4

#: Words that open an ``Authorization`` value; the credential after one is a secret alone.
_AUTH_SCHEMES = frozenset({"basic", "bearer", "token", "apikey", "api-key", "digest", "key"})


def _is_secret(value: Any) -> bool:
    return callable(getattr(value, "get_secret_value", None)) or isinstance(value, SecretUrl)


def _secrets_in(value: Any, out: set[str]) -> None:
    """Add every secret value held anywhere in ``value`` (a spec, say) to ``out``."""
    for holder in collect(value, _is_secret):
        getter = getattr(holder, "get_secret_value", None)
        if callable(getter):
            secret = getter()
            if isinstance(secret, str):
                out.add(secret)
        elif isinstance(holder, SecretUrl):
            auth = holder.auth
            if auth is not None:
                out.update(auth)
                out.add(base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii"))


def secret_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` that a library message may show.

    httpx quotes a header as bytes (``b'Bearer s3cr3t\\n'``), ``repr`` escapes it,
    a log line strips the trailing newline that Kubernetes secrets often carry,
    a URL percent-encodes it; and the credential of ``Bearer <token>`` leaks on
    its own just as well.
    """
    forms = {secret}
    stripped = secret.strip()
    forms.add(stripped)
    for text in (secret, stripped):
        forms.add(repr(text)[1:-1])
        forms.add(text.encode("unicode_escape").decode("ascii"))
        with contextlib.suppress(UnicodeEncodeError):  # lone surrogates
            forms.add(repr(text.encode("utf-8"))[2:-1])
        forms.add(urllib.parse.quote(text, safe=""))
        forms.add(urllib.parse.quote(text))
        forms.add(urllib.parse.quote_plus(text))
    scheme, sep, credential = stripped.partition(" ")
    if sep and scheme.lower() in _AUTH_SCHEMES and credential.strip():
        forms |= secret_forms(credential.strip())
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Redactor:
    """Masks every secret value of a config in free text.

    Defence in depth: strategies should never put a secret in a result, but a
    third-party one might echo a header in an error message, and output is the
    last place to catch it. Each secret is matched in every form a library
    message may show it (see :func:`secret_forms`). Values shorter than four
    characters are left alone, since masking them would garble ordinary words.
    """

    def __init__(self, specs: Iterable[StrategySpec], *, extra: Iterable[str] = ()) -> None:
        found: set[str] = set(extra)
        for spec in specs:
            _secrets_in(spec, found)
        forms: set[str] = set()
        for secret in found:
            forms |= secret_forms(secret)
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(forms, key=lambda s: (-len(s), s))
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in self._secrets)) if self._secrets else None
        )

    @classmethod
    def for_config(cls, config: ServerConfig) -> Redactor:
        """Masks the secrets of every spec of ``config`` and every ``${VAR}`` value in it."""
        # load_config shares equal specs between models: walk each object once.
        specs = {id(s): s for s in (config.default, *(m.check for m in config.models.values()))}
        return cls(specs.values(), extra=config.secrets)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub("***", text)

    @property
    def empty(self) -> bool:
        """True when the config has no secret: every call returns its input."""
        return self._pattern is None

    def result(self, result: CheckResult) -> CheckResult:
        """``result`` with every secret masked in its text, children included.

        The one redaction point of results: the facade and the monitor pass every
        result a strategy returns through it before anything stores, logs or shows
        it, so transitions, ``/health``, the CLI and metrics never see a secret that
        a strategy or a library message echoed. Returns ``result`` itself when
        nothing changes (the common case costs no allocation).
        """
        if self._pattern is None:
            return result
        changes: dict[str, Any] = {}
        detail = self(result.detail)
        if detail != result.detail:
            changes["detail"] = detail
        error = result.error
        if error is not None:
            message = self(error.message)
            if message != error.message:
                changes["error"] = ErrorInfo(type=error.type, message=message)
        if result.endpoint is not None:
            endpoint = self(result.endpoint)
            if endpoint != result.endpoint:
                changes["endpoint"] = endpoint
        request = result.request
        if request is not None:
            url = self(request.url)
            status = None if request.status is None else self(request.status)
            if url != request.url or status != request.status:
                changes["request"] = RequestInfo(method=request.method, url=url, status=status)
        if result.children:
            children = tuple(self.result(child) for child in result.children)
            if any(new is not old for new, old in zip(children, result.children, strict=True)):
                changes["children"] = children
        return attrs.evolve(result, **changes) if changes else result

    def data(self, value: Any) -> Any:
        """Redact every string inside a JSON-ready structure."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
