"""Plugin containment: checks that swallow cancellation, closes that raise or hang, deadline inputs.

The CLI tests load a plugin module with ``healthkit -p`` from a temporary
directory, in a real ``healthkit`` subprocess.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest

from healthkit import (
    CheckResult,
    HealthKit,
    MonitorSettings,
    Resolver,
    Status,
    StrategyRegistrar,
    StrategyRegistry,
    StrategySpec,
    Target,
    hookimpl,
    load_config,
)
from healthkit._guard import deadline_for
from healthkit.toolkit import guarded_check

PLUGIN = '''
import asyncio

import attrs
from healthkit import CheckResult, Status, hookimpl


@attrs.frozen(kw_only=True)
class Config:
    timeout: float = 1.0


class Stubborn:
    """Swallows every cancellation, in its check and in its close."""

    async def acheck(self, target):
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass

    async def aclose(self):
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass


class Fine:
    async def acheck(self, target):
        return CheckResult(status=Status.HEALTHY, strategy="fine", target=target, detail="ok")

    async def aclose(self):
        return None


@hookimpl
def healthkit_register_strategies(registrar):
    registrar.add("stubborn", config=Config, factory=lambda c, ctx: Stubborn())
    registrar.add("fine", config=Config, factory=lambda c, ctx: Fine())
'''


def healthkit_cli(
    tmp_path: Path, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hk_containment_plugin.py").write_text(PLUGIN)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONPATH": path, **env}
    for name in ("HEALTHKIT_PLUGINS", "HEALTHKIT_TRACEBACK", "HEALTHKIT_DISABLE_PLUGINS"):
        if name not in env:
            full_env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "healthkit", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=timeout,
        check=False,
    )


# -- checks that swallow cancellation ---------------------------------------------------


class _Swallower:
    def __init__(self) -> None:
        self.cancels = 0
        self.release = asyncio.Event()

    async def acheck(self, target: Target) -> CheckResult:
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancels += 1
        return CheckResult(status=Status.HEALTHY, strategy="swallow", target=target)

    async def aclose(self) -> None:
        return None


async def test_the_hard_cap_abandons_a_check_that_swallows_cancellation() -> None:
    strategy = _Swallower()
    # The safety net only turns a hang (the bug) into a failure instead of a stuck test run.
    call = asyncio.ensure_future(guarded_check(strategy, "swallow", Target(), timeout=0.1))
    done, _ = await asyncio.wait({call}, timeout=10)
    if not done:
        strategy.release.set()  # let it go, so that this test fails instead of hanging
        await asyncio.wait({call}, timeout=10)
        pytest.fail("guarded_check waited for a check that ignores cancellation")
    result = call.result()
    assert result.status is Status.UNHEALTHY
    assert result.error is not None and result.error.type == "TimeoutError"
    assert strategy.cancels >= 1  # it was asked to stop
    (left,) = [t for t in asyncio.all_tasks() if t.get_name() == "check of 'swallow'"]
    assert not left.done()  # abandoned, not awaited: it is still looping
    strategy.release.set()  # the abandoned check may end now, and does
    done, _ = await asyncio.wait({left}, timeout=10)
    assert done and left.result().status is Status.HEALTHY


def test_healthkit_check_exits_when_a_check_swallows_cancellation(tmp_path: Path) -> None:
    (tmp_path / "hk.toml").write_text(
        '[models.stuck.health_check]\nstrategy = "stubborn"\ntimeout = 0.2\n'
        '[models.ok.health_check]\nstrategy = "fine"\n'
    )
    # Before the fix this never returned; the subprocess timeout is only the safety net.
    done = healthkit_cli(tmp_path, "-p", "hk_containment_plugin", "check", "hk.toml", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    # The cap: timeout 0.2 s plus the grace (its 0.1 s floor).
    assert "check timed out after 0.3s" in done.stdout
    assert "ok  " in done.stdout and "healthy" in done.stdout
    # The hanging close was bounded by the one-shot close timeout, and named.
    assert "closing strategy 'stubborn' (plugin 'hk_containment_plugin') took over 0.5s" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


# -- closes that raise or hang ------------------------------------------------------------


class _BadClose:
    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def acheck(self, target: Target) -> CheckResult:
        return CheckResult(status=Status.HEALTHY, strategy="bad-close", target=target)

    async def aclose(self) -> None:
        if self.mode == "raise":
            raise OSError("socket already gone")
        await asyncio.Event().wait()


@attrs.frozen(kw_only=True)
class _ModeConfig:
    mode: str = "raise"


class _BadClosePlugin:
    __name__ = "bad-close-plugin"

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        registrar.add("bad-close", config=_ModeConfig, factory=lambda c, ctx: _BadClose(c.mode))


def _bad_close_registry() -> StrategyRegistry:
    return StrategyRegistry(plugins=[_BadClosePlugin()], entry_points=False, modules=())


async def test_a_close_that_raises_is_one_warning_line_naming_the_plugin(
    caplog: pytest.LogCaptureFixture,
) -> None:
    resolver = Resolver(_bad_close_registry())
    resolver.acquire("m", StrategySpec(strategy="bad-close", config=_ModeConfig(mode="raise")))
    with caplog.at_level(logging.DEBUG, logger="healthkit"):
        await resolver.aclose()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "plugin 'bad-close-plugin'" in line and "OSError: socket already gone" in line
    assert "\n" not in line and warnings[0].exc_info is None
    # The traceback is there for whoever asks for DEBUG.
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)


async def test_a_close_that_hangs_is_bounded_by_close_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = _bad_close_registry()
    config = load_config(
        {"models": {"m": {"health_check": {"strategy": "bad-close", "mode": "hang"}}}},
        registry=registry,
    )
    kit = HealthKit(config, registry=registry, close_timeout=0.05)
    await kit.astart()
    with caplog.at_level(logging.WARNING, logger="healthkit"):
        closing = asyncio.ensure_future(kit.aclose())
        done, _ = await asyncio.wait({closing}, timeout=10)
    assert done
    assert "closing strategy 'bad-close' (plugin 'bad-close-plugin') took over 0.05s" in (
        caplog.text
    )


def test_close_timeout_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="close_timeout"):
        Resolver(_bad_close_registry(), close_timeout=-1)


# -- deadline inputs ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _AnyRetries:
    # A plugin whose "retries" means something of its own, unrelated to healthkit's deadline.
    retries: Any = None
    backoff: Any = None


@attrs.frozen(kw_only=True)
class _Declares:
    attempts: int = 3

    def check_deadline(self, timeout: float) -> float:
        return timeout * self.attempts + 0.5


@attrs.frozen(kw_only=True)
class _DeclaresGarbage:
    answer: Any = "soon"

    def check_deadline(self, timeout: float) -> Any:
        return self.answer


SETTINGS = MonitorSettings(timeout=2.0)
GRACE = 0.2  # min(10 % of 2.0, 0.25)


@pytest.mark.parametrize("retries", ["three", [1, 2], {"a": 1}, 10**6])
def test_fields_named_like_retries_are_not_read_by_name(retries: Any) -> None:
    # Before: "three" crashed with ValueError, a list with TypeError, 10**6 gave a cap of days.
    spec = StrategySpec(strategy="x", config=_AnyRetries(retries=retries, backoff="slow"))
    assert deadline_for(spec, SETTINGS) == pytest.approx(2.0 + GRACE)


def test_a_declared_deadline_is_used() -> None:
    spec = StrategySpec(strategy="x", config=_Declares(attempts=3))
    assert deadline_for(spec, SETTINGS) == pytest.approx(3 * 2.0 + 0.5 + GRACE)


def test_the_builtin_retrying_strategies_declare_their_deadline() -> None:
    registry = StrategyRegistry(entry_points=False)
    for name, extra in (("http", {"base_url": "http://127.0.0.1:1"}), ("grpc", {"target": "x:1"})):
        if name not in registry or registry.get(name).unavailable:
            continue
        config = load_config(
            {
                "models": {
                    "m": {
                        "health_check": {
                            "strategy": name,
                            "timeout": 2.0,
                            "retries": 2,
                            "backoff": 0.1,
                            "backoff_max": 0.5,
                            **extra,
                        }
                    }
                }
            },
            registry=registry,
        )
        mc = config.models["m"]
        # Three attempts of 2 s, two pauses of at most backoff_max + backoff, and the grace.
        assert deadline_for(mc.check, mc.monitor) == pytest.approx(3 * 2.0 + 2 * 0.6 + GRACE)


@pytest.mark.parametrize("answer", ["soon", None, -1.0, float("nan"), float("inf"), True])
def test_an_unusable_declared_deadline_falls_back_to_one_attempt_and_warns_once(
    answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @attrs.frozen(kw_only=True)
    class Garbage(_DeclaresGarbage):
        pass

    spec = StrategySpec(strategy="x", config=Garbage(answer=answer))
    with caplog.at_level(logging.WARNING, logger="healthkit"):
        first = deadline_for(spec, SETTINGS)
        second = deadline_for(spec, SETTINGS)
    assert first == second == pytest.approx(2.0 + GRACE)
    warnings = [r for r in caplog.records if "check_deadline" in r.getMessage()]
    assert len(warnings) == 1
    assert "assuming one attempt" in warnings[0].getMessage()


def test_the_cli_survives_a_plugin_config_with_odd_retries(tmp_path: Path) -> None:
    (tmp_path / "plug_retries.py").write_text(
        textwrap.dedent(
            """
            from typing import Any

            import attrs
            from healthkit import CheckResult, Status, hookimpl

            @attrs.frozen(kw_only=True)
            class Config:
                retries: Any = 0

            class Fine:
                async def acheck(self, target):
                    return CheckResult(status=Status.HEALTHY, strategy="anyretries",
                                       target=target, detail="ok")

                async def aclose(self):
                    return None

            @hookimpl
            def healthkit_register_strategies(registrar):
                registrar.add("anyretries", config=Config, factory=lambda c, ctx: Fine())
            """
        )
    )
    (tmp_path / "hk.toml").write_text(
        '[models.a.health_check]\nstrategy = "anyretries"\nretries = "three"\n'
    )
    done = healthkit_cli(tmp_path, "check", "hk.toml", HEALTHKIT_PLUGINS="plug_retries")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
