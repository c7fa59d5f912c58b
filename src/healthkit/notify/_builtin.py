"""The built-in notifiers (``webhook``, ``log``), registered through the public hook."""

from __future__ import annotations

from .._registrar import NotifierRegistrar
from ._log import LogConfig, LogNotifier
from ._webhook import WebhookConfig, WebhookNotifier

__all__ = ["register"]


def register(registrar: NotifierRegistrar) -> None:
    registrar.add(
        "webhook",
        config=WebhookConfig,
        factory=WebhookNotifier,
        description="POST JSON to a URL, with a body template (Slack, Teams, generic).",
    )
    registrar.add(
        "log",
        config=LogConfig,
        factory=LogNotifier,
        description="One structured JSON line per notification on logger healthkit.notify.",
    )
