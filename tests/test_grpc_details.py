"""The ``grpc`` strategy's failure details, in words an operator understands.

Each fault is produced by a real server on 127.0.0.1: a grpcio server that
answers bytes that are no protobuf, an HTTP/1 server, a listener that never
answers, TLS servers with certificates made here by trustme. grpc-core's own
text stays in ``result.error``; the detail says what happened and what to set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme

from healthkit import Status, Target
from healthkit.strategies.grpc import GrpcConfig, GrpcStrategy
from healthkit.testing import OipServicer, SilentServer, serve_grpc


async def check(**config: Any) -> Any:
    strategy = GrpcStrategy(GrpcConfig(**config))
    try:
        return await strategy.acheck(Target(model="m"))
    finally:
        await strategy.aclose()


@contextlib.asynccontextmanager
async def garbage_server() -> AsyncIterator[str]:
    """A real grpcio server whose every answer is four bytes that no protobuf parses."""

    def garbage(request: bytes, context: Any) -> bytes:
        return b"\xff\xff\xff\xff"

    raw = {"request_deserializer": bytes, "response_serializer": bytes}
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(garbage, **raw)
        for name in ("ModelReady", "ServerReady", "Check")
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler("inference.GRPCInferenceService", handlers),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", handlers),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


@contextlib.asynccontextmanager
async def http1_server() -> AsyncIterator[str]:
    """A plain HTTP/1.1 server (a REST port, say) that answers 400 to anything."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1024)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("protocol", ["v2", "health-v1"])
async def test_garbage_answer_is_named_not_an_attribute_error(protocol: str) -> None:
    async with garbage_server() as address:
        result = await check(target=address, protocol=protocol)
    assert result.status is Status.UNHEALTHY
    message = "ModelReadyResponse" if protocol == "v2" else "HealthCheckResponse"
    assert result.detail.startswith("unreadable answer: the reply to "), result.detail
    assert message in result.detail
    assert "NoneType" not in result.detail and "AttributeError" not in result.detail
    assert result.error is not None and result.error.type == "DecodeError"


async def test_http1_server_is_not_an_http2_server() -> None:
    async with http1_server() as address:
        result = await check(target=address)
    assert result.status is Status.UNHEALTHY
    assert result.detail == (
        f"not an HTTP/2 server (UNAVAILABLE): {address} answered, but not with gRPC:"
        " is it an HTTP/1 or REST port?"
    )
    # grpc-core's own words stay available for whoever digs deeper.
    assert result.error is not None and "HTTP/2" in result.error.message


async def test_silent_server_is_a_connection_timeout() -> None:
    with SilentServer() as silent:
        address = silent.address
        result = await check(target=address, timeout=0.3)
    assert result.status is Status.UNHEALTHY
    # grpc-core's connect timeout and the call's deadline are the same 0.3 s: either may win.
    assert result.detail in (
        f"connection timed out (UNAVAILABLE): no gRPC connection to {address}"
        " within 0.3s (TCP, TLS and the HTTP/2 handshake must all finish within the timeout)",
        "deadline exceeded: no answer within 0.3s",
    ), result.detail


async def test_unresolvable_host_is_a_dns_failure() -> None:
    result = await check(target="no-such-host.invalid:50051", timeout=5.0)
    assert result.status is Status.UNHEALTHY
    assert result.detail == (
        "DNS failure (UNAVAILABLE): cannot resolve the host of 'no-such-host.invalid:50051'"
    )


async def test_refused_names_the_target() -> None:
    async with serve_grpc([OipServicer({"m": True})]) as (_, address):
        pass  # the port is free again: nothing listens
    result = await check(target=address)
    assert result.detail == (
        f"connection refused (UNAVAILABLE): nothing accepts connections on {address}"
    )


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("grpc-details-tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(base / "other.pem"))
    server = ca.issue_cert("predictor.example", "127.0.0.1")
    chain = b"".join(pem.bytes() for pem in server.cert_chain_pems)
    yield {
        "ca": str(base / "ca.pem"),
        "other": str(base / "other.pem"),
        "credentials": grpc.ssl_server_credentials([(server.private_key_pem.bytes(), chain)]),
    }


async def test_tls_failures_say_what_to_set(certs: dict[str, Any]) -> None:
    async with serve_grpc([OipServicer({"m": True})], credentials=certs["credentials"]) as (_, tls):
        untrusted = await check(target=tls, tls={"root_certs": certs["other"]})
        wrong_name = await check(
            target=tls, tls={"root_certs": certs["ca"], "server_name": "elsewhere.example"}
        )
        plaintext = await check(target=tls)
    async with serve_grpc([OipServicer({"m": True})]) as (_, plain):
        tls_to_plain = await check(target=plain, tls={"root_certs": certs["ca"]})
    assert untrusted.detail == (
        "TLS failure (UNAVAILABLE): the server's certificate is not trusted"
        " (unable to get local issuer certificate): it is not signed by a CA in"
        f" {certs['other']} (tls.root_certs)"
    )
    assert wrong_name.detail == (
        "TLS failure (UNAVAILABLE): the server's certificate is not valid for"
        " 'elsewhere.example': set tls.server_name to a name the certificate holds"
    )
    assert plaintext.detail == (
        f"connection reset (UNAVAILABLE): {tls} closed the connection before the gRPC"
        " handshake finished (a TLS-only server does this to a plaintext client: set tls)"
    )
    assert tls_to_plain.detail == (
        "TLS failure (UNAVAILABLE): the server does not speak TLS (a plaintext server?):"
        " set tls = false"
    )
    for result in (untrusted, wrong_name, plaintext, tls_to_plain):
        assert result.status is Status.UNHEALTHY
        assert "SSL_ERROR" not in result.detail and "failed to connect" not in result.detail


# -- grpc-core's stderr ------------------------------------------------------------------------

_TLS_FAILURE_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    import trustme
    from healthkit import HealthKit, StrategyRegistry

    async def main(port: int, ca: str) -> None:
        config = {"models": {"m": {"health_check": {
            "strategy": "grpc", "target": f"127.0.0.1:{port}", "tls": {"root_certs": ca}}}}}
        registry = StrategyRegistry(entry_points=False, disabled=())
        # grpcio is first imported here, by the first grpc strategy.
        async with HealthKit.from_config(config, registry=registry) as kit:
            print((await kit.acheck("m")).detail)
        print("GRPC_VERBOSITY=" + os.environ.get("GRPC_VERBOSITY", "<unset>"))

    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
    """
)


def _run_tls_failure(port: int, ca: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _TLS_FAILURE_SCRIPT, str(port), ca],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_grpc_core_stays_quiet_on_stderr_unless_asked(
    certs: dict[str, Any], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GRPC_VERBOSITY", "GRPC_TRACE")}
    async with serve_grpc([OipServicer({"m": True})], credentials=certs["credentials"]) as (_, tls):
        port = int(tls.rsplit(":", 1)[1])
        quiet = await asyncio.to_thread(_run_tls_failure, port, certs["other"], env)
        chatty = await asyncio.to_thread(
            _run_tls_failure, port, certs["other"], {**env, "GRPC_VERBOSITY": "INFO"}
        )
    assert quiet.returncode == 0, quiet.stderr
    assert "the server's certificate is not trusted" in quiet.stdout
    assert "GRPC_VERBOSITY=ERROR" in quiet.stdout
    assert quiet.stderr == "", quiet.stderr
    # The user's own setting wins: grpc-core's handshake lines are back.
    assert chatty.returncode == 0, chatty.stderr
    assert "GRPC_VERBOSITY=INFO" in chatty.stdout
    assert "Handshake failed" in chatty.stderr
