"""One channel per config: 200 models on one gRPC predictor cost 2 instances and 2 channels.

The predictor is a real grpc.aio server speaking both grpc.health.v1
(grpcio-health-checking's own servicer) and the Open Inference Protocol v2.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from healthkit import HealthKit, Status, StrategyRegistry, load_config
from healthkit.strategies.grpc import GrpcStrategy
from healthkit.testing import OipServicer, serve_grpc

MODELS = 200
Serving = health_pb2.HealthCheckResponse


def expected(i: int) -> tuple[Status, str]:
    """Model ``i``'s status and a piece of its detail, for the server set up below."""
    name = f"m{i:03d}"
    if i % 2 == 0:  # v2
        if i % 10 == 4:
            return Status.UNHEALTHY, f"model {name} not found"
        if i % 3 == 0:
            return Status.UNHEALTHY, f"model {name} not ready"
        return Status.HEALTHY, f"model {name} ready"
    if i % 10 == 5:  # health-v1
        return Status.UNHEALTHY, f"service '{name}' is unknown to the server (NOT_FOUND)"
    if i % 10 == 7:
        return Status.UNKNOWN, f"service '{name}': UNKNOWN"
    if i % 3 == 0:
        return Status.UNHEALTHY, f"service '{name}': NOT_SERVING"
    return Status.HEALTHY, f"service '{name}': SERVING"


@pytest.fixture
async def predictor() -> AsyncIterator[tuple[str, OipServicer, Any]]:
    oip = OipServicer()
    health = health_aio.HealthServicer()
    for i in range(MODELS):
        name = f"m{i:03d}"
        status, _ = expected(i)
        if i % 2 == 0 and i % 10 != 4:
            oip.models[name] = status is Status.HEALTHY
        elif i % 2 == 1 and i % 10 != 5:
            if i % 10 == 7:
                await health.set(name, Serving.UNKNOWN)
            else:
                serving = Serving.SERVING if status is Status.HEALTHY else Serving.NOT_SERVING
                await health.set(name, serving)
    register = [oip, lambda server: health_pb2_grpc.add_HealthServicer_to_server(health, server)]
    async with serve_grpc(register) as (_, address):
        yield address, oip, health


def config(address: str) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for i in range(MODELS):
        # Odd models switch protocol; everything else comes from the default.
        models[f"m{i:03d}"] = {"health_check": {"protocol": "health-v1"}} if i % 2 else {}
    default = {"strategy": "grpc", "target": address, "protocol": "v2", "timeout": 2.0}
    return {"defaults": {"health_check": default}, "models": models}


def instances(kit: HealthKit) -> list[GrpcStrategy]:
    unique: dict[int, GrpcStrategy] = {}
    for model in kit.models:
        instance = kit.resolver.get(model)
        assert isinstance(instance, GrpcStrategy)
        unique[id(instance)] = instance
    return list(unique.values())


async def test_200_models_two_configs_two_channels(
    predictor: tuple[str, OipServicer, Any],
) -> None:
    address, oip, _ = predictor
    registry = StrategyRegistry(entry_points=False, disabled=())
    kit = HealthKit(load_config(config(address), registry=registry), registry=registry)
    async with kit:
        report = await kit.acheck_all(concurrency=64)
        for i in range(MODELS):
            status, fragment = expected(i)
            result = report.results[f"m{i:03d}"]
            assert result.status is status, (i, result.detail)
            assert fragment in result.detail, (i, result.detail)
        assert report.resolver.models == MODELS
        assert report.resolver.instances == 2

        live = instances(kit)
        channels = {id(instance.channel) for instance in live}
        assert len(live) == 2 and len(channels) == 2
        assert sum(instance.channels_created for instance in live) == 2
        assert sorted(instance.config.protocol for instance in live) == ["health-v1", "v2"]
        # Every v2 model was asked exactly once, over the one v2 channel.
        assert oip.calls["ModelReady"] == MODELS // 2

        # A second round reuses the same channels.
        await kit.acheck_all()
        assert sum(instance.channels_created for instance in live) == 2
        held = [instance.channel for instance in live]
    # Closing the kit closed both channels.
    assert all(channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN for channel in held)
    assert all(instance.channel is None for instance in live)
    print(f"{MODELS} models -> {len(live)} instances, {len(channels)} channels")


async def test_channel_closes_with_its_last_model(
    predictor: tuple[str, OipServicer, Any],
) -> None:
    address, _, _ = predictor
    registry = StrategyRegistry(entry_points=False, disabled=())
    kit = HealthKit(load_config(config(address), registry=registry), registry=registry)
    async with kit:
        await kit.acheck_all()
        health_v1 = kit.resolver.get("m001")
        v2 = kit.resolver.get("m000")
        assert isinstance(health_v1, GrpcStrategy) and isinstance(v2, GrpcStrategy)
        old_channel = health_v1.channel
        # Reload without the health-v1 models: their instance (and channel) goes away.
        raw = config(address)
        raw["models"] = {k: v for k, v in raw["models"].items() if not v}
        plan = await kit.areload(load_config(raw, registry=registry))
        assert len(plan.removed) == MODELS // 2 and plan.instances_closed == 1
        assert old_channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN
        assert kit.stats().instances == 1
        # The v2 instance kept its channel and still answers.
        assert kit.resolver.get("m000") is v2 and v2.channels_created == 1
        assert (await kit.acheck("m002")).status is Status.HEALTHY


def test_sync_facade_against_a_threaded_server() -> None:
    """The sync facade runs its own loop: the channel is opened there, once, and closed with it."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("m", Serving.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        registry = StrategyRegistry(entry_points=False, disabled=())
        check = {"strategy": "grpc", "target": f"127.0.0.1:{port}", "protocol": "health-v1"}
        with HealthKit.from_config(
            {"models": {"m": {"health_check": check}}}, registry=registry
        ) as kit:
            assert kit.check("m").status is Status.HEALTHY
            servicer.set("m", Serving.NOT_SERVING)
            assert kit.check("m").status is Status.UNHEALTHY
            instance = kit.resolver.get("m")
            assert isinstance(instance, GrpcStrategy)
            assert instance.channels_created == 1
            channel = instance.channel
        assert channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN
    finally:
        server.stop(grace=None).wait()
