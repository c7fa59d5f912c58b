"""The fault suite over gRPC: every gRPC fault against both protocols of the ``grpc`` strategy.

A real grpcio server answers each call by the ``x-fault`` metadata of the
config (hang, slow, an error status, bytes that are no protobuf, a message past
the 4 MiB receive limit, or a healthy answer); TLS faults use a second one with
a trustme certificate. Faults below gRPC come from raw TCP servers: an HTTP/2
handshake reset once the call is sent, a handshake dripped a byte at a time,
an SSH greeting. A redirect loop has no gRPC counterpart, so no such cell exists.

Each cell asserts the documented status, an answer within the check's
deadline plus a grace, a readable detail, and that the ``authorization``
metadata shows nowhere, though the error-status server repeats it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import grpc
import pytest

from _fault_checks import assert_cell, run_check
from _fault_servers import (
    BEARER,
    INVALID_HOST,
    TIMEOUT,
    RawServer,
    grpc_fault_server,
    h2_drip,
    h2_reset_mid_call,
    ssh_banner,
)
from healthkit import Status, StrategyRegistry

PROTOCOLS = ("health-v1", "v2")
#: Faults the grpc fault server plays itself, chosen by the call's ``x-fault``.
SERVED = ("none", "hang", "slow", "5xx", "garbage", "huge")
GRPC_FAULTS = (
    *SERVED,
    "refused",
    "reset",
    "drip",
    "non-http",
    "tls-untrusted",
    "tls-plaintext",  # "https against plaintext": TLS to a plaintext gRPC server
    "dns",
)

# docs/grpc.md, "Faults": "Nothing raises out of a check; every fault is unhealthy"
# (an error status and RESOURCE_EXHAUSTED for the huge message: "any other status
# code"). The `none` row is the control: the same configs against a healthy answer.
EXPECTED: dict[tuple[str, str], Status] = {(p, "none"): Status.HEALTHY for p in PROTOCOLS}

CELLS = [(protocol, fault) for protocol in PROTOCOLS for fault in GRPC_FAULTS]


@attrs.frozen
class GrpcEndpoint:
    target: str
    tls: dict[str, str] | None = None


@pytest.fixture(scope="module")
def grpc_faults(tls_files: Any) -> Iterator[dict[str, GrpcEndpoint]]:
    leaf = tls_files.ca.issue_cert("127.0.0.1", "localhost")
    chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
    credentials = grpc.ssl_server_credentials([(leaf.private_key_pem.bytes(), chain)])
    raw = {"reset": h2_reset_mid_call, "drip": h2_drip, "non-http": ssh_banner}
    servers = {fault: RawServer(handler).start() for fault, handler in raw.items()}
    try:
        with grpc_fault_server() as plain, grpc_fault_server(credentials) as secure:
            endpoints = {fault: GrpcEndpoint(f"127.0.0.1:{plain}") for fault in SERVED}
            endpoints.update(
                {fault: GrpcEndpoint(f"127.0.0.1:{s.port}") for fault, s in servers.items()}
            )
            # Signed by the suite's CA, but the client trusts another one.
            endpoints["tls-untrusted"] = GrpcEndpoint(
                f"127.0.0.1:{secure}", {"root_certs": str(tls_files.other_ca_path)}
            )
            endpoints["tls-plaintext"] = GrpcEndpoint(
                f"127.0.0.1:{plain}", {"root_certs": str(tls_files.ca_path)}
            )
            endpoints["dns"] = GrpcEndpoint(f"{INVALID_HOST}:50051")
            yield endpoints
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def builtin_registry() -> StrategyRegistry:
    return StrategyRegistry(entry_points=False, disabled=())


@pytest.mark.parametrize(("protocol", "fault"), CELLS, ids=[f"grpc-{p}-{f}" for p, f in CELLS])
async def test_grpc_fault_cell(
    protocol: str,
    fault: str,
    grpc_faults: dict[str, GrpcEndpoint],
    builtin_registry: StrategyRegistry,
    refused_url: str,
) -> None:
    if fault == "refused":
        where = GrpcEndpoint(refused_url.removeprefix("http://"))
    else:
        where = grpc_faults[fault]
    health_check: dict[str, Any] = {
        "strategy": "grpc",
        "target": where.target,
        "protocol": protocol,
        "timeout": TIMEOUT,
        "metadata": {"authorization": BEARER, "x-fault": fault},
    }
    if where.tls is not None:
        health_check["tls"] = where.tls
    outcome = await run_check(health_check, builtin_registry)
    assert_cell(outcome, EXPECTED.get((protocol, fault), Status.UNHEALTHY))
