"""The built-in strategies pass the same conformance suite that plugins run.

``grpc`` joins when its strategy is registered and available (grpcio installed).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from typing import Any

import pytest

from healthkit import StrategyRegistry
from healthkit._oip_server import OipServer
from healthkit.testing import BadConfig, SilentServer, StrategyConformance

HEADER_SECRET = "Bearer conformance-header-secret"
URL_SECRET = "conformance-url-password"


@pytest.fixture(scope="module")
def oip() -> Iterator[OipServer]:
    server = OipServer({"conformance": "ready", "sleepy": "not_ready"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def refused_address() -> Iterator[str]:
    """``host:port`` that is bound but not listening: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


class TestNoopConformance(StrategyConformance):
    strategy = "noop"

    @pytest.fixture
    def valid_config(self) -> Mapping[str, Any]:
        return {}

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        return [BadConfig(changes={"base_url": "http://x"}, path="base_url", message="unknown key")]


class TestHttpConformance(StrategyConformance):
    strategy = "http"

    @pytest.fixture
    def valid_config(self, oip: OipServer) -> Mapping[str, Any]:
        return {
            "base_url": f"http://user:{URL_SECRET}@127.0.0.1:{oip.port}",
            "protocol": "v2",
            "timeout": 2.0,
            "headers": {"Authorization": HEADER_SECRET},
        }

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        return [
            BadConfig(changes={"timeout": -1}, path="timeout", message="must be > 0"),
            BadConfig(changes={"protocol": "v3"}, path="protocol", message="must be one of"),
            BadConfig(changes={"base_url": "ftp://example.org"}, path="base_url"),
            BadConfig(remove=("base_url",), path="base_url", message="missing required key"),
            BadConfig(changes={"retries": -2}, path="retries", message="must be >= 0"),
            BadConfig(changes={"path": "/x"}, path="path", message="only allowed"),
        ]

    @pytest.fixture
    def failing_config(self, refused_address: str) -> Mapping[str, Any]:
        return {"base_url": f"http://{refused_address}", "headers": {"x-token": HEADER_SECRET}}

    @pytest.fixture
    def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
        return {"base_url": healthkit_silent_server.url, "headers": {"x-token": HEADER_SECRET}}

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return [HEADER_SECRET, URL_SECRET]


class TestCompositeConformance(StrategyConformance):
    strategy = "composite"

    @pytest.fixture
    def valid_config(self, oip: OipServer) -> Mapping[str, Any]:
        return {
            "mode": "quorum",
            "quorum": 2,
            "checks": [
                {"strategy": "http", "base_url": oip.url, "headers": {"x-token": HEADER_SECRET}},
                {"strategy": "noop"},
                {"strategy": "http", "base_url": oip.url, "protocol": "v1"},
            ],
        }

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        return [
            BadConfig(changes={"mode": "most"}, path="mode", message="must be one of"),
            BadConfig(changes={"quorum": 4}, path="quorum", message="must be <="),
            BadConfig(changes={"checks": []}, path="checks", message="must not be empty"),
            BadConfig(
                changes={
                    "checks": [
                        {"strategy": "noop"},
                        {"strategy": "http", "base_url": "http://h", "timeout": 0},
                    ]
                },
                path="checks[1].timeout",
                message="must be > 0",
            ),
            BadConfig(
                changes={"checks": [{"strategy": "nope"}]},
                path="checks[0].strategy",
                message="unknown strategy",
            ),
        ]

    @pytest.fixture
    def failing_config(self, refused_address: str) -> Mapping[str, Any]:
        return {"checks": [{"strategy": "http", "base_url": f"http://{refused_address}"}]}

    @pytest.fixture
    def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
        return {
            "mode": "any",
            "checks": [
                {"strategy": "http", "base_url": healthkit_silent_server.url, "timeout": 30},
                {
                    "strategy": "http",
                    "base_url": healthkit_silent_server.url,
                    "headers": {"x-token": HEADER_SECRET},
                },
            ],
        }

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return [HEADER_SECRET]


def _grpc_available() -> bool:
    registry = StrategyRegistry(entry_points=False, disabled=())
    return "grpc" in registry and registry.get("grpc").unavailable is None


@pytest.fixture(scope="module")
def grpc_health_server() -> Iterator[int]:
    """A real grpc.health.v1 server on loopback (in threads, so any event loop can call it)."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("conformance", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait()


if _grpc_available():

    class TestGrpcConformance(StrategyConformance):
        strategy = "grpc"

        @pytest.fixture
        def valid_config(self, grpc_health_server: int) -> Mapping[str, Any]:
            return {
                "target": f"127.0.0.1:{grpc_health_server}",
                "protocol": "health-v1",
                "timeout": 2.0,
                "metadata": {"authorization": HEADER_SECRET},
            }

        @pytest.fixture
        def bad_configs(self) -> Sequence[BadConfig]:
            return [
                BadConfig(changes={"timeout": 0}, path="timeout", message="must be > 0"),
                BadConfig(changes={"protocol": "v9"}, path="protocol"),
                BadConfig(remove=("target",), path="target", message="missing required key"),
            ]

        @pytest.fixture
        def failing_config(self, refused_address: str) -> Mapping[str, Any]:
            return {"target": refused_address, "protocol": "health-v1"}

        @pytest.fixture
        def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
            return {"target": healthkit_silent_server.address, "protocol": "health-v1"}

        @pytest.fixture
        def secrets(self) -> Sequence[str]:
            return [HEADER_SECRET]
