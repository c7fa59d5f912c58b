"""The checker's own liveness: ``/livez`` 503 and gRPC NOT_SERVING when it cannot do its job.

A ``blocker`` strategy (an in-process plugin, as a third-party one would be)
calls ``time.sleep`` in its check while the test asks it to: the real way a
plugin blocks the event loop. The watchdog thread must notice, log one WARNING
naming the strategy and model, and ``/livez`` must say so with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from _monitor_support import UvicornThread
from healthkit import (
    CheckResult,
    HealthKit,
    Monitor,
    Status,
    StrategyContext,
    StrategyRegistrar,
    StrategyRegistry,
    Target,
    hookimpl,
)
from healthkit._watchdog import Liveness, LoopWatchdog
from healthkit.asgi import create_app
from healthkit.grpc_health import HealthServicer

BLOCK = 0.8
LIMIT = 0.3


@attrs.frozen(kw_only=True)
class BlockerConfig:
    key: int = 0


class BlockerPlugin:
    """Strategy ``blocker``: healthy, but blocks the loop for BLOCK s once ``blocking`` is set."""

    __name__ = "blocker-plugin"

    def __init__(self) -> None:
        self.blocking = threading.Event()

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        registrar.add("blocker", config=BlockerConfig, factory=self.create)

    def create(self, config: BlockerConfig, context: StrategyContext) -> Any:
        plugin = self

        class Blocker:
            name = "blocker"

            async def acheck(self, target: Target) -> CheckResult:
                if plugin.blocking.is_set():
                    plugin.blocking.clear()
                    time.sleep(BLOCK)  # noqa: ASYNC251 - the fault under test: a blocked loop
                return CheckResult(status=Status.HEALTHY, strategy="blocker", target=target)

            async def aclose(self) -> None:
                pass

        return Blocker()


@pytest.fixture
def plugin() -> BlockerPlugin:
    return BlockerPlugin()


def make_kit(plugin: BlockerPlugin, period: float = 0.05) -> HealthKit:
    registry = StrategyRegistry(plugins=[plugin], entry_points=False, disabled=())
    config = {
        "models": {
            "alpha": {
                "health_check": {
                    "strategy": "blocker",
                    "period": period,
                    "jitter": 0.0,
                    "timeout": 5.0,
                }
            }
        }
    }
    return HealthKit.from_config(config, registry=registry)


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "healthkit-watchdog"]


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def stall_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "healthkit.watchdog" and r.levelno == logging.WARNING
    ]


# -- over a real uvicorn server -----------------------------------------------------------------


async def test_a_blocked_loop_turns_livez_503_and_names_the_check(
    plugin: BlockerPlugin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="healthkit.watchdog")
    # A watchdog of an earlier test whose monitor closed ends at its next look (within
    # one interval): wait for it, so the count below is this app's own.
    await wait_until(lambda: not watchdog_threads(), "earlier watchdog threads to end")
    app = create_app(make_kit(plugin), show_details="always", stall_limit=LIMIT)
    with UvicornThread(app) as served:
        # The lifespan started the watchdog thread: a daemon, never keeping the process alive.
        assert [t.daemon for t in watchdog_threads()] == [True]
        async with httpx.AsyncClient(base_url=served.url, timeout=5) as client:
            response = await client.get("/livez")
            assert (response.status_code, response.json()) == (200, {"live": True})

            plugin.blocking.set()
            await wait_until(lambda: bool(stall_warnings(caplog)), "the watchdog's warning")
            response = await client.get("/livez")  # answered once the loop is back
            assert response.status_code == 503
            body = response.json()
            assert body["live"] is False
            reason = body["reason"]
            assert reason.startswith("event loop was blocked for "), reason
            assert f"(limit {LIMIT:g}s) running check 'blocker' of model 'alpha'" in reason
            assert "test_watchdog.py:" in reason and "in acheck" in reason
            # The same on the OIP route that Kubernetes may probe instead.
            assert (await client.get("/v2/health/live")).status_code == 503

    # One WARNING line, written by the watchdog thread while the loop was blocked.
    (warning,) = stall_warnings(caplog)
    assert warning.threadName == "healthkit-watchdog"
    message = warning.getMessage()
    assert message.startswith("event loop is blocked for ")
    assert "check 'blocker' of model 'alpha'" in message
    # The lifespan stopped the thread at shutdown.
    assert watchdog_threads() == []


# -- in process (httpx.ASGITransport: no lifespan, the first request starts everything) ------


@pytest.fixture
async def app_client(plugin: BlockerPlugin) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(make_kit(plugin), stall_limit=LIMIT)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://health") as client:
        try:
            yield app, client
        finally:
            await app.state.monitor.aclose()
            await app.state.liveness.aclose()  # joins the thread: none left for the next test


async def test_reason_hides_model_names_without_details_and_clears_after_memory(
    plugin: BlockerPlugin, app_client: tuple[Any, httpx.AsyncClient]
) -> None:
    app, client = app_client
    assert (await client.get("/livez")).json() == {"live": True}
    liveness: Liveness = app.state.liveness
    liveness.stall_memory = 0.5
    monitor: Monitor = app.state.monitor
    plugin.blocking.set()
    await wait_until(lambda: not plugin.blocking.is_set(), "the blocking check")
    await wait_until(
        lambda: liveness.watchdog is not None and liveness.watchdog.last_stall() is not None,
        "the stall to end",
    )
    response = await client.get("/livez")
    assert response.status_code == 503
    reason = response.json()["reason"]
    assert reason.startswith("event loop was blocked for ") and reason.endswith(
        f"(limit {LIMIT:g}s)"
    ), reason
    assert "alpha" not in reason and "blocker" not in reason  # /livez without details
    # A one-off stall is remembered for stall_memory, then the checker is live again.
    deadline = time.monotonic() + 10
    while (response := await client.get("/livez")).status_code != 200:
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.05)
    assert response.json() == {"live": True}
    assert monitor.is_live()


async def test_closed_monitor_is_not_live_and_the_thread_ends(
    app_client: tuple[Any, httpx.AsyncClient],
) -> None:
    app, client = app_client
    # A thread of an earlier test's app (closed, not joined) may still be ending: only
    # the thread this app starts is this test's.
    earlier = set(watchdog_threads())
    assert (await client.get("/livez")).status_code == 200
    (own,) = set(watchdog_threads()) - earlier
    await app.state.monitor.aclose()
    response = await client.get("/livez")
    assert response.status_code == 503
    assert response.json() == {"live": False, "reason": "the health monitor is closed"}
    # Mounted without a lifespan, the thread still ends with the monitor.
    await wait_until(lambda: not own.is_alive(), "the watchdog thread to end")


# -- the progress rule --------------------------------------------------------------------------


class WedgedMonitor:
    """A monitor whose probes are due but make no progress.

    No real fault produces this on demand once checks are cut at their deadline
    (a timeout result is progress): it is the wedge the rule exists for, so the
    monitor's four read-only answers are stood in for here.
    """

    def __init__(self, kit: HealthKit) -> None:
        self.kit = kit
        self.closed = False
        self.last_progress = asyncio.get_running_loop().time()
        self.due = 0

    def is_live(self) -> bool:
        return True

    def overdue(self) -> int:
        return self.due


async def test_no_progress_while_probes_are_due_is_not_live(plugin: BlockerPlugin) -> None:
    kit = make_kit(plugin, period=0.1)
    wedged = WedgedMonitor(kit)
    liveness = Liveness(wedged, stall_limit=None, progress_periods=2.0)  # type: ignore[arg-type]
    window = liveness.progress_window()
    assert window is not None
    # 2 x (period 0.1 + timeout 5.0 + grace 0.25).
    assert window == pytest.approx(2 * (0.1 + 5.0 + 0.25))
    assert liveness.check().live
    wedged.last_progress -= window + 1
    assert liveness.check().live, "nothing due: an idle monitor is live"
    wedged.due = 3
    report = liveness.check()
    assert not report.live
    assert report.reason is not None
    assert report.reason.startswith("no check has completed for ")
    assert f"while 3 model(s) were due (limit {window:g}s)" in report.reason
    assert Liveness(wedged, stall_limit=None, progress_periods=None).check().live  # type: ignore[arg-type]


async def test_a_running_monitor_makes_progress(plugin: BlockerPlugin) -> None:
    # The real monitor: probes complete, so the progress rule keeps it live.
    async with Monitor(make_kit(plugin, period=0.02)) as monitor:
        liveness = Liveness(monitor, stall_limit=None, progress_periods=1.0)
        started = monitor.last_progress
        await wait_until(lambda: monitor.last_progress > started, "a completed probe")
        assert liveness.check().live


def test_settings_are_validated(plugin: BlockerPlugin) -> None:
    kit = make_kit(plugin)
    with pytest.raises(ValueError, match="stall_limit"):
        Liveness(Monitor(kit), stall_limit=0)
    with pytest.raises(ValueError, match="progress_periods"):
        Liveness(Monitor(kit), progress_periods=-1)
    with pytest.raises(ValueError, match="stall_limit"):
        LoopWatchdog(stall_limit=-1.0)


# -- gRPC liveness ------------------------------------------------------------------------------


async def test_grpc_liveness_service_goes_not_serving(plugin: BlockerPlugin) -> None:
    monitor = Monitor(make_kit(plugin))
    await monitor.start()
    liveness = Liveness(monitor, stall_limit=LIMIT)
    servicer = HealthServicer(monitor, liveness=liveness)
    server = grpc.aio.server()
    servicer.add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            ask = health_pb2.HealthCheckRequest(service="liveness")
            serving = health_pb2.HealthCheckResponse.SERVING
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            assert (await stub.Check(ask, timeout=5)).status == serving
            plugin.blocking.set()
            await wait_until(lambda: not plugin.blocking.is_set(), "the blocking check")
            await wait_until(
                lambda: (
                    liveness.watchdog is not None and liveness.watchdog.last_stall() is not None
                ),
                "the stall to end",
            )
            assert (await stub.Check(ask, timeout=5)).status == not_serving
            await monitor.aclose()
            assert (await stub.Check(ask, timeout=5)).status == not_serving
    finally:
        await server.stop(grace=None)
        await monitor.aclose()
        await liveness.aclose()
    assert watchdog_threads() == []
