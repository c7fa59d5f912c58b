"""A monitor's history store and notifiers, from its config's ``[history]`` and ``[[notifiers]]``.

Started and stopped with the server (``create_app``'s lifespan, so ``healthkit
serve`` too). Neither can take health down: a history file that cannot be
used is logged and the server runs without history; a notifier that cannot
be built is logged and left out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .history import HistoryError, HistoryStore
from .notify import Notifications

if TYPE_CHECKING:
    from ._monitor import Monitor

__all__ = ["Operations"]

log = logging.getLogger("healthkit.history")


class Operations:
    """The history store and notifications of ``monitor``, as its kit's config asks.

    The config read is the one at :meth:`start`; a reload that changes
    ``[history]`` or ``[[notifiers]]`` takes effect at the next start.
    """

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.history: HistoryStore | None = None
        self.notifications: Notifications | None = None
        #: Why the configured history is off (the file cannot be used), else ``None``.
        self.history_error: str | None = None

    async def start(self) -> None:
        config = self.monitor.kit.config
        if config.history is not None and self.history is None:
            try:
                # Opening may migrate or wait on a busy file: off the loop.
                self.history = await asyncio.to_thread(HistoryStore.from_config, config.history)
            except HistoryError as exc:
                self.history_error = str(exc)
                log.error("history is off: %s", exc)
            else:
                self.history.attach(self.monitor)
        if config.notifiers and self.notifications is None:
            kit = self.monitor.kit
            self.notifications = Notifications(
                config.notifiers, registry=kit.registry, redact=kit.redactor
            )
            self.notifications.attach(self.monitor)

    async def aclose(self) -> None:
        notifications, self.notifications = self.notifications, None
        if notifications is not None:
            await notifications.aclose()
        history, self.history = self.history, None
        if history is not None:
            await history.aclose()
