"""docs/grpc.md's fault table says what the grpc strategy really says.

The common faults are produced for real (an unresolvable name, a closed port, a
silent listener, an HTTP/1 server, a server that does not answer in time) and
each detail must match a row of the page's table, its placeholders (HOST:PORT,
0.5s, NAME, ...) standing for any text.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from healthkit import Status, Target
from healthkit.strategies.grpc import GrpcConfig, GrpcStrategy
from healthkit.testing import OipServicer, SilentServer, serve_grpc

DOC = Path(__file__).resolve().parent.parent / "docs" / "grpc.md"


def fault_rows() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Faults", 1)[1].split("\n## ", 1)[0]
    details = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| fault"):
            details.extend(re.findall(r"`([^`]+)`", line.split(" | ", 1)[1]))
    return details


def pattern(row: str) -> re.Pattern[str]:
    """A table detail as a regex: the placeholders and ``...`` match any text."""
    regex = re.escape(row)
    for placeholder in ("HOST:PORT", "NAME", r"<the\ server's\ message>", r"<grpc\-core's\ text>"):
        regex = regex.replace(placeholder, ".+")
    regex = regex.replace(r"\.\.\.", ".*").replace(r"0\.5s", r"[0-9.]+s")
    return re.compile(regex + "$")


def matches_a_row(detail: str) -> bool:
    return any(pattern(row).match(detail) for row in fault_rows())


async def check(**config: Any) -> Any:
    strategy = GrpcStrategy(GrpcConfig(**config))
    try:
        return await strategy.acheck(Target(model="m"))
    finally:
        await strategy.aclose()


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def http1_server() -> AsyncIterator[str]:
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


def test_the_table_has_the_unavailable_family() -> None:
    rows = fault_rows()
    for prefix in (
        "connection refused (UNAVAILABLE): ",
        "DNS failure (UNAVAILABLE): ",
        "connection timed out (UNAVAILABLE): ",
        "not an HTTP/2 server (UNAVAILABLE): ",
        "unavailable (UNAVAILABLE): ",
        "deadline exceeded: ",
    ):
        assert any(row.startswith(prefix) for row in rows), prefix


@pytest.mark.parametrize("protocol", ["v2", "health-v1"])
async def test_real_fault_details_match_the_table(protocol: str) -> None:
    details = [
        (await check(target="no-such-host.invalid:50051", protocol=protocol, timeout=5.0)).detail,
        (await check(target=closed_port(), protocol=protocol)).detail,
    ]
    with SilentServer() as silent:
        details.append(
            (await check(target=f"127.0.0.1:{silent.port}", protocol=protocol, timeout=0.3)).detail
        )
    async with http1_server() as address:
        details.append((await check(target=address, protocol=protocol)).detail)
    for detail in details:
        assert matches_a_row(detail), f"docs/grpc.md has no fault row for {detail!r}"


async def test_a_slow_answer_with_retries_matches_the_table() -> None:
    servicer = OipServicer({"m": True}, delay=1.0)
    async with serve_grpc([servicer]) as (_, address):
        result = await check(target=address, timeout=0.2, retries=1, backoff=0.01)
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("deadline exceeded: "), result.detail
    assert matches_a_row(result.detail), result.detail
