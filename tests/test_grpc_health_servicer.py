"""healthkit's grpc.health.v1 servicer, on a real grpc.aio server, asked by real clients."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import attrs
import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from healthkit import (
    CheckResult,
    HealthKit,
    Monitor,
    Status,
    StrategyRegistry,
    Target,
    load_config,
)
from healthkit.grpc_health import (
    BoardChange,
    HealthServicer,
    StatusBoard,
    StatusSource,
    serving_status,
)
from healthkit.strategies.grpc import GrpcConfig, GrpcStrategy
from healthkit.testing import OipServicer, serve_grpc

Serving = health_pb2.HealthCheckResponse
SERVING, NOT_SERVING = Serving.SERVING, Serving.NOT_SERVING
UNKNOWN, SERVICE_UNKNOWN = Serving.UNKNOWN, Serving.SERVICE_UNKNOWN


@attrs.frozen
class Served:
    servicer: HealthServicer
    server: Any
    stub: Any
    address: str
    channel: Any


@contextlib.asynccontextmanager
async def health_server(source: StatusSource) -> AsyncIterator[Served]:
    """Serve a HealthServicer over ``source`` on a real grpc.aio server, with a real client."""
    servicer = HealthServicer(source)
    async with contextlib.AsyncExitStack() as stack:
        server, address = await stack.enter_async_context(serve_grpc([servicer.add_to_server]))
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
        yield Served(servicer, server, health_pb2_grpc.HealthStub(channel), address, channel)


async def status_of(stub: Any, service: str) -> int:
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return int(reply.status)


async def next_status(stream: Any) -> int:
    reply = await asyncio.wait_for(stream.read(), timeout=5)
    assert reply is not grpc.aio.EOF, "the Watch stream ended"
    return int(reply.status)


@pytest.fixture
def board() -> StatusBoard:
    return StatusBoard({"resnet": Status.HEALTHY, "bert": Status.DEGRADED, "llama": Status.HEALTHY})


def test_status_mapping() -> None:
    assert serving_status(Status.HEALTHY) == SERVING
    assert serving_status(Status.DEGRADED) == SERVING  # degraded still serves traffic
    assert serving_status(Status.UNHEALTHY) == NOT_SERVING
    assert serving_status(Status.UNKNOWN) == UNKNOWN


def test_board_is_a_status_source(board: StatusBoard) -> None:
    assert isinstance(board, StatusSource)
    changes: list[Any] = []
    board.add_listener(changes.append)
    board.set("resnet", Status.HEALTHY)  # no change, no event
    board.set("resnet", "unhealthy")
    board.remove("llama")
    board.update({"bert": CheckResult(status=Status.UNKNOWN, strategy="x", target=Target())})
    assert changes == [
        BoardChange(model="resnet", old=Status.HEALTHY, new=Status.UNHEALTHY),
        BoardChange(model="llama", old=Status.HEALTHY, new=None),
        BoardChange(model="bert", old=Status.DEGRADED, new=Status.UNKNOWN),
    ]
    assert board.models == ["resnet", "bert"]
    with pytest.raises(KeyError):
        board.status("llama")


async def test_board_follows_a_healthkit_report() -> None:
    registry = StrategyRegistry(entry_points=False, disabled=())
    raw = {"models": {"a": {"health_check": {"strategy": "noop"}}, "b": {}}}
    board = StatusBoard({"a": Status.UNHEALTHY})
    async with HealthKit.from_config(raw, registry=registry) as kit:
        board.update(await kit.acheck_all())
    assert {m: board.status(m) for m in board.models} == {"a": Status.HEALTHY, "b": Status.HEALTHY}


async def test_check_per_model_and_aggregate(board: StatusBoard) -> None:
    async with health_server(board) as served:
        stub = served.stub
        assert await status_of(stub, "resnet") == SERVING
        assert await status_of(stub, "bert") == SERVING
        assert await status_of(stub, "") == SERVING
        board.set("llama", Status.UNHEALTHY)
        assert await status_of(stub, "llama") == NOT_SERVING
        assert await status_of(stub, "") == NOT_SERVING  # the worst model wins
        board.set("llama", Status.UNKNOWN)
        assert await status_of(stub, "") == UNKNOWN
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await status_of(stub, "ghost")
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_no_models_is_serving() -> None:
    async with health_server(StatusBoard()) as served:
        stub = served.stub
        assert await status_of(stub, "") == SERVING


async def test_list(board: StatusBoard) -> None:
    board.set("llama", Status.UNHEALTHY)
    async with health_server(board) as served:
        if not hasattr(health_pb2, "HealthListRequest"):
            # grpcio-health-checking before List (as with KServe's protobuf pin): not served.
            call = served.channel.unary_unary("/grpc.health.v1.Health/List")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(b"", timeout=2)
            assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
            return
        reply = await served.stub.List(health_pb2.HealthListRequest(), timeout=2)
    statuses = {name: int(r.status) for name, r in reply.statuses.items()}
    assert statuses == {"": NOT_SERVING, "resnet": SERVING, "bert": SERVING, "llama": NOT_SERVING}


async def test_watch_streams_transitions(board: StatusBoard) -> None:
    async with health_server(board) as served:
        servicer, stub = served.servicer, served.stub
        model = stub.Watch(health_pb2.HealthCheckRequest(service="resnet"))
        whole = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        assert await next_status(model) == SERVING
        assert await next_status(whole) == SERVING
        board.set("resnet", Status.UNHEALTHY)
        assert await next_status(model) == NOT_SERVING
        assert await next_status(whole) == NOT_SERVING
        board.set("resnet", Status.UNKNOWN)
        assert await next_status(model) == UNKNOWN
        board.set("resnet", Status.DEGRADED)
        assert await next_status(model) == SERVING
        # A change that keeps the serving status sends nothing: after a round trip
        # (which lets the server loop run the watcher), the next message is the next
        # real transition, not a repeated SERVING.
        board.set("resnet", Status.HEALTHY)
        assert await status_of(stub, "resnet") == SERVING
        board.set("resnet", Status.UNHEALTHY)
        assert await next_status(model) == NOT_SERVING
        assert servicer.watchers == 2
        model.cancel()
        whole.cancel()
        for _ in range(100):
            if servicer.watchers == 0:
                break
            await asyncio.sleep(0.01)
        assert servicer.watchers == 0, "cancelled Watch streams must be cleaned up"


async def test_watch_unknown_service_until_it_appears(board: StatusBoard) -> None:
    async with health_server(board) as served:
        stub = served.stub
        stream = stub.Watch(health_pb2.HealthCheckRequest(service="whisper"))
        assert await next_status(stream) == SERVICE_UNKNOWN
        board.set("whisper", Status.HEALTHY)
        assert await next_status(stream) == SERVING
        stream.cancel()


async def test_changes_from_another_thread_reach_watchers(board: StatusBoard) -> None:
    async with health_server(board) as served:
        stub = served.stub
        stream = stub.Watch(health_pb2.HealthCheckRequest(service="bert"))
        assert await next_status(stream) == SERVING
        thread = threading.Thread(target=board.set, args=("bert", Status.UNHEALTHY))
        thread.start()
        thread.join()
        assert await next_status(stream) == NOT_SERVING
        stream.cancel()


async def test_graceful_shutdown_ends_watches_and_does_not_hold_the_server(
    board: StatusBoard,
) -> None:
    async with health_server(board) as served:
        servicer, server, stub = served.servicer, served.server, served.stub
        streams = [stub.Watch(health_pb2.HealthCheckRequest(service=s)) for s in ("resnet", "")]
        for stream in streams:
            assert await next_status(stream) == SERVING
        await servicer.enter_graceful_shutdown()
        for stream in streams:
            assert await next_status(stream) == NOT_SERVING
            assert await asyncio.wait_for(stream.read(), 5) is grpc.aio.EOF
            assert await stream.code() is grpc.StatusCode.OK
        assert await status_of(stub, "resnet") == NOT_SERVING
        board.set("resnet", Status.HEALTHY)  # ignored from now on
        assert await status_of(stub, "resnet") == NOT_SERVING
        # No stream is left open, so a long grace returns at once.
        late = stub.Watch(health_pb2.HealthCheckRequest(service="bert"))
        assert await next_status(late) == NOT_SERVING
        assert await asyncio.wait_for(late.read(), 5) is grpc.aio.EOF
        await asyncio.wait_for(server.stop(grace=60), timeout=10)


async def test_healthkit_checks_healthkit(board: StatusBoard) -> None:
    """The grpc strategy (health-v1) reads the servicer: both halves agree."""
    async with health_server(board) as served:
        strategy = GrpcStrategy(GrpcConfig(target=served.address, protocol="health-v1"))
        try:
            assert (await strategy.acheck(Target(model="resnet"))).status is Status.HEALTHY
            board.set("resnet", Status.UNHEALTHY)
            result = await strategy.acheck(Target(model="resnet"))
            assert (result.status, result.detail) == (
                Status.UNHEALTHY,
                "service 'resnet': NOT_SERVING",
            )
            result = await strategy.acheck(Target(model="ghost"))
            assert "unknown to the server (NOT_FOUND)" in result.detail
        finally:
            await strategy.aclose()


async def test_monitor_feeds_the_servicer() -> None:
    """Predictor (v2) -> Monitor -> HealthServicer -> Watch: a flip upstream reaches the probe."""
    oip = OipServicer({"resnet": True, "bert": True})
    async with serve_grpc([oip]) as (_, predictor):
        registry = StrategyRegistry(entry_points=False, disabled=())
        health_check = {
            "strategy": "grpc",
            "target": predictor,
            "timeout": 0.5,
            "period": 0.05,
            "jitter": 0.0,
            "failure_threshold": 1,
        }
        raw = {"defaults": {"health_check": health_check}, "models": {"resnet": {}, "bert": {}}}
        kit = HealthKit(load_config(raw, registry=registry), registry=registry)
        async with Monitor(kit) as monitor, health_server(monitor) as served:
            stub = served.stub
            stream = stub.Watch(health_pb2.HealthCheckRequest(service="resnet"))
            while (status := await next_status(stream)) != SERVING:
                assert status == UNKNOWN  # before the first probe
            oip.models["resnet"] = False
            assert await next_status(stream) == NOT_SERVING
            assert await status_of(stub, "") == NOT_SERVING
            assert await status_of(stub, "bert") == SERVING
            stream.cancel()
        assert kit.stats().instances == 0
