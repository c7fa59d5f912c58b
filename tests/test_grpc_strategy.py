"""The ``grpc`` strategy against real grpcio servers on 127.0.0.1.

Servers: grpcio-health-checking's own asyncio ``HealthServicer`` (statuses
flipped during the tests), healthkit's v2 ``OipServicer``, TLS and mutual TLS
with certificates made here by trustme, a stopped server, a slow one, one that
lacks the service, and a raw TCP listener that resets every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from healthkit import (
    ConfigError,
    HealthKit,
    Status,
    StrategyRegistry,
    Target,
    describe_spec,
    load_config,
    parse_spec,
)
from healthkit.strategies.grpc import GrpcConfig, GrpcStrategy, GrpcTls
from healthkit.testing import OipServicer, serve_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN = health_pb2.HealthCheckResponse.UNKNOWN
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
SECRET = "Bearer grpc-metadata-secret-7d1f"

Serve = Callable[..., Awaitable[tuple[Any, str]]]
Make = Callable[..., GrpcStrategy]


@pytest.fixture
async def start_server() -> AsyncIterator[Serve]:
    """``await start_server(servicer, ..., credentials=None)`` -> (server, "127.0.0.1:PORT")."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(*servicers: Any, credentials: Any = None, port: int = 0) -> tuple[Any, str]:
            return await stack.enter_async_context(
                serve_grpc(servicers, credentials=credentials, port=port)
            )

        yield start


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """``make(**config)`` -> a GrpcStrategy, closed after the test."""
    made: list[GrpcStrategy] = []

    def build(**config: Any) -> GrpcStrategy:
        strategy = GrpcStrategy(GrpcConfig(**config))
        made.append(strategy)
        return strategy

    try:
        yield build
    finally:
        for strategy in made:
            await strategy.aclose()


def health_registration(servicer: Any) -> Callable[[Any], None]:
    return lambda server: health_pb2_grpc.add_HealthServicer_to_server(servicer, server)


async def check(strategy: GrpcStrategy, model: str | None, version: str | None = None) -> Any:
    return await strategy.acheck(Target(model=model, version=version))


# -- config --------------------------------------------------------------------------------


def test_defaults_and_normalization(registry: StrategyRegistry) -> None:
    cfg = GrpcConfig(target="predictor:8081")
    assert (cfg.protocol, cfg.timeout, cfg.tls, cfg.retries) == ("v2", 1.0, None, 0)
    assert cfg.service_template == "{model}"
    # tls = true and tls = {} are the same config, so they share one instance.
    a = parse_spec({"strategy": "grpc", "target": "h:1", "tls": True}, registry=registry)
    b = parse_spec({"strategy": "grpc", "target": "h:1", "tls": {}}, registry=registry)
    assert a == b and a.config.tls == GrpcTls()
    # Metadata keys are case-insensitive.
    c = parse_spec(
        {"strategy": "grpc", "target": "h:1", "metadata": {"X-Key": "v"}}, registry=registry
    )
    d = parse_spec(
        {"strategy": "grpc", "target": "h:1", "metadata": {"x-key": "v"}}, registry=registry
    )
    assert c == d
    for target in ("dns:///predictor:8081", "unix:/tmp/sock", "[::1]:50051", "10.0.0.1:1"):
        assert GrpcConfig(target=target).target == target


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"target": "http://predictor:80"}, "target", "expected 'host:port'"),
        ({"target": "predictor"}, "target", "expected 'host:port'"),
        ({"target": "predictor:99999"}, "target", "expected 'host:port'"),
        ({"protocol": "health-v2"}, "protocol", "must be one of"),
        ({"service": "{model}"}, "service", "only allowed when protocol = 'health-v1'"),
        ({"protocol": "health-v1", "service": "{name}"}, "service", "only {model} and {version}"),
        ({"timeout": 0}, "timeout", "must be > 0"),
        ({"retries": -1}, "retries", "must be >= 0"),
        ({"tls": {"root_cert": "ca.pem"}}, "tls", "unknown key 'root_cert'"),
        ({"tls": {"client_cert": "c.pem"}}, "tls", "set both"),
        ({"tls": "yes"}, "tls", "expected true, false or a table"),
        ({"metadata": {"grpc-timeout": "1"}}, "metadata", "reserved"),
        ({"metadata": {"key bin": "1"}}, "metadata", "letters, digits"),
        ({"metadata": {"token-bin": "1"}}, "metadata", "binary"),
    ],
)
def test_bad_config_points_at_the_key(
    registry: StrategyRegistry, changes: dict[str, Any], path: str, message: str
) -> None:
    raw = {"strategy": "grpc", "target": "127.0.0.1:1", **changes}
    with pytest.raises(ConfigError) as info:
        load_config({"models": {"m": {"health_check": raw}}}, registry=registry)
    expected = "models.m.health_check" + (f".{path}" if path else "")
    assert [(i.path, message in i.message) for i in info.value.issues] == [(expected, True)]


