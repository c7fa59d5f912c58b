"""The monitor's hard cap of one check: the declared deadline plus a grace with a floor."""

from __future__ import annotations

import pytest

from healthkit import MonitorSettings
from healthkit._guard import deadline_for, grace_for
from healthkit._strategy import StrategySpec
from healthkit.strategies.noop import NoopConfig


@pytest.mark.parametrize(
    ("timeout", "grace"),
    [
        # A floor of 0.1 s: at a 0.5 s timeout, 10 % (50 ms) was less than a busy
        # loop's lateness, and the monitor's cut beat the strategy's own timeout.
        (0.5, 0.1),
        (0.2, 0.1),
        (1.0, 0.1),
        # 10 % above the floor, up to 0.25 s.
        (2.0, 0.2),
        (2.5, 0.25),
        (60.0, 0.25),
        # A timeout shorter than the floor: the grace is the timeout, the cap twice it.
        (0.05, 0.05),
    ],
)
def test_grace_is_ten_percent_of_the_timeout_between_a_floor_and_a_ceiling(
    timeout: float, grace: float
) -> None:
    assert grace_for(timeout) == pytest.approx(grace)
    spec = StrategySpec(strategy="noop", config=NoopConfig())
    assert deadline_for(spec, MonitorSettings(timeout=timeout)) == pytest.approx(timeout + grace)
