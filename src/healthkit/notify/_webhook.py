"""The ``webhook`` notifier: POST a JSON body, built from a template, to a secret URL."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from .._frozen import FrozenMap
from .._notifier import Notification
from .._secret import Secret

__all__ = ["DeliveryError", "WebhookConfig", "WebhookNotifier"]


class DeliveryError(Exception):
    """A delivery failed; the message never holds the URL's path, query or credentials."""


def _url(value: Any) -> Secret:
    raw = value.get_secret_value() if isinstance(value, Secret) else value
    if not isinstance(raw, str):
        raise TypeError(f"expected a URL string, got {type(raw).__name__}")
    try:
        parsed = httpx.URL(raw.strip())
    except httpx.InvalidURL:
        raise ValueError("invalid URL (not shown: webhook URLs are secret)") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("must be an http:// or https:// URL with a host (the URL is not shown)")
    return Secret(raw.strip())


def _headers(value: Any) -> FrozenMap[str, Secret]:
    if not isinstance(value, Mapping):
        raise TypeError("expected a table of header names to string values")
    out: dict[str, Secret] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not name or not name.isascii() or ":" in name:
            raise ValueError(f"header names must be non-empty ASCII strings, got {name!r}")
        if isinstance(raw, Secret):
            out[name] = raw
        elif isinstance(raw, str):
            if "\n" in raw or "\r" in raw:
                raise ValueError(f"header {name!r}: the value (not shown) has a line break")
            out[name] = Secret(raw)
        else:
            raise TypeError(f"header {name!r}: expected a string value")
    return FrozenMap(out)


def _body(value: Any) -> str | None:
    """The template, kept as canonical JSON text (hashable, and printable in ``config``)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"expected a table or JSON text, got invalid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise TypeError("expected a table (the JSON object to send)")
    return json.dumps(value, sort_keys=True)


@attrs.frozen(kw_only=True)
class WebhookConfig:
    #: Where to POST; secret as a whole (a Slack webhook's token is in its path).
    url: Secret = attrs.field(converter=_url)
    #: Extra request headers; values are secret.
    headers: FrozenMap[str, Secret] = attrs.field(factory=FrozenMap, converter=_headers)
    #: The JSON object to send; strings in it may use ``$summary``, ``$kind``, ``$count``,
    #: ``$models``, ``$model``, ``$old``, ``$new``, ``$detail``, ``$at``, ``$notifier``;
    #: a string that is exactly ``"$events"`` or ``"$notification"`` becomes that JSON value.
    #: Default: the whole notification (``$notification``).
    body: str | None = attrs.field(default=None, converter=_body)


def render(template: str | None, notification: Notification) -> Any:
    data = notification.to_dict()
    if template is None:
        return data
    first = notification.events[0] if notification.events else None
    variables = {
        "summary": notification.summary,
        "kind": notification.kind,
        "count": str(len(notification.events)),
        "models": ", ".join(e.model for e in notification.events),
        "model": first.model if first else "",
        "old": first.old if first else "",
        "new": first.new if first else "",
        "detail": (first.detail or "") if first else "",
        "at": first.at.isoformat() if first else "",
        "notifier": notification.notifier,
        "storm": "true" if notification.storm else "false",
    }

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            if node == "$events":
                return data["events"]
            if node == "$notification":
                return data
            return string.Template(node).safe_substitute(variables)
        if isinstance(node, list):
            return [fill(x) for x in node]
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        return node

    return fill(json.loads(template))


class WebhookNotifier:
    def __init__(self, config: WebhookConfig) -> None:
        self._config = config
        self._client: httpx.AsyncClient | None = None
        self._host = httpx.URL(config.url.get_secret_value()).host

    def __repr__(self) -> str:
        return f"<WebhookNotifier host={self._host!r}>"

    async def send(self, notification: Notification) -> None:
        if self._client is None:
            # No timeout here: the dispatcher cuts every attempt at the entry's ``timeout``.
            self._client = httpx.AsyncClient(timeout=None, follow_redirects=False)
        headers = {k: v.get_secret_value() for k, v in self._config.headers.items()}
        try:
            response = await self._client.post(
                self._config.url.get_secret_value(),
                json=render(self._config.body, notification),
                headers=headers,
            )
        except httpx.HTTPError as exc:
            # httpx messages can carry the URL: name the failure and the host only.
            raise DeliveryError(f"{type(exc).__name__} posting to {self._host}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"{self._host} answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