def test_metadata_values_never_show(registry: StrategyRegistry) -> None:
    spec = parse_spec(
        {"strategy": "grpc", "target": "h:1", "metadata": {"authorization": SECRET}},
        registry=registry,
    )
    strategy = GrpcStrategy(spec.config)
    shown = " ".join([repr(spec), str(describe_spec(spec)), repr(strategy), repr(spec.config)])
    assert SECRET not in shown
    assert describe_spec(spec)["metadata"] == {"authorization": "***"}
    # A bad value is reported without echoing it.
    with pytest.raises(ConfigError) as info:
        parse_spec(
            {"strategy": "grpc", "target": "h:1", "metadata": {"a": 12345678}}, registry=registry
        )
    assert "12345678" not in str(info.value)


# -- health-v1 -------------------------------------------------------------------------------


async def test_health_v1_follows_flipped_statuses(start_server: Serve, make: Make) -> None:
    servicer = health_aio.HealthServicer()
    await servicer.set("resnet", SERVING)
    _, address = await start_server(health_registration(servicer))
    strategy = make(target=address, protocol="health-v1")

    result = await check(strategy, "resnet")
    assert (result.status, result.detail) == (Status.HEALTHY, "service 'resnet': SERVING")
    assert result.strategy == "grpc" and result.target == Target(model="resnet")

    await servicer.set("resnet", NOT_SERVING)
    result = await check(strategy, "resnet")
    assert (result.status, result.detail) == (Status.UNHEALTHY, "service 'resnet': NOT_SERVING")

    await servicer.set("resnet", UNKNOWN)
    assert (await check(strategy, "resnet")).status is Status.UNKNOWN
    await servicer.set("resnet", SERVICE_UNKNOWN)
    result = await check(strategy, "resnet")
    assert (result.status, result.detail) == (Status.UNKNOWN, "service 'resnet': SERVICE_UNKNOWN")

    await servicer.set("resnet", SERVING)
    assert (await check(strategy, "resnet")).status is Status.HEALTHY
    # The whole server: service "".
    result = await check(strategy, None)
    assert (result.status, result.detail) == (Status.HEALTHY, "server: SERVING")
    await servicer.enter_graceful_shutdown()
    assert (await check(strategy, None)).status is Status.UNHEALTHY
    assert strategy.channels_created == 1


async def test_health_v1_unknown_service_is_unhealthy(start_server: Serve, make: Make) -> None:
    servicer = health_aio.HealthServicer()
    _, address = await start_server(health_registration(servicer))
    result = await check(make(target=address, protocol="health-v1", retries=2), "ghost")
    assert result.status is Status.UNHEALTHY
    assert result.detail == "service 'ghost' is unknown to the server (NOT_FOUND)"
    assert result.error is not None and result.error.message.startswith("NOT_FOUND")


async def test_health_v1_service_templates(start_server: Serve, make: Make) -> None:
    servicer = health_aio.HealthServicer()
    await servicer.set("inference", SERVING)
    await servicer.set("bert:v3", NOT_SERVING)
    await servicer.set("", NOT_SERVING)
    _, address = await start_server(health_registration(servicer))

    fixed = make(target=address, protocol="health-v1", service="inference")
    assert (await check(fixed, "anything")).detail == "service 'inference': SERVING"
    whole = make(target=address, protocol="health-v1", service="")
    assert (await check(whole, "resnet")).detail == "server: NOT_SERVING"
    versioned = make(target=address, protocol="health-v1", service="{model}:{version}")
    result = await check(versioned, "bert", "v3")
    assert (result.status, result.detail) == (Status.UNHEALTHY, "service 'bert:v3': NOT_SERVING")


# -- v2 --------------------------------------------------------------------------------------


