"""The ``log`` notifier: one JSON line per notification on logger ``healthkit.notify``."""

from __future__ import annotations

import json
import logging

import attrs

from .._notifier import Notification

__all__ = ["LogConfig", "LogNotifier"]

log = logging.getLogger("healthkit.notify")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


@attrs.frozen(kw_only=True)
class LogConfig:
    #: ``debug``, ``info`` or ``warning``.
    level: str = attrs.field(default="warning", validator=attrs.validators.in_(tuple(_LEVELS)))


class LogNotifier:
    def __init__(self, config: LogConfig) -> None:
        self._level = _LEVELS[config.level]

    async def send(self, notification: Notification) -> None:
        log.log(self._level, "%s", json.dumps(notification.to_dict(), sort_keys=True))

    async def aclose(self) -> None:
        pass
