"""The ``tcp`` strategy against real servers on loopback (plain and TLS)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from healthkit_tcp import TcpConfig, TcpStrategy

from healthkit import ConfigError, Status, StrategyRegistry, Target, load_config
from healthkit.testing import ResourceSnapshot, SilentServer, wait_released
from healthkit.toolkit import guarded_check

if TYPE_CHECKING:
    from conftest import TcpServer, Tls

TARGET = Target(model="alpha")


async def check(**options: Any) -> Any:
    strategy = TcpStrategy(TcpConfig(**options))
    try:
        return await strategy.acheck(TARGET)
    finally:
        await strategy.aclose()


async def test_an_open_port_is_healthy(tcp_server: Callable[..., TcpServer]) -> None:
    server = tcp_server(lambda sock: None)
    result = await check(host="127.0.0.1", port=server.port)
    assert result.status is Status.HEALTHY, result.detail
    assert result.detail == f"connected to 127.0.0.1:{server.port}"
    assert result.strategy == "tcp" and result.target == TARGET


async def test_a_refused_connection_is_unhealthy(healthkit_refused_port: int) -> None:
    result = await check(host="127.0.0.1", port=healthkit_refused_port)
    assert result.status is Status.UNHEALTHY
    assert "connection refused" in result.detail
    assert result.error is not None and result.error.type == "ConnectionRefusedError"


async def test_send_and_expect(pong_server: TcpServer) -> None:
    result = await check(host="127.0.0.1", port=pong_server.port, send="PING\r\n", expect="+PONG")
    assert result.status is Status.HEALTHY, result.detail
    assert result.detail.endswith("got the expected reply")
    assert pong_server.received == [b"PING\r\n"]


async def test_a_wrong_reply_is_unhealthy_and_shown(tcp_server: Callable[..., TcpServer]) -> None:
    def handle(sock: socket.socket) -> None:
        sock.recv(100)
        sock.sendall(b"-ERR unknown command\r\n")

    server = tcp_server(handle)
    result = await check(host="127.0.0.1", port=server.port, send="PING\r\n", expect="+PONG")
    assert result.status is Status.UNHEALTHY
    assert "closed before '+PONG' arrived" in result.detail
    assert "-ERR unknown command" in result.detail


async def test_an_echoed_send_is_masked(echo_once_server: TcpServer) -> None:
    result = await check(
        host="127.0.0.1", port=echo_once_server.port, send="AUTH hunter2hunter2\r\n", expect="+OK"
    )
    assert result.status is Status.UNHEALTHY
    assert "hunter2" not in result.detail
    assert "***" in result.detail
    assert "hunter2" not in repr(TcpConfig(host="h", port=1, send="AUTH hunter2hunter2"))


async def test_the_reply_is_shown_as_a_short_printable_excerpt(
    tcp_server: Callable[..., TcpServer],
) -> None:
    def handle(sock: socket.socket) -> None:
        sock.recv(100)
        sock.sendall(b"-ERR \x00\xff\x1b[31mno\r\n" + b"x" * 200)

    server = tcp_server(handle)
    result = await check(host="127.0.0.1", port=server.port, send="PING\r\n", expect="+PONG")
    assert result.status is Status.UNHEALTHY
    # Neither a bytes repr nor a terminal escape: control characters as their pictures.
    got = ("-ERR ␀\ufffd␛[31mno␍␊" + "x" * 200)[:63] + "…"  # 64 characters at most
    assert result.detail.endswith(f"; got '{got}'"), result.detail
    assert "\x1b" not in result.detail and "b'" not in result.detail


@pytest.mark.parametrize(
    ("send", "echo", "secret"),
    [
        # An HTTP request: the server repeats one header's value, or its token alone.
        (
            "GET / HTTP/1.1\r\nAuthorization: Bearer tcp-secret-token\r\n\r\n",
            b"ERR Bearer tcp-secret-token\r\n",
            "tcp-secret-token",
        ),
        ("GET / HTTP/1.1\r\nX-Key: tcp-secret-key\r\n\r\n", b"bad key tcp-secret-key", "secret"),
        # A command's argument: "AUTH <password>" answered with the password.
        ("AUTH hunter2hunter2\r\n", b"-ERR wrong password hunter2hunter2\r\n", "hunter2"),
    ],
)
async def test_a_partial_echo_of_send_is_masked(
    tcp_server: Callable[..., TcpServer], send: str, echo: bytes, secret: str
) -> None:
    def handle(sock: socket.socket) -> None:
        sock.recv(4096)
        sock.sendall(echo)

    server = tcp_server(handle)
    result = await check(host="127.0.0.1", port=server.port, send=send, expect="+OK")
    assert result.status is Status.UNHEALTHY
    assert secret not in result.detail, result.detail
    assert "***" in result.detail


async def test_expect_without_send_reads_a_banner(tcp_server: Callable[..., TcpServer]) -> None:
    server = tcp_server(lambda sock: sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n"))
    result = await check(host="127.0.0.1", port=server.port, expect="SSH-2.0")
    assert result.status is Status.HEALTHY, result.detail


async def test_binary_bytes_with_latin1(tcp_server: Callable[..., TcpServer]) -> None:
    seen: list[bytes] = []

    def handle(sock: socket.socket) -> None:
        seen.append(sock.recv(100))
        sock.sendall(b"\x00\xff\x10")

    server = tcp_server(handle)
    result = await check(
        host="127.0.0.1", port=server.port, send="\x01\xfe", expect="\xff\x10", encoding="latin-1"
    )
    assert result.status is Status.HEALTHY, result.detail
    assert seen == [b"\x01\xfe"]


async def test_a_silent_server_times_out_during_expect() -> None:
    with SilentServer() as silent:
        result = await check(host="127.0.0.1", port=silent.port, expect="+OK", timeout=0.2)
    assert result.status is Status.UNHEALTHY
    assert "timed out after 0.2s during expect" in result.detail


async def test_tls_verified_with_a_ca_bundle(tls_banner_server: TcpServer, tcp_tls: Tls) -> None:
    result = await check(
        host="127.0.0.1",
        port=tls_banner_server.port,
        tls=True,
        ca_bundle=str(tcp_tls.ca_path),
        expect="HELLO",
    )
    assert result.status is Status.HEALTHY, result.detail
    assert "(TLSv1." in result.detail


async def test_tls_with_an_untrusted_certificate_is_unhealthy(tls_banner_server: TcpServer) -> None:
    # The system store does not trust the test CA.
    result = await check(host="127.0.0.1", port=tls_banner_server.port, tls=True)
    assert result.status is Status.UNHEALTHY
    assert "TLS error" in result.detail and "certificate verify failed" in result.detail


async def test_tls_checks_the_server_name(tls_banner_server: TcpServer, tcp_tls: Tls) -> None:
    common = {"host": "127.0.0.1", "port": tls_banner_server.port, "tls": True}
    wrong = await check(**common, ca_bundle=str(tcp_tls.ca_path), server_name="wrong.example")
    assert wrong.status is Status.UNHEALTHY
    assert "TLS error" in wrong.detail and "wrong.example" in wrong.detail
    right = await check(**common, ca_bundle=str(tcp_tls.ca_path), server_name="localhost")
    assert right.status is Status.HEALTHY, right.detail


async def test_tls_without_verification(tls_banner_server: TcpServer) -> None:
    result = await check(host="127.0.0.1", port=tls_banner_server.port, tls=True, verify=False)
    assert result.status is Status.HEALTHY, result.detail


async def test_a_tls_handshake_that_never_completes_times_out() -> None:
    with SilentServer() as silent:
        result = await check(host="127.0.0.1", port=silent.port, tls=True, timeout=0.2)
    assert result.status is Status.UNHEALTHY
    assert "during connect and TLS handshake" in result.detail


def test_registered_through_its_entry_point() -> None:
    registry = StrategyRegistry()
    stype = registry.get("tcp")
    assert stype.distribution == "healthkit-tcp"
    assert stype.plugin == "tcp"
    assert stype.config_class is TcpConfig


def test_equivalent_spellings_share_one_config() -> None:
    registry = StrategyRegistry()
    config = load_config(
        {
            "models": {
                "a": {
                    "health_check": {
                        "strategy": "tcp",
                        "host": "LocalHost",
                        "port": 1,
                        "encoding": "UTF8",
                    }
                },
                "b": {"health_check": {"strategy": "tcp", "port": 1, "host": "localhost "}},
            }
        },
        registry=registry,
    )
    assert config.models["a"].check == config.models["b"].check


def test_bad_config_errors_have_paths() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "models": {
                    "m": {
                        "health_check": {
                            "strategy": "tcp",
                            "host": "h",
                            "port": 0,
                            "server_name": "x",
                        }
                    }
                }
            },
            registry=StrategyRegistry(),
        )
    text = str(info.value)
    assert "models.m.health_check.port: must be between 1 and 65535, got 0" in text


async def test_a_cancelled_tls_handshake_leaves_nothing_open() -> None:
    with SilentServer() as silent:
        before = ResourceSnapshot.take()
        strategy = TcpStrategy(TcpConfig(host="127.0.0.1", port=silent.port, tls=True, timeout=30))
        result = await guarded_check(strategy, "tcp", TARGET, timeout=0.2)
        await strategy.aclose()
        assert result.error is not None and result.error.type == "TimeoutError"
        assert await wait_released(before) == []
