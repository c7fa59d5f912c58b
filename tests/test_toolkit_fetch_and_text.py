"""The toolkit's request and upstream-text helpers: ``fetch``, ``http_failure``,
``secret_masker``, ``printable`` and ``excerpt``, which ``http``, ``grpc`` and the
bundled plugins share (a plugin may not import healthkit's private modules)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import attrs
import httpx
import pytest

from _http_fault_server import FaultServer, Request, response
from healthkit import Secret, SecretUrl
from healthkit.toolkit import (
    FrozenMap,
    excerpt,
    fetch,
    http_client,
    http_failure,
    printable,
    secret_masker,
)

DRIP_INTERVAL = 0.05


async def drip_head(request: Request, writer: asyncio.StreamWriter) -> bool:
    """A byte of the answer every 50 ms: every read gets one in time, the answer never ends."""
    for byte in response(200, b"{}"):
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(DRIP_INTERVAL)
    return True


async def drip_body(request: Request, writer: asyncio.StreamWriter) -> bool:
    """The head at once, then the body a byte every 50 ms."""
    body = b'{"ready": true}' + b" " * 200
    whole = response(200, body)
    head = whole[: len(whole) - len(body)]
    writer.write(head)
    await writer.drain()
    for byte in body:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(DRIP_INTERVAL)
    return True


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


# -- fetch -------------------------------------------------------------------------------


async def test_fetch_ends_a_dripped_answer_by_its_deadline_and_the_pool_serves_on(
    server: FaultServer,
) -> None:
    client = http_client(SecretUrl(server.url), timeout=1.0, max_connections=1)
    try:
        server.reply = drip_head
        with pytest.raises(httpx.ReadTimeout) as caught:
            await fetch(client, "GET", "/v2/health/ready", timeout=0.3, max_body_bytes=1024)
        assert http_failure(caught.value, timeout=0.3) == (
            "timed out after 0.3s waiting for the response (ReadTimeout)"
        )
        # The cut connection was closed, not left half-read in the one-slot pool.
        server.reply = None
        reply = await fetch(client, "GET", "/v2/health/ready", timeout=1.0, max_body_bytes=1024)
        assert reply.status_code == 200
    finally:
        await client.aclose()


async def test_fetch_returns_the_status_when_only_the_body_is_late(server: FaultServer) -> None:
    client = http_client(SecretUrl(server.url), timeout=1.0)
    try:
        server.reply = drip_body
        # Only the status matters: the late body is left unread.
        reply = await fetch(client, "GET", "/x", timeout=0.3, max_body_bytes=1024, need_body=False)
        assert (reply.status_code, reply.body, reply.oversize) == (200, None, False)
        # The body matters: no complete answer in time.
        with pytest.raises(httpx.ReadTimeout):
            await fetch(client, "GET", "/x", timeout=0.3, max_body_bytes=1024)
    finally:
        await client.aclose()


async def test_fetch_does_not_read_a_body_over_the_cap(server: FaultServer) -> None:
    async def big(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(200, b"x" * 5000))
        await writer.drain()
        return True

    client = http_client(SecretUrl(server.url), timeout=1.0)
    try:
        server.reply = big
        reply = await fetch(client, "GET", "/x", timeout=1.0, max_body_bytes=4096)
        assert (reply.body, reply.oversize) == (None, True)
        small = await fetch(client, "GET", "/x", timeout=1.0, max_body_bytes=5000)
        assert (small.body, small.oversize) == (b"x" * 5000, False)
    finally:
        await client.aclose()


# -- words and text ------------------------------------------------------------------------


def test_http_failure_words_a_reset_and_a_non_http_reply() -> None:
    request = httpx.Request("GET", "http://h/health")
    reset = httpx.ReadError("", request=request)
    reset.__context__ = ConnectionResetError(104, "Connection reset by peer")
    assert http_failure(reset, timeout=1.0) == (
        "request failed: ReadError: connection reset by peer ([Errno 104] Connection reset by peer)"
    )
    ssh = httpx.RemoteProtocolError("illegal status line: bytearray(b'SSH-2.0-x')", request=request)
    assert http_failure(ssh, timeout=1.0) == (
        "request failed: RemoteProtocolError: not HTTP (the reply is not an HTTP response)"
    )


@attrs.frozen
class _Config:
    headers: FrozenMap[str, Secret]
    url: SecretUrl
    name: str = "not-a-secret"


def test_secret_masker_masks_every_secret_of_a_config_in_every_form() -> None:
    config = _Config(
        headers=FrozenMap({"authorization": Secret("Bearer tok-123456\n")}),
        url=SecretUrl("http://user:pass-7890@host"),
    )
    mask = secret_masker(config, extra=["extra-secret", "ab"])
    text = (
        "echo: Bearer tok-123456 | tok-123456 | b'Bearer tok-123456\\n' | pass-7890 | "
        "extra-secret | ab | not-a-secret"
    )
    assert mask(text) == "echo: *** | *** | b'***' | *** | *** | ab | not-a-secret"


def test_printable_shows_control_characters_as_pictures_never_escapes() -> None:
    raw = b"\x00\xff\x1b[31mred\r\n\x7f\tend"
    assert printable(raw) == "␀\ufffd␛[31mred␍␊␡␉end"
    assert printable(raw, keep="\n\t") == "␀\ufffd␛[31mred␍\n␡\tend"
    # Invisible formatting characters (a bidi override) and odd spaces.
    assert printable("a\u202eb\u00a0c\x85") == "a\ufffdb c\ufffd"


def test_excerpt_cuts_at_the_start_or_the_end() -> None:
    assert excerpt("short", 10) == "short"
    assert excerpt("abcdefghij" * 2, 10) == "abcdefghi…"
    assert excerpt("abcdefghij" * 2, 10, tail=True) == "…bcdefghij"
    assert len(excerpt(b"\x00" * 100, 10)) == 10


def test_http_failure_words_a_tls_failure_without_the_ssl_module_source_line() -> None:
    message = "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
    exc = httpx.ConnectError(message)
    exc.__context__ = ssl.SSLError(1, message)
    assert http_failure(exc, timeout=1.0) == (
        "TLS error: TLS handshake failed ([SSL: WRONG_VERSION_NUMBER] wrong version number)"
    )
