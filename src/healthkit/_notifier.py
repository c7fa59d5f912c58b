"""What notifiers receive, and the settings every ``[[notifiers]]`` entry shares."""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ._configuration._history import parse_duration

__all__ = [
    "EVENT_KINDS",
    "Notification",
    "NotificationEvent",
    "Notifier",
    "NotifierSettings",
    "NotifierSpec",
    "NotifierType",
    "event_kind",
]

#: What a transition is called in ``events``: the new status, or ``recovered``
#: (back to healthy from unhealthy or degraded), or ``up`` (first healthy result).
EVENT_KINDS = ("unhealthy", "degraded", "recovered", "unknown", "up")


def event_kind(old: str, new: str) -> str:
    if new == "healthy":
        return "recovered" if old in ("unhealthy", "degraded") else "up"
    return new


@attrs.frozen(kw_only=True)
class NotificationEvent:
    """One model's transition, as notified."""

    model: str
    old: str
    new: str
    kind: str
    at: dt.datetime
    #: The result's detail, already through the kit's redactor.
    detail: str | None = None
    #: Transitions of this model held back by ``min_interval`` before this one.
    suppressed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "old": self.old,
            "new": self.new,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "detail": self.detail,
            "suppressed": self.suppressed,
        }


@attrs.frozen(kw_only=True)
class Notification:
    """One message: a single transition, or a storm of them grouped into one."""

    #: The ``name`` of the ``[[notifiers]]`` entry sending it.
    notifier: str
    events: tuple[NotificationEvent, ...]
    #: True when ``storm_threshold`` or more transitions arrived in one ``storm_window``.
    storm: bool = False

    @property
    def kind(self) -> str:
        kinds = {e.kind for e in self.events}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def summary(self) -> str:
        """One human line: ``model 'a' is unhealthy (503)`` or ``500 models: 500 unhealthy``."""
        if not self.storm and len(self.events) == 1:
            e = self.events[0]
            verb = {
                "recovered": "recovered (healthy)",
                "up": "is up (healthy)",
            }.get(e.kind, f"is {e.kind}")
            text = f"model {e.model!r} {verb}"
            if e.detail and e.kind != "recovered":
                text += f": {e.detail}"
            if e.suppressed:
                text += f" ({e.suppressed} earlier changes not notified)"
            return text
        counts: dict[str, int] = {}
        for e in self.events:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        names = [e.model for e in self.events]
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        return f"{len(self.events)} models changed at once ({parts}): {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "notifier": self.notifier,
            "summary": self.summary,
            "kind": self.kind,
            "storm": self.storm,
            "count": len(self.events),
            "events": [e.to_dict() for e in self.events],
        }


@runtime_checkable
class Notifier(Protocol):
    """What a notifier factory returns."""

    async def send(self, notification: Notification) -> None:
        """Deliver ``notification``; raise when it was not delivered (it is retried)."""

    async def aclose(self) -> None: ...


def _kinds(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"expected a non-empty list of {', '.join(EVENT_KINDS)}, got {value!r}")
    for kind in value:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event {kind!r}; known: {', '.join(EVENT_KINDS)}")
    return tuple(dict.fromkeys(value))


def _patterns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of model names or globs, got {value!r}")
    return tuple(value)


def _seconds_or_zero(value: Any) -> float:
    if value in (0, "0", 0.0):
        return 0.0
    return parse_duration(value)


def _retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ValueError(f"expected an integer from 0 to 10, got {value!r}")
    return value


def _threshold(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"expected an integer >= 2, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class NotifierSettings:
    """The keys every ``[[notifiers]]`` entry takes, whatever its ``type``."""

    #: Which transitions are sent.
    events: tuple[str, ...] = attrs.field(
        default=("unhealthy", "degraded", "recovered"), converter=_kinds
    )
    #: Model names or globs (``llm-*``); every model by default.
    models: tuple[str, ...] = attrs.field(default=("*",), converter=_patterns)
    #: At most one message per model this often; changes meanwhile are folded into
    #: the next one (the latest state is always told).
    min_interval: float = attrs.field(default=0.0, converter=_seconds_or_zero)
    #: Transitions are collected this long before sending (``0``: no grouping).
    storm_window: float = attrs.field(default=5.0, converter=_seconds_or_zero)
    #: This many transitions or more in one window make one storm message.
    storm_threshold: int = attrs.field(default=5, converter=_threshold)
    #: Seconds one delivery attempt may take.
    timeout: float = attrs.field(default=5.0, converter=parse_duration)
    #: Attempts after the first, with a short exponential backoff.
    retries: int = attrs.field(default=2, converter=_retries)

    def wants(self, model: str, kind: str) -> bool:
        return kind in self.events and any(fnmatch.fnmatchcase(model, p) for p in self.models)


#: Keys of a ``[[notifiers]]`` entry that are not the notifier's own config.
SPEC_KEYS = ("name", "type")


@attrs.frozen(kw_only=True)
class NotifierSpec:
    """One ``[[notifiers]]`` entry: its name, type, shared settings and the type's config."""

    name: str
    type: str
    settings: NotifierSettings = attrs.field(factory=NotifierSettings)
    config: Any = None


@attrs.frozen(kw_only=True)
class NotifierType:
    """A notifier a plugin registered: its config class and how to build one."""

    name: str
    config_class: type[Any]
    #: ``factory(config)`` -> an object with ``async send(notification)`` and ``async aclose()``.
    factory: Callable[[Any], Any]
    description: str = ""
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None

    @property
    def origin(self) -> str:
        parts = [p for p in (self.distribution, self.version) if p]
        return f"plugin {self.plugin!r}" + (f" ({' '.join(parts)})" if parts else "")
