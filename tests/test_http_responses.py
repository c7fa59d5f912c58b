"""What the ``http`` strategy reads, sends and says, against a real loopback server.

Header values that cannot be sent are config errors that never echo the value;
secrets an upstream echoes never reach a detail; bodies are read with a cap;
every failure says in words what happened; ``.``/``..`` never become dot segments.
"""

from __future__ import annotations

import asyncio
import json
import socket
import string
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from _http_fault_server import FaultServer, Request, reset, response
from healthkit import ConfigError, StrategyRegistry, Target, parse_spec
from healthkit.strategies.http import HttpBatchStrategy, HttpStrategy

Make = Callable[..., HttpStrategy]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def make(make_http: Make) -> Make:
    """``make_http`` (tests/conftest.py) under this file's name for it."""
    return make_http


def _answer(status: int, body: bytes = b"", **headers: str) -> Any:
    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(status, body, headers=headers))
        await writer.drain()
        return True

    return reply


# -- header values that cannot be sent ------------------------------------------------------

UNSENDABLE = [
    ("Bearer s3cr3t\n", "line feed"),
    ("Bearer s3cr3t\r\n", "carriage return"),
    ("s3cr3t\x00tail", "NUL"),
    ("s3cr3t\x01tail", "\\x01"),
    ("s3cr3t\x7f", "DEL"),
    ("s3cr3t\x0btail", "\\x0b"),
    ("s3cr3t-tökén", "non-ASCII"),
    ("s3cr3t-€", "non-ASCII"),
    (" s3cr3t", "blanks"),
    ("s3cr3t\t", "blanks"),
]


@pytest.mark.parametrize(("value", "problem"), UNSENDABLE)
def test_a_header_value_that_cannot_be_sent_is_a_config_error_that_hides_it(
    value: str, problem: str
) -> None:
    raw = {"strategy": "http", "base_url": "http://h", "headers": {"Authorization": value}}
    with pytest.raises(ConfigError) as exc:
        parse_spec(raw, registry=StrategyRegistry(entry_points=False), path="m")
    text = str(exc.value)
    assert "'Authorization'" in text and "cannot be sent" in text and problem in text, text
    assert "s3cr3t" not in text and "Bearer" not in text and repr(value) not in text


@pytest.mark.parametrize(("value", "problem"), UNSENDABLE)
async def test_httpx_itself_refuses_those_values_or_rfc_9110_forbids_them(
    server: FaultServer, value: str, problem: str
) -> None:
    """The converter refuses exactly what cannot go out: httpx (h11) refuses most of these
    outright; the rest (\\x01, DEL) h11 lets through although RFC 9110 forbids them."""
    try:
        async with httpx.AsyncClient(headers={"x-a": value}) as client:
            await client.get(server.url + "/")
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return
    assert problem in ("\\x01", "DEL"), (value, "httpx sent it")


@pytest.mark.parametrize("value", ["Bearer abc", "a\tb", "", string.printable.strip()[:90]])
async def test_every_value_the_converter_accepts_is_sent(
    make: Make, server: FaultServer, value: str
) -> None:
    strategy = make(base_url=server.url, headers={"X-Token": value})
    assert (await strategy.acheck(Target(model="m"))).status.value == "healthy"
    assert server.received[-1].headers["x-token"] == value


def test_a_bad_header_name_is_a_config_error() -> None:
    raw = {"strategy": "http", "base_url": "http://h", "headers": {"X Bad:": "v"}}
    with pytest.raises(ConfigError, match=r"m\.headers: .*'X Bad:' is not a valid HTTP header"):
        parse_spec(raw, registry=StrategyRegistry(entry_points=False), path="m")


# -- secrets an upstream echoes back -----------------------------------------------------------


