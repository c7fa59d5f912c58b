"""Notifications of transitions: built-in ``webhook`` and ``log`` notifiers, and plugins'.

Notifiers come from the ``healthkit_register_notifiers`` hook (the built-ins
too); a config's ``[[notifiers]]`` entries pick them by ``type``.
"""

from __future__ import annotations

from .._notifier import (
    EVENT_KINDS,
    Notification,
    NotificationEvent,
    Notifier,
    NotifierSettings,
    NotifierSpec,
)
from .._registrar import NotifierRegistrar, NotifierType
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
