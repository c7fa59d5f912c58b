"""One redaction point: every result a strategy returns is masked before it is stored or shown.

A third-party strategy (or a library message it quotes, or an upstream that echoes
a header) may put a secret of the config into a result. The facade and the monitor
pass every result through the kit's redactor first, so the transition log line,
the monitor's memory, ``/health`` and the CLI never see it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest

import healthkit
from _monitor_support import wait_until
from healthkit import (
    CheckResult,
    ErrorInfo,
    HealthKit,
    Monitor,
    Secret,
    Status,
    StrategyRegistry,
    Target,
)

TOKEN = "s3cr3t-t0ken-value"


def _secret(value: Any) -> Secret:
    return value if isinstance(value, Secret) else Secret(str(value))


@attrs.frozen(kw_only=True)
class EchoConfig:
    token: Secret = attrs.field(converter=_secret)
    timeout: float = 1.0


class _Echo:
    """Fails, quoting its token the ways libraries do: bytes-quoted, repr-escaped, bare."""

    def __init__(self, config: EchoConfig) -> None:
        self.token = config.token.get_secret_value()

    def _result(self, target: Target) -> CheckResult:
        return CheckResult(
            status=Status.UNHEALTHY,
            strategy="echo",
            target=target,
            detail=f"UNAUTHENTICATED: bad credentials {self.token.encode()!r}",
            error=ErrorInfo(type="AuthError", message=f"token {self.token!r} refused"),
            endpoint=f"http://127.0.0.1:1/?key={self.token}",
            children=(
                CheckResult(
                    status=Status.UNHEALTHY,
                    strategy="echo",
                    target=target,
                    detail=f"child saw Bearer {self.token}",
                ),
            ),
        )

    async def acheck(self, target: Target) -> CheckResult:
        return self._result(target)

    async def aclose(self) -> None:
        pass


class _EchoBatch(_Echo):
    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]:
        return {t: self._result(t) for t in targets}


class EchoPlugin:
    @healthkit.hookimpl
    def healthkit_register_strategies(self, registrar: Any) -> None:
        registrar.add("echo", config=EchoConfig, factory=lambda c, ctx: _Echo(c))
        registrar.add("echo_batch", config=EchoConfig, factory=lambda c, ctx: _EchoBatch(c))


def _registry() -> StrategyRegistry:
    return StrategyRegistry(plugins=[EchoPlugin()], entry_points=False)


def _config(strategy: str, models: int = 1) -> dict[str, Any]:
    return {
        "defaults": {
            "health_check": {
                "strategy": strategy,
                "token": "${HK_TEST_TOKEN}",
                "period": 0.05,
                "failure_threshold": 1,
            }
        },
        "models": {f"m{i}": {} for i in range(models)},
    }


def _text(result: CheckResult) -> str:
    return repr(result) + repr(result.to_dict())


async def test_facade_masks_what_a_strategy_echoes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HK_TEST_TOKEN", TOKEN)
    registry = _registry()
    async with HealthKit.from_config(_config("echo"), registry=registry) as kit:
        result = await kit.acheck("m0")
        report = await kit.acheck_all()
    assert result.status is Status.UNHEALTHY
    assert "***" in result.detail and "***" in result.children[0].detail
    assert TOKEN not in _text(result)
    assert TOKEN not in repr(report.to_dict())


@pytest.mark.parametrize("strategy", ["echo", "echo_batch"])
async def test_monitor_masks_results_transitions_and_log_lines(
    strategy: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HK_TEST_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG, logger="healthkit")
    registry = _registry()
    kit = HealthKit.from_config(_config(strategy, models=3), registry=registry)
    async with Monitor(kit) as monitor:
        await wait_until(lambda: all(monitor.history(m) for m in monitor.models))
        on_demand = await monitor.acheck("m0", version=None)
        for model in monitor.models:
            last = monitor.last_result(model)
            assert last is not None and last.status is Status.UNHEALTHY
            assert TOKEN not in _text(last)
            for transition in monitor.history(model):
                assert TOKEN not in repr(transition.to_dict())
    assert TOKEN not in _text(on_demand)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "unknown -> unhealthy" in logged  # the transition lines were logged...
    assert TOKEN not in logged  # ...without the token


def test_redactor_result_returns_the_same_object_when_nothing_is_secret() -> None:
    kit = HealthKit.from_config({"models": {"a": {"health_check": {"strategy": "noop"}}}})
    result = CheckResult(status=Status.HEALTHY, strategy="noop", detail="fine")
    assert kit.redact(result) is result