async def test_secrets_echoed_by_the_server_never_reach_a_result(
    make: Make, server: FaultServer
) -> None:
    async def echo(request: Request, writer: asyncio.StreamWriter) -> bool:
        auth = request.headers.get("authorization", "")
        token = request.headers.get("x-token", "")
        if request.path.startswith("/v1/"):
            body = json.dumps({"ready": f"{auth} {token}"}).encode()
            writer.write(response(200, body))
        elif request.path.startswith("/redirect"):
            location = f"http://admin-user:hunter2@elsewhere.example/login?token={token}"
            writer.write(response(302, headers={"Location": location}))
        else:
            writer.write(response(200, json.dumps({"state": token}).encode()))
        await writer.drain()
        return True

    server.reply = echo
    url = server.url.replace("http://", "http://admin-user:hunter2@")
    headers = {"X-Token": "Bearer s3cr3t-token"}
    strategies = [
        make(base_url=url, protocol="v1", headers=headers),
        make(base_url=url, protocol="generic", path="/redirect", headers=headers),
        make(base_url=url, protocol="generic", path="/g", json_field="state", headers=headers),
    ]
    for strategy in strategies:
        result = await strategy.acheck(Target(model="m"))
        text = json.dumps(result.to_dict()) + repr(result)
        print(result.detail)
        assert "***" in result.detail, result.detail
        for secret in ("s3cr3t-token", "hunter2", "admin-user", "YWRtaW4tdXNlcjpodW50ZXIy"):
            assert secret not in text, (secret, text)
    redirected = await strategies[1].acheck(Target(model="m"))
    assert redirected.detail == (
        "unexpected HTTP 302: redirect not followed (to http://***@elsewhere.example/login?***)"
    )


# -- response size cap -------------------------------------------------------------------------

HUGE = 50 * 1024 * 1024


async def _endless(request: Request, writer: asyncio.StreamWriter) -> bool:
    """200 with a chunked body that never ends: only a capped reader comes back."""
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"[" + b"1," * 32767
    while True:
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()


