"""Notifications of transitions: built-in ``webhook`` and ``log`` notifiers, and plugins'.

Notifiers come from the ``healthkit_register_notifiers`` hook (the built-ins
too); a config's ``[[notifiers]]`` entries pick them by ``type``. Each name is
imported on first use (PEP 562): the registry imports a built-in notifier's
module only when a config has a ``[[notifiers]]`` entry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._notifier import (
        EVENT_KINDS,
        Notification,
        NotificationEvent,
        Notifier,
        NotifierSettings,
        NotifierSpec,
        NotifierType,
    )
    from .._registrar import NotifierRegistrar
    from ._dispatch import Notifications, NotifierStats
    from ._log import LogConfig, LogNotifier
    from ._webhook import DeliveryError, WebhookConfig, WebhookNotifier

__all__ = [
    "EVENT_KINDS",
    "DeliveryError",
    "LogConfig",
    "LogNotifier",
    "Notification",
    "NotificationEvent",
    "Notifications",
    "Notifier",
    "NotifierRegistrar",
    "NotifierSettings",
    "NotifierSpec",
    "NotifierStats",
    "NotifierType",
    "WebhookConfig",
    "WebhookNotifier",
]

_PROVIDERS = {
    "healthkit._notifier": (
        "EVENT_KINDS",
        "Notification",
        "NotificationEvent",
        "Notifier",
        "NotifierSettings",
        "NotifierSpec",
        "NotifierType",
    ),
    "healthkit._registrar": ("NotifierRegistrar",),
    "healthkit.notify._dispatch": ("Notifications", "NotifierStats"),
    "healthkit.notify._log": ("LogConfig", "LogNotifier"),
    "healthkit.notify._webhook": ("DeliveryError", "WebhookConfig", "WebhookNotifier"),
}
_LAZY = {name: module for module, names in _PROVIDERS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
