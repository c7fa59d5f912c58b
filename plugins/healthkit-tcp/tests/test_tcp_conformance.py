"""``tcp`` passes healthkit's conformance suite, installed through its entry point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from healthkit.testing import BadConfig, SilentServer, StrategyConformance

if TYPE_CHECKING:
    from conftest import TcpServer, Tls

PASSWORD = "tcp-conformance-password"


class TestTcpConformance(StrategyConformance):
    strategy = "tcp"

    @pytest.fixture
    def valid_config(self, pong_server: TcpServer) -> Mapping[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": pong_server.port,
            "send": f"AUTH {PASSWORD}\r\nPING\r\n",
            "expect": "+PONG",
            "timeout": 2.0,
        }

    @pytest.fixture
    def bad_configs(self, tcp_tls: Tls) -> Sequence[BadConfig]:
        return [
            BadConfig(changes={"port": 70000}, path="port", message="between 1 and 65535"),
            BadConfig(changes={"port": "http"}, path="port", message="expected an integer"),
            BadConfig(remove=("host",), path="host", message="missing required key"),
            BadConfig(changes={"host": "tcp://x:1"}, path="host", message="no scheme"),
            BadConfig(changes={"timeout": 0}, path="timeout", message="must be > 0"),
            BadConfig(changes={"encoding": "klingon"}, path="encoding", message="unknown encoding"),
            BadConfig(changes={"encoding": "ascii", "expect": "café"}, path="expect"),
            BadConfig(
                changes={"ca_bundle": str(tcp_tls.ca_path)}, path="ca_bundle", message="tls = true"
            ),
            BadConfig(
                changes={"tls": True, "ca_bundle": "/no/such.pem"},
                path="ca_bundle",
                message="not found",
            ),
            BadConfig(changes={"send": ""}, path="send", message="must not be empty"),
        ]

    @pytest.fixture
    def failing_config(self, echo_once_server: TcpServer) -> Mapping[str, Any]:
        # The echo reveals what was sent (a password): the result must not.
        return {
            "host": "127.0.0.1",
            "port": echo_once_server.port,
            "send": f"AUTH {PASSWORD}\r\n",
            "expect": "+OK",
        }

    @pytest.fixture
    def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
        return {
            "host": healthkit_silent_server.host,
            "port": healthkit_silent_server.port,
            "send": f"AUTH {PASSWORD}\r\n",
            "expect": "+OK",
        }

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return [PASSWORD]
