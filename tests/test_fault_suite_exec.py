"""The fault suite of the ``exec`` plugin: the faults a command can have.

A command has no network, so its faults are its own: it hangs, is slow, drips
output forever, is killed by a signal, does not exist, prints garbage (binary
and terminal escapes) or a flood of output, exits non-zero. Network faults
(refused, DNS, TLS, ...) do not apply, so no such cells exist.

Each command gets the secret in ``env`` and prints it where it prints anything:
the cell asserts the documented status, an answer within the check's deadline
plus a grace, a readable detail, and that the secret shows nowhere.
"""

from __future__ import annotations

import pytest

from _fault_checks import assert_cell, run_check
from _fault_servers import BEARER, SLOW, TIMEOUT
from healthkit import Status, StrategyRegistry

ENV = "HK_FAULT_TOKEN"

#: fault -> (argv, the documented status). docs/plugins/exec.md: exit 0 healthy,
#: 1 degraded, 2 unhealthy, anything else or killed by a signal unknown, could not
#: start unknown, still running at ``timeout`` unhealthy.
FAULTS: dict[str, tuple[list[str], Status]] = {
    "none": (["/bin/sh", "-c", 'echo "ok for $HK_FAULT_TOKEN"'], Status.HEALTHY),
    "hang": (["/bin/sh", "-c", 'echo "$HK_FAULT_TOKEN"; sleep 60'], Status.UNHEALTHY),
    "slow": (["/bin/sh", "-c", f"sleep {SLOW}; exit 0"], Status.UNHEALTHY),
    "drip": (
        ["/bin/sh", "-c", 'echo "$HK_FAULT_TOKEN"; while :; do printf .; sleep 0.05; done'],
        Status.UNHEALTHY,
    ),
    # "$$$$": config values are interpolated, and "$$" is a literal "$" there.
    "killed": (["/bin/sh", "-c", 'echo "$HK_FAULT_TOKEN"; kill -9 $$$$'], Status.UNKNOWN),
    "missing": (["/nonexistent/hk-fault-no-such-program"], Status.UNKNOWN),
    "garbage": (
        [
            "/bin/sh",
            "-c",
            r'printf "\000\377\376\033[31m<<garbage %s>>\200\n" "$HK_FAULT_TOKEN"; exit 2',
        ],
        Status.UNHEALTHY,
    ),
    "huge": (
        [
            "/bin/sh",
            "-c",
            'head -c 1000000 /dev/zero | tr "\\000" x; echo "$HK_FAULT_TOKEN"; exit 2',
        ],
        Status.UNHEALTHY,
    ),
    "nonzero": (["/bin/sh", "-c", 'echo "not ready: $HK_FAULT_TOKEN"; exit 2'], Status.UNHEALTHY),
    "odd-exit": (["/bin/sh", "-c", 'echo "$HK_FAULT_TOKEN"; exit 7'], Status.UNKNOWN),
}


@pytest.fixture(scope="module")
def plugin_registry() -> StrategyRegistry:
    registry = StrategyRegistry()
    assert "exec" in registry.names(), "the exec plugin is not installed"
    return registry


@pytest.mark.parametrize("fault", list(FAULTS), ids=[f"exec-{f}" for f in FAULTS])
async def test_exec_fault_cell(fault: str, plugin_registry: StrategyRegistry) -> None:
    argv, expected = FAULTS[fault]
    health_check = {"strategy": "exec", "argv": argv, "timeout": TIMEOUT, "env": {ENV: BEARER}}
    outcome = await run_check(health_check, plugin_registry)
    assert_cell(outcome, expected)
