"""``composite``: combine child strategies with ``all``, ``any`` or ``quorum`` (k of n)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import attrs

from .. import validators as v
from .._guard import guarded_check
from .._result import CheckResult, Target
from .._status import Status, worst_status
from .._strategy import Strategy, StrategyContext, StrategySpec

__all__ = ["CompositeConfig", "CompositeStrategy", "combine"]


@attrs.frozen(kw_only=True)
class CompositeConfig:
    """Children and how their statuses combine."""

    mode: Literal["all", "any", "quorum"] = "all"
    #: How many children must be healthy in ``quorum`` mode.
    quorum: int | None = attrs.field(default=None, validator=v.ge(1))
    checks: tuple[StrategySpec, ...] = attrs.field(validator=v.non_empty)
    #: Seconds each child check may take. A child that hangs past it counts as
    #: unhealthy, and the results of the other children are still reported.
    timeout: float = attrs.field(default=1.0, validator=v.gt(0))

    def __attrs_post_init__(self) -> None:
        if self.mode == "quorum":
            if self.quorum is None:
                raise ValueError("quorum: required when mode = 'quorum'")
            if self.quorum > len(self.checks):
                n, k = len(self.checks), self.quorum
                raise ValueError(f"quorum: must be <= the number of checks ({n}), got {k}")
        elif self.quorum is not None:
            raise ValueError(f"quorum: only allowed when mode = 'quorum' (mode is {self.mode!r})")


def combine(mode: str, quorum: int | None, statuses: Sequence[Status]) -> tuple[Status, str]:
    """The composite status of child statuses, and a short reason.

    ``all``: the worst child. ``any``: the best child. ``quorum`` k: healthy
    when k children are healthy; degraded when k are at least degraded;
    unknown when the unknown children could still make up k; else unhealthy.
    """
    counts = {s: sum(1 for x in statuses if x is s) for s in Status}
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    if mode == "all":
        return worst_status(statuses), summary
    if mode == "any":
        return min(statuses, key=lambda s: s.severity), summary
    need = quorum or 1
    ok_healthy = counts[Status.HEALTHY]
    ok_serving = ok_healthy + counts[Status.DEGRADED]
    reason = f"quorum {need}/{len(statuses)}: {summary}"
    if ok_healthy >= need:
        return Status.HEALTHY, reason
    if ok_serving >= need:
        return Status.DEGRADED, reason
    if ok_serving + counts[Status.UNKNOWN] >= need:
        return Status.UNKNOWN, reason
    return Status.UNHEALTHY, reason


class CompositeStrategy:
    """Checks children concurrently; each child is a shared instance from the resolver."""

    name = "composite"

    def __init__(self, config: CompositeConfig, children: Sequence[Strategy]) -> None:
        self.config = config
        self._children = tuple(children)

    @classmethod
    def create(cls, config: CompositeConfig, context: StrategyContext) -> CompositeStrategy:
        return cls(config, [context.acquire(spec) for spec in config.checks])

    async def acheck(self, target: Target) -> CheckResult:
        results = await asyncio.gather(
            *(
                guarded_check(child, spec.strategy, target, timeout=self.config.timeout)
                for child, spec in zip(self._children, self.config.checks, strict=True)
            )
        )
        status, reason = combine(self.config.mode, self.config.quorum, [r.status for r in results])
        return CheckResult(
            status=status,
            strategy=self.name,
            target=target,
            detail=reason if self.config.mode == "quorum" else f"{self.config.mode}: {reason}",
            children=tuple(results),
        )

    async def aclose(self) -> None:
        # Children belong to the resolver, which releases them after this instance.
        return None