async def test_v2_models_and_server(start_server: Serve, make: Make) -> None:
    oip = OipServicer({"resnet": True, "bert": False})
    _, address = await start_server(oip)
    strategy = make(target=address)

    result = await check(strategy, "resnet")
    assert (result.status, result.detail) == (Status.HEALTHY, "model resnet ready")
    result = await check(strategy, "bert")
    assert (result.status, result.detail) == (Status.UNHEALTHY, "model bert not ready")
    result = await check(strategy, "ghost", "2")
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("model ghost@2 not found (NOT_FOUND")

    # Server readiness: not ready while a model is not, and ServerLive tells why.
    result = await check(strategy, None)
    assert (result.status, result.detail) == (Status.UNHEALTHY, "server live but not ready")
    oip.live = False
    assert (await check(strategy, None)).detail == "server not live"
    oip.live = True
    oip.models["bert"] = True
    result = await check(strategy, None)
    assert (result.status, result.detail) == (Status.HEALTHY, "server ready")
    assert (await check(strategy, "bert")).status is Status.HEALTHY
    assert oip.calls["ModelReady"] == 4 and oip.calls["ServerLive"] == 2
    assert strategy.channels_created == 1


async def test_v2_sends_name_version_and_secret_metadata(start_server: Serve, make: Make) -> None:
    seen: list[tuple[str, str]] = []

    class Recording(OipServicer):
        async def ModelReady(self, request: Any, context: Any) -> Any:
            seen.append((request.name, request.version))
            return await super().ModelReady(request, context)

    oip = Recording({"llama": True})
    _, address = await start_server(oip)
    strategy = make(target=address, metadata={"Authorization": SECRET, "x-tenant": "a"})
    result = await check(strategy, "llama", "7")
    assert result.status is Status.HEALTHY
    assert seen == [("llama", "7")]
    assert oip.metadata[-1]["authorization"] == SECRET
    assert oip.metadata[-1]["x-tenant"] == "a"
    assert SECRET not in repr(result) and SECRET not in str(result.to_dict())


# -- retries ---------------------------------------------------------------------------------


async def test_retries_only_unavailable_and_deadline(start_server: Serve, make: Make) -> None:
    oip = OipServicer({"m": True})
    _, address = await start_server(oip)
    strategy = make(target=address, retries=2, backoff=0.0)

    oip.fail_next(grpc.StatusCode.UNAVAILABLE, 1)
    oip.fail_next(grpc.StatusCode.DEADLINE_EXCEEDED, 1)
    assert (await check(strategy, "m")).status is Status.HEALTHY
    assert oip.calls["ModelReady"] == 3

    oip.calls.clear()
    oip.fail_next(grpc.StatusCode.UNAVAILABLE, 3)
    result = await check(strategy, "m")
    assert result.status is Status.UNHEALTHY and "(UNAVAILABLE)" in result.detail
    assert oip.calls["ModelReady"] == 3

    # Anything else is an answer, not a hiccup: no retry.
    for code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.PERMISSION_DENIED):
        oip.calls.clear()
        oip.fail_next(code, 1)
        result = await check(strategy, "m")
        assert result.status is Status.UNHEALTHY
        assert result.detail == f"call failed ({code.name}): injected"
        assert oip.calls["ModelReady"] == 1
    oip.calls.clear()
    assert (await check(strategy, "ghost")).status is Status.UNHEALTHY
    assert oip.calls["ModelReady"] == 1


# -- faults ----------------------------------------------------------------------------------


async def test_stopped_server_is_unhealthy_at_once(make: Make) -> None:
    async with serve_grpc([OipServicer({"m": True})]) as (_, address):
        strategy = make(target=address, timeout=2.0)
        assert (await check(strategy, "m")).status is Status.HEALTHY
    start = time.perf_counter()
    result = await check(strategy, "m")
    elapsed = time.perf_counter() - start
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith(("connection refused (UNAVAILABLE)", "connection reset"))
    assert elapsed < 2.0, "a refused connection must not wait for the deadline"
    print(f"stopped server answered in {elapsed * 1000:.1f} ms")


async def test_never_started_server_is_refused(make: Make) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        result = await check(make(target=f"127.0.0.1:{sock.getsockname()[1]}"), "m")
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("connection refused (UNAVAILABLE)")


async def test_server_back_on_the_same_port_is_seen_soon(make: Make) -> None:
    async with serve_grpc([OipServicer({"m": True})]) as (_, address):
        strategy = make(target=address)
        assert (await check(strategy, "m")).status is Status.HEALTHY
    assert (await check(strategy, "m")).status is Status.UNHEALTHY
    port = int(address.rsplit(":", 1)[1])
    async with serve_grpc([OipServicer({"m": True})], port=port):
        # grpc-core would back off up to 120 s between reconnects; the strategy caps it at 1 s.
        deadline = time.monotonic() + 10
        while (result := await check(strategy, "m")).status is not Status.HEALTHY:
            assert time.monotonic() < deadline, result.detail
            await asyncio.sleep(0.05)
    assert strategy.channels_created == 1


