"""The ``[history]`` section of a config, and durations such as ``24h``."""

from __future__ import annotations

import os
import re
from typing import Any

import attrs

__all__ = ["HistoryConfig", "history_from_raw", "parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?b?)\s*$", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"`` or ``"2w"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '24h' or '7d', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected a duration such as '24h' or '7d', got {value!r}")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"expected a positive duration, got {value!r}")
    return seconds


def _size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '100MB', got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    else:
        raise ValueError(f"expected a size such as '100MB', got {value!r}")
    if size < 64 * 1024:
        raise ValueError(f"must be at least 64kB, got {value!r}")
    return size


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class HistoryConfig:
    """Where and how long history is kept (``[history]`` in a config)."""

    #: The SQLite file; created with its directory's permissions if missing.
    path: str = attrs.field(validator=attrs.validators.instance_of(str))
    #: Seconds of history kept (``"30d"`` in a config).
    retention: float = attrs.field(default=30 * 86400.0, converter=parse_duration)
    #: Bytes the file may grow to before the oldest minutes go (``"100MB"``); no cap by default.
    max_size: int | None = attrs.field(default=None, converter=_size)
    #: Events waiting for the writer; more are dropped (counted, logged once per interval).
    queue_size: int = attrs.field(default=100_000, converter=_positive_int)
    #: Seconds between the writer's batches.
    flush_interval: float = attrs.field(default=1.0, converter=parse_duration)

    @path.validator
    def _check_path(self, _attribute: object, value: str) -> None:
        if not value.strip():
            raise ValueError("expected the path of an SQLite file, got an empty string")


def history_from_raw(parser: Any, raw: Any, source: str | None) -> HistoryConfig | None:
    """The ``[history]`` table, validated (issues to ``parser.issues``); a relative
    ``path`` is taken from the config file's directory, so every command finds one file."""
    from ._structure import Invalid

    if raw is None:
        return None
    try:
        config: HistoryConfig = parser.record(HistoryConfig, raw, "history")
    except Invalid:
        return None
    if source is not None and not os.path.isabs(config.path):
        base = os.path.dirname(os.path.abspath(source))
        config = attrs.evolve(config, path=os.path.join(base, config.path))
    return config