async def _declared_huge(request: Request, writer: asyncio.StreamWriter) -> bool:
    """200 announcing 50 MB, then streaming it."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE)
    block = b" " * 65536
    for _ in range(HUGE // len(block)):
        writer.write(block)
        await writer.drain()
    return False


@pytest.mark.parametrize("reply", [_endless, _declared_huge])
async def test_a_body_over_the_cap_is_unhealthy_where_the_body_is_needed(
    make: Make, server: FaultServer, reply: Any
) -> None:
    server.reply = reply
    for strategy in (
        make(base_url=server.url, protocol="v1", timeout=5.0),
        make(base_url=server.url, protocol="generic", path="/s", json_field="ok", timeout=5.0),
    ):
        result = await strategy.acheck(Target(model="m"))
        assert result.status.value == "unhealthy", result
        assert "body larger than 65536 bytes (max_body_bytes), not read (HTTP 200)" in (
            result.detail
        )
        assert result.latency < 5.0  # answered, not timed out


@pytest.mark.parametrize("reply", [_endless, _declared_huge])
async def test_only_the_status_matters_for_v2_and_plain_generic(
    make: Make, server: FaultServer, reply: Any
) -> None:
    server.reply = reply
    for strategy in (
        make(base_url=server.url, protocol="v2", timeout=5.0),
        make(base_url=server.url, protocol="generic", path="/s", timeout=5.0),
    ):
        result = await strategy.acheck(Target(model="m"))
        assert result.status.value == "healthy", result


async def test_max_body_bytes_is_configurable_and_a_body_within_it_is_read(
    make: Make, server: FaultServer
) -> None:
    body = json.dumps({"ready": True, "pad": "x" * 200}).encode()
    server.reply = _answer(200, body)
    small = make(base_url=server.url, protocol="v1", max_body_bytes=100)
    assert "body larger than 100 bytes" in (await small.acheck(Target(model="m"))).detail
    roomy = make(base_url=server.url, protocol="v1", max_body_bytes=len(body))
    assert (await roomy.acheck(Target(model="m"))).status.value == "healthy"


@pytest.mark.parametrize(
    ("protocol", "body", "prefix"),
    [
        ("v1", {"ready": "no" + "x" * 500}, "not ready (ready='noxxx"),
        ("generic", {"ok": "x" * 500 + "-tail"}, "HTTP 200, ok='xxx"),
    ],
)
async def test_upstream_values_in_details_are_short_excerpts(
    make: Make, server: FaultServer, protocol: str, body: Any, prefix: str
) -> None:
    server.reply = _answer(200, json.dumps(body).encode())
    extra = {"path": "/s", "json_field": "ok"} if protocol == "generic" else {}
    result = await make(base_url=server.url, protocol=protocol, **extra).acheck(Target(model="m"))
    assert result.detail.startswith(prefix), result.detail
    assert "…" in result.detail and len(result.detail) < 130, result.detail


async def test_the_index_reason_is_a_short_excerpt(make: Make, server: FaultServer) -> None:
    index = [{"name": "m", "state": "UNAVAILABLE", "reason": "r" * 5000}]
    server.reply = _answer(200, json.dumps(index).encode())
    strategy = make(base_url=server.url, batch=True)
    assert isinstance(strategy, HttpBatchStrategy)
    result = (await strategy.acheck_many([Target(model="m")]))[Target(model="m")]
    assert result.detail.startswith("state UNAVAILABLE in repository index: rrr"), result
    assert result.detail.endswith("…") and len(result.detail) < 130


# -- failures in words --------------------------------------------------------------------------


async def _close(request: Request, writer: asyncio.StreamWriter) -> bool:
    return False  # the server closes the connection without a response


async def _reset(request: Request, writer: asyncio.StreamWriter) -> bool:
    reset(writer)
    return False


async def _garbage(request: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")
    await writer.drain()
    return False


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (_close, "request failed: RemoteProtocolError: Server disconnected without sending a "),
        (_reset, "request failed: ReadError: connection reset by peer"),
        (_garbage, "request failed: RemoteProtocolError: not HTTP (the reply is not an HTTP "),
    ],
)
async def test_failures_are_told_in_words(
    make: Make, server: FaultServer, reply: Any, detail: str
) -> None:
    server.reply = reply
    result = await make(base_url=server.url).acheck(Target(model="m"))
    assert result.status.value == "unhealthy"
    assert result.detail.startswith(detail), result.detail


async def test_refused_hung_and_redirect_are_told_in_words(make: Make, server: FaultServer) -> None:
    server.set_mode("hung")
    hung = await make(base_url=server.url, timeout=0.2).acheck(Target(model="m"))
    assert hung.detail == "timed out after 0.2s waiting for the response (ReadTimeout)"
    server.set_mode("refused")
    refused = await make(base_url=server.url).acheck(Target(model="m"))
    assert refused.detail == "connection failed: connection refused"
    assert refused.error is not None and refused.error.type == "ConnectError"
    server.set_mode("healthy")
    server.reply = _answer(307, Location="/v2/elsewhere?x=1")
    moved = await make(base_url=server.url).acheck(Target(model="m"))
    assert moved.detail == "unexpected HTTP 307: redirect not followed (to /v2/elsewhere?***)"


async def test_a_connect_timeout_is_told_as_such(make: Make) -> None:
    # A listener whose accept queue is full and never drained: further SYNs go unanswered.
    fillers: list[socket.socket] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            for _ in range(3):
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect_ex(sock.getsockname())
            strategy = make(base_url=url, timeout=0.3)
            result = await strategy.acheck(Target(model="m"))
        finally:
            for filler in fillers:
                filler.close()
    assert result.detail == "timed out after 0.3s connecting (ConnectTimeout)", result.detail


# -- no dot segments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "target", "path"),
    [
        ({}, Target(model=".."), "/v2/models/%2E%2E/ready"),
        ({}, Target(model="."), "/v2/models/%2E/ready"),
        ({}, Target(model="m", version=".."), "/v2/models/m/versions/%2E%2E/ready"),
        ({"protocol": "v1"}, Target(model=".."), "/v1/models/%2E%2E"),
        (
            {"protocol": "generic", "path": "/check/{model}/{version}"},
            Target(model="..", version="."),
            "/check/%2E%2E/%2E",
        ),
        ({}, Target(model="..."), "/v2/models/.../ready"),
    ],
)
async def test_dot_models_never_become_dot_segments_on_the_wire(
    make: Make, server: FaultServer, raw: dict[str, Any], target: Target, path: str
) -> None:
    strategy = make(base_url=server.url + "/prefix", **raw)
    assert strategy.path_for(target) == path
    await strategy.acheck(target)
    assert server.received[-1].path == "/prefix" + path


async def test_a_redirect_in_the_expected_statuses_is_still_healthy(
    make: Make, server: FaultServer
) -> None:
    server.reply = _answer(302, Location="/login")
    strategy = make(
        base_url=server.url, protocol="generic", path="/s", expected_status=["2xx", "3xx"]
    )
    result = await strategy.acheck(Target(model="m"))
    assert (result.status.value, result.detail) == ("healthy", "HTTP 302")