async def test_slow_server_hits_the_deadline(start_server: Serve, make: Make) -> None:
    oip = OipServicer({"m": True}, delay=5.0)
    _, address = await start_server(oip)
    strategy = make(target=address, timeout=0.2)
    start = time.perf_counter()
    result = await check(strategy, "m")
    elapsed = time.perf_counter() - start
    assert result.status is Status.UNHEALTHY
    assert result.detail == "deadline exceeded: no answer within 0.2s"
    assert result.error is not None and result.error.message.startswith("DEADLINE_EXCEEDED")
    assert elapsed < 5.0, "the check must not wait for the slow server"
    print(f"deadline 0.2 s: answered in {elapsed * 1000:.1f} ms")

    retrying = make(target=address, timeout=0.1, retries=1, backoff=0.0)
    result = await check(retrying, "m")
    assert result.detail == "deadline exceeded: no answer within 0.1s (each of 2 attempts)"


async def test_unimplemented_service(start_server: Serve, make: Make) -> None:
    servicer = health_aio.HealthServicer()
    _, only_v2 = await start_server(OipServicer({"m": True}))
    _, only_health = await start_server(health_registration(servicer))
    result = await check(make(target=only_v2, protocol="health-v1"), "m")
    assert result.status is Status.UNHEALTHY
    assert result.detail == (
        "unimplemented: the server does not implement grpc.health.v1.Health (UNIMPLEMENTED)"
    )
    result = await check(make(target=only_health, protocol="v2"), "m")
    assert result.detail == (
        "unimplemented: the server does not implement inference.GRPCInferenceService "
        "(UNIMPLEMENTED)"
    )


