"""Per-model monitoring settings that live beside the strategy in ``health_check``.

They never take part in deduplication: two models with equal strategy configs
share one instance even when they probe at different periods.
"""

from __future__ import annotations

import attrs

from .validators import ge, gt, le

__all__ = ["MonitorSettings"]


@attrs.frozen(kw_only=True)
class MonitorSettings:
    """How often and how patiently a model is probed (Kubernetes-like defaults)."""

    #: Seconds an on-demand result is reused before the next upstream check.
    cache_ttl: float = attrs.field(default=1.0, validator=ge(0))
    #: Seconds between background probes.
    period: float = attrs.field(default=10.0, validator=gt(0))
    #: Seconds before the first background probe.
    initial_delay: float = attrs.field(default=0.0, validator=ge(0))
    #: Fraction of ``period`` by which each probe is randomly shifted (0 to 1).
    jitter: float = attrs.field(default=0.1, validator=[ge(0), le(1)])
    #: Hard deadline of one check, enforced by the monitor even if a plugin ignores it.
    #: Also passed to the strategy when its config has a ``timeout`` field.
    timeout: float = attrs.field(default=1.0, validator=gt(0))
    #: Consecutive successes needed to turn ready.
    success_threshold: int = attrs.field(default=1, validator=ge(1))
    #: Consecutive failures needed to turn not ready.
    failure_threshold: int = attrs.field(default=3, validator=ge(1))
    #: Faster probing period while unhealthy; ``None`` keeps ``period``.
    unhealthy_period: float | None = attrs.field(default=None, validator=gt(0))
    #: Seconds after its last result that a model answers ``unknown`` (not ready) if no
    #: newer result arrived. ``None``: ``max(3, failure_threshold) x (period + deadline)``,
    #: as many missed probe cycles as the thresholds would need to call a failure.
    max_stale: float | None = attrs.field(default=None, validator=gt(0))

    def stale_after(self, deadline: float) -> float:
        """The effective ``max_stale`` for a check whose hard deadline is ``deadline``."""
        if self.max_stale is not None:
            return self.max_stale
        return max(3, self.failure_threshold) * (self.period + deadline)
