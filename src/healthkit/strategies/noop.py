"""``noop``: always healthy; the "health check off" of today's model servers."""

from __future__ import annotations

import time

import attrs

from .._result import CheckResult, Target, leaf_result
from .._status import Status
from .._strategy import StrategyContext

__all__ = ["NoopConfig", "NoopStrategy"]

#: Latencies under this many microseconds are shared float objects.
_SHARED = 64
#: ``_MICROSECONDS[n]``: a check that took ``n`` to ``n + 1`` microseconds.
_MICROSECONDS = tuple((n + 1) / 1e6 for n in range(_SHARED))


@attrs.frozen(kw_only=True)
class NoopConfig:
    """``noop`` takes no options."""


class NoopStrategy:
    """Reports every target healthy without contacting anything."""

    name = "noop"
    #: ``acheck`` answers without awaiting anything: the monitor runs it inline, with no
    #: task of its own (see ``healthkit._monitoring._checks.ANSWERS_INLINE``).
    _healthkit_answers_inline = True

    def __init__(self, config: NoopConfig) -> None:
        self.config = config

    async def acheck(self, target: Target) -> CheckResult:
        return self._healthkit_check_now(target)

    def _healthkit_check_now(self, target: Target) -> CheckResult:
        # What ``acheck`` answers, as a plain call: the monitor's probes call this (see
        # ``healthkit._monitoring._checks.CHECK_NOW``), without a coroutine per probe.
        began = time.perf_counter()
        micros = int((time.perf_counter() - began) * 1e6)
        # Built field by field (leaf_result): the monitor runs this once per probe.
        return leaf_result(
            status=Status.HEALTHY,
            strategy=self.name,
            target=target,
            detail="no check configured",
            # Its own (tiny) latency, so the caller need not copy the result to fill it
            # in: rounded up to the microsecond (what ``latency_ms`` shows), one of a few
            # shared floats rather than a float of its own in every result (24 bytes,
            # two results a model, a hundred thousand models).
            latency=_MICROSECONDS[micros] if micros < _SHARED else (micros + 1) / 1e6,
        )

    async def aclose(self) -> None:
        return None

    @classmethod
    def create(cls, config: NoopConfig, context: StrategyContext) -> NoopStrategy:
        return cls(config)