@contextlib.asynccontextmanager
async def resetting_listener() -> AsyncIterator[str]:
    """A TCP listener that reads a little of each connection, then resets it (RST)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    loop = asyncio.get_running_loop()

    async def accept() -> None:
        while True:
            conn, _ = await loop.sock_accept(listener)
            with conn:
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    await asyncio.wait_for(loop.sock_recv(conn, 64), 1.0)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    task = asyncio.create_task(accept())
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()


async def test_server_that_resets_the_connection(make: Make) -> None:
    async with resetting_listener() as address:
        result = await check(make(target=address, timeout=2.0), "m")
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("connection reset (UNAVAILABLE)")


async def test_server_going_away_mid_call(make: Make) -> None:
    entered = asyncio.Event()

    class Hanging(OipServicer):
        async def ModelReady(self, request: Any, context: Any) -> Any:
            entered.set()
            await asyncio.sleep(5.0)
            return await super().ModelReady(request, context)

    async with contextlib.AsyncExitStack() as stack:
        server, address = await stack.enter_async_context(serve_grpc([Hanging({"m": True})]))
        strategy = make(target=address, timeout=3.0)
        pending = asyncio.ensure_future(check(strategy, "m"))
        await asyncio.wait_for(entered.wait(), 5)
        await server.stop(grace=None)
        result = await pending
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("connection reset (UNAVAILABLE)"), result.detail


async def test_closed_strategy_reports_instead_of_raising(start_server: Serve) -> None:
    _, address = await start_server(OipServicer({"m": True}))
    strategy = GrpcStrategy(GrpcConfig(target=address))
    assert (await check(strategy, "m")).status is Status.HEALTHY
    channel = strategy.channel
    await strategy.aclose()
    await strategy.aclose()  # idempotent
    assert channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN
    result = await check(strategy, "m")
    assert result.status is Status.UNHEALTHY and "closed" in result.detail


# -- TLS -------------------------------------------------------------------------------------


@attrs.frozen
class Pki:
    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path
    server_key: bytes
    server_chain: bytes
    ca_pem: bytes

    def server_credentials(self, *, require_client_cert: bool = False) -> Any:
        return grpc.ssl_server_credentials(
            [(self.server_key, self.server_chain)],
            root_certificates=self.ca_pem if require_client_cert else None,
            require_client_auth=require_client_cert,
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    base = tmp_path_factory.mktemp("grpc-tls")
    ca = trustme.CA()
    server = ca.issue_cert("predictor.example", "127.0.0.1")
    client = ca.issue_cert("transformer.example")
    paths = {name: base / f"{name}.pem" for name in ("ca", "other", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    trustme.CA().cert_pem.write_to_path(str(paths["other"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    yield Pki(
        ca=paths["ca"],
        other_ca=paths["other"],
        client_cert=paths["cert"],
        client_key=paths["key"],
        server_key=server.private_key_pem.bytes(),
        server_chain=b"".join(pem.bytes() for pem in server.cert_chain_pems),
        ca_pem=ca.cert_pem.bytes(),
    )


async def test_tls_with_test_ca(start_server: Serve, make: Make, pki: Pki) -> None:
    _, address = await start_server(OipServicer({"m": True}), credentials=pki.server_credentials())
    ok = make(target=address, tls={"root_certs": str(pki.ca)})
    result = await check(ok, "m")
    assert (result.status, result.detail) == (Status.HEALTHY, "model m ready")
    # The certificate names predictor.example: verify against that name instead of the IP.
    named = make(
        target=address, tls={"root_certs": str(pki.ca), "server_name": "predictor.example"}
    )
    assert (await check(named, "m")).status is Status.HEALTHY

    for tls in (
        {"root_certs": str(pki.other_ca)},  # signed by a CA we do not trust
        True,  # gRPC's default roots do not know the test CA
        {"root_certs": str(pki.ca), "server_name": "elsewhere.example"},  # wrong name
    ):
        result = await check(make(target=address, tls=tls), "m")
        assert result.status is Status.UNHEALTHY
        assert result.detail.startswith("TLS failure"), result.detail

    # Plaintext against a TLS server: the server hangs up.
    result = await check(make(target=address), "m")
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("connection reset (UNAVAILABLE)")


async def test_tls_against_plaintext_server(start_server: Serve, make: Make, pki: Pki) -> None:
    _, address = await start_server(OipServicer({"m": True}))
    result = await check(make(target=address, tls={"root_certs": str(pki.ca)}), "m")
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("TLS failure (UNAVAILABLE)")


async def test_mutual_tls(start_server: Serve, make: Make, pki: Pki) -> None:
    credentials = pki.server_credentials(require_client_cert=True)
    _, address = await start_server(OipServicer({"m": True}), credentials=credentials)
    with_cert = make(
        target=address,
        tls={
            "root_certs": str(pki.ca),
            "client_cert": str(pki.client_cert),
            "client_key": str(pki.client_key),
        },
    )
    assert (await check(with_cert, "m")).status is Status.HEALTHY
    result = await check(make(target=address, tls={"root_certs": str(pki.ca)}), "m")
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("TLS failure"), result.detail


async def test_unreadable_certificate_is_unhealthy_until_it_appears(
    start_server: Serve, pki: Pki, tmp_path: Path
) -> None:
    _, address = await start_server(OipServicer({"m": True}), credentials=pki.server_credentials())
    mounted = tmp_path / "ca.pem"
    registry = StrategyRegistry(entry_points=False, disabled=())
    bad = {"strategy": "grpc", "target": address, "tls": {"root_certs": str(mounted)}}
    raw = {"models": {"m": {"health_check": bad}, "n": {"health_check": {"strategy": "noop"}}}}
    async with HealthKit.from_config(raw, registry=registry) as kit:
        # The other models start and work; this one says what is wrong.
        assert (await kit.acheck("n")).status is Status.HEALTHY
        result = await kit.acheck("m")
        assert result.status is Status.UNHEALTHY
        assert result.detail.startswith("TLS setup failed: tls.root_certs: cannot read ")
        assert str(mounted) in result.detail
        # A secret mounted later is picked up by the next check.
        mounted.write_bytes(pki.ca.read_bytes())
        assert (await kit.acheck("m")).status is Status.HEALTHY


# -- through the facade ----------------------------------------------------------------------


async def test_facade_checks_within_its_deadline(start_server: Serve) -> None:
    oip = OipServicer({"fast": True, "slow": True})
    _, address = await start_server(oip)
    registry = StrategyRegistry(entry_points=False, disabled=())
    config = {
        "defaults": {"health_check": {"strategy": "grpc", "target": address, "timeout": 0.3}},
        "models": {"fast": {}, "slow": {"version": "3"}},
    }
    async with HealthKit.from_config(config, registry=registry) as kit:
        assert (await kit.acheck("fast")).status is Status.HEALTHY
        oip.delay = 3.0
        result = await kit.acheck("slow")
        assert result.status is Status.UNHEALTHY
        assert result.detail == "deadline exceeded: no answer within 0.3s"
        assert result.target == Target(model="slow", version="3")
        assert result.latency > 0
