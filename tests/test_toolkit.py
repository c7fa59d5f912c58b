"""healthkit.toolkit: the result builder, the retry policy and its deadline, shared TLS contexts."""

from __future__ import annotations

import gc
import json
import ssl
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from healthkit import ErrorInfo, SecretUrl, Status, Target
from healthkit.strategies.http import HttpConfig, HttpStrategy
from healthkit.toolkit import (
    ResultBuilder,
    http_client,
    no_tls_context,
    retry_deadline,
    retrying,
    tls_context,
)

T = Target(model="m")


# -- results ----------------------------------------------------------------------------------


def test_result_builder_names_the_strategy_and_turns_an_exception_into_error_info() -> None:
    results = ResultBuilder("demo")
    plain = results(T, Status.HEALTHY, "fine")
    assert (plain.strategy, plain.target, plain.status, plain.detail, plain.error) == (
        "demo",
        T,
        Status.HEALTHY,
        "fine",
        None,
    )
    failed = results(T, Status.UNHEALTHY, "down", ConnectionRefusedError("refused"))
    assert failed.error == ErrorInfo(type="ConnectionRefusedError", message="refused")
    given = ErrorInfo(type="DecodeError", message="bad bytes")
    assert results(T, Status.UNHEALTHY, "x", given).error is given
    renamed = results(T, Status.UNHEALTHY, "x", RuntimeError("slow"), error_type="TimeoutError")
    assert renamed.error == ErrorInfo(type="TimeoutError", message="slow")


def test_result_builder_scrubs_detail_and_error_and_cuts_long_messages() -> None:
    results = ResultBuilder(
        "demo", scrub=lambda text: text.replace("s3cret", "***"), error_limit=20
    )
    result = results(T, Status.UNHEALTHY, "echoed s3cret", ValueError("token s3cret " + "x" * 50))
    assert result.detail == "echoed ***"
    assert result.error is not None
    assert "s3cret" not in result.error.message
    assert result.error.message.startswith("token ") and len(result.error.message) <= 20


# -- retries ----------------------------------------------------------------------------------


@attrs.frozen
class _Retry:
    retries: int = 2
    backoff: float = 0.0
    backoff_max: float = 0.0


def test_retry_deadline_covers_every_attempt_and_the_longest_pauses() -> None:
    settings = _Retry(retries=2, backoff=0.1, backoff_max=0.5)
    assert retry_deadline(settings, 1.0) == pytest.approx(3 * 1.0 + 2 * (0.5 + 0.1))
    assert retry_deadline(_Retry(retries=0), 1.5) == 1.5
    # The configs that retry declare exactly this (the monitor's hard cap builds on it).
    http = HttpConfig(base_url="http://h", retries=3, backoff=0.2, backoff_max=0.4)
    assert http.check_deadline(2.0) == retry_deadline(http, 2.0)


async def _attempts(
    settings: _Retry, raise_: Callable[[int], BaseException | None], **kw: Any
) -> int:
    calls = 0
    async for attempt in retrying(settings, **kw):
        with attempt:
            calls += 1
            exc = raise_(calls)
            if exc is not None:
                raise exc
    return calls


async def test_retrying_retries_the_named_failures_then_reraises_the_last() -> None:
    assert await _attempts(_Retry(), lambda n: OSError(n) if n < 3 else None, retry=OSError) == 3
    with pytest.raises(OSError, match="3"):
        await _attempts(_Retry(), lambda n: OSError(str(n)), retry=(OSError,))
    with pytest.raises(KeyError):  # not retryable: one attempt
        await _attempts(_Retry(), lambda n: KeyError(n), retry=OSError)
    only_even = lambda exc: int(str(exc)) % 2 == 1  # noqa: E731
    with pytest.raises(OSError, match="2"):
        await _attempts(_Retry(), lambda n: OSError(str(n)), retry=only_even)


# -- TLS --------------------------------------------------------------------------------------


def test_equal_tls_settings_share_one_context_and_different_ones_do_not(tls_files: Any) -> None:
    ca = str(tls_files.ca_path)
    shared = tls_context(ca_bundle=ca)
    assert tls_context(ca_bundle=ca) is shared
    assert tls_context(ca_bundle=str(tls_files.other_ca_path)) is not shared
    assert tls_context() is not shared
    unverified = tls_context(verify=False, ca_bundle=ca)  # ca_bundle means nothing without verify
    assert unverified is tls_context(verify=False)
    assert unverified.verify_mode is ssl.CERT_NONE and not unverified.check_hostname
    assert shared.verify_mode is ssl.CERT_REQUIRED and shared.check_hostname


def test_contexts_are_held_only_by_their_users(tls_files: Any) -> None:
    ref = weakref.ref(tls_context(ca_bundle=str(tls_files.other_ca_path)))
    gc.collect()
    assert ref() is None


def test_a_rotated_file_gets_a_fresh_context(tls_files: Any, tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(tls_files.ca_path.read_bytes())
    before = tls_context(ca_bundle=str(path))
    path.write_bytes(tls_files.other_ca_path.read_bytes() + b"\n")
    assert tls_context(ca_bundle=str(path)) is not before


def test_another_thread_gets_its_own_context(tls_files: Any) -> None:
    mine = tls_context(ca_bundle=str(tls_files.ca_path))
    theirs: list[ssl.SSLContext] = []
    thread = threading.Thread(
        target=lambda: theirs.append(tls_context(ca_bundle=str(tls_files.ca_path)))
    )
    thread.start()
    thread.join()
    assert theirs and theirs[0] is not mine


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=rf"TLS setup failed \(client_cert={str(missing)!r}\)"):
        tls_context(client_cert=str(missing))


def _ssl_context_of(strategy: HttpStrategy) -> Any:
    # Each connection slot is an httpx transport that hands the context to httpcore's pool;
    # that is what the connections use.
    transport = strategy.client._transport
    if not transport._idle:  # type: ignore[attr-defined]
        transport._idle.append(transport._new_slot())  # type: ignore[attr-defined]
    return transport._idle[-1]._pool._ssl_context  # type: ignore[attr-defined]


async def test_distinct_http_configs_with_equal_tls_settings_share_one_context(
    scripted: Any, tls_files: Any
) -> None:
    server = scripted(
        lambda m, p, n: (200, json.dumps({}).encode(), "application/json"),
        tls=tls_files.server_context(),
    )
    url = server.url.replace("http://", "https://")
    ca = str(tls_files.ca_path)
    first = HttpStrategy(HttpConfig(base_url=url, ca_bundle=ca, timeout=2.0))
    second = HttpStrategy(HttpConfig(base_url=url, ca_bundle=ca, timeout=3.0))
    plain = HttpStrategy(HttpConfig(base_url="http://127.0.0.1:9"))
    try:
        assert _ssl_context_of(first) is _ssl_context_of(second)
        assert _ssl_context_of(plain) is no_tls_context()
        for strategy in (first, second):
            result = await strategy.acheck(T)
            assert result.status is Status.HEALTHY, result.detail
    finally:
        for strategy in (first, second, plain):
            await strategy.aclose()


async def test_the_no_tls_context_fails_an_https_request_rather_than_trusting_it(
    scripted: Any, tls_files: Any
) -> None:
    server = scripted(lambda m, p, n: (200, b"", "text/plain"), tls=tls_files.server_context())
    url = SecretUrl(server.url.replace("http://", "https://"))
    async with http_client(url, timeout=2.0, verify=no_tls_context()) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get("/")
    assert sum(server.requests.values()) == 0
