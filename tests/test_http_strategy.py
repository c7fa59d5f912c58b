"""The ``http`` strategy against real loopback servers (no mocks).

Open Inference Protocol v2 and KServe v1 against ``OipServer``; the generic protocol,
retries, headers and basic auth against a scripted server that records every request;
timeouts against a server that never answers; connection refused and closed
connections; TLS (verify failure, CA bundle, mutual TLS) against a stdlib HTTPS server
with a ``trustme`` CA. Every failure must be an ``unhealthy`` result with a telling
detail, never an exception, and secrets must never show.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from healthkit import (
    CheckResult,
    ConfigError,
    Resolver,
    StrategyCreationError,
    StrategyRegistry,
    Target,
    describe_spec,
    parse_spec,
)
from healthkit.strategies.http import HttpStrategy
from healthkit.testing import OipServer

Make = Callable[..., HttpStrategy]


@pytest.fixture
def make(make_http: Callable[..., HttpStrategy]) -> Make:
    """``make_http`` (tests/conftest.py) under this file's name for it."""
    return make_http


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _assert_unhealthy(result: CheckResult, *fragments: str) -> None:
    assert isinstance(result, CheckResult)
    assert result.status.value == "unhealthy", result
    for fragment in fragments:
        assert fragment in result.detail, (fragment, result.detail)


# -- Open Inference Protocol v2 -----------------------------------------------------------


async def test_v2_server_and_model_paths(make: Make, oip_server: OipServer) -> None:
    strategy = make(base_url=oip_server.url, protocol="v2")
    server = await strategy.acheck(Target())
    assert (server.status.value, server.detail) == ("healthy", "ready (HTTP 200)")
    alpha = await strategy.acheck(Target(model="alpha"))
    assert alpha.status.value == "healthy"
    assert alpha.strategy == "http"
    assert alpha.target == Target(model="alpha")
    assert alpha.error is None
    versioned = await strategy.acheck(Target(model="alpha", version="3"))
    assert versioned.status.value == "healthy"
    assert oip_server.requests["/v2/health/ready"] == 1
    assert oip_server.requests["/v2/models/alpha/ready"] == 1
    assert oip_server.requests["/v2/models/alpha/versions/3/ready"] == 1


async def test_v2_not_ready_unknown_and_server_not_ready(make: Make, oip_server: OipServer) -> None:
    strategy = make(base_url=oip_server.url)  # v2 is the default protocol
    _assert_unhealthy(await strategy.acheck(Target(model="beta")), "not ready (HTTP 503)")
    _assert_unhealthy(
        await strategy.acheck(Target(model="ghost")), "model ghost not found (HTTP 404)"
    )
    oip_server.server_ready = False
    _assert_unhealthy(await strategy.acheck(Target()), "not ready (HTTP 503)")


async def test_v2_flaky_model_alternates(make: Make, oip_server: OipServer) -> None:
    strategy = make(base_url=oip_server.url)
    statuses = [(await strategy.acheck(Target(model="flaky"))).status.value for _ in range(4)]
    assert statuses == ["healthy", "unhealthy", "healthy", "unhealthy"]


async def test_v2_model_names_are_quoted(make: Make, oip_server: OipServer) -> None:
    oip_server.set_state("a b/c", "ready")
    strategy = make(base_url=oip_server.url)
    assert strategy.path_for(Target(model="a b/c", version="1/2")) == (
        "/v2/models/a%20b%2Fc/versions/1%2F2/ready"
    )
    assert (await strategy.acheck(Target(model="a b/c"))).status.value == "healthy"


async def test_base_url_path_prefix_is_kept(make: Make, scripted: Any) -> None:
    server = scripted(lambda m, p, n: _reply(200, {"ready": True}))
    strategy = make(base_url=server.url + "/proxy/pred/", protocol="v2")
    assert (await strategy.acheck(Target(model="m"))).status.value == "healthy"
    assert list(server.requests) == ["/proxy/pred/v2/models/m/ready"]


# -- KServe v1 ---------------------------------------------------------------------------


async def test_v1_ready_not_ready_and_missing(make: Make, oip_server: OipServer) -> None:
    strategy = make(base_url=oip_server.url, protocol="v1")
    assert (await strategy.acheck(Target(model="alpha"))).status.value == "healthy"
    _assert_unhealthy(await strategy.acheck(Target(model="beta")), "not ready (HTTP 503)")
    _assert_unhealthy(await strategy.acheck(Target(model="ghost")), "not found (HTTP 404)")
    assert (await strategy.acheck(Target())).status.value == "healthy"
    assert oip_server.requests["/v1/models/alpha"] == 1
    assert oip_server.requests["/v1/models"] == 1


def _reply(
    status: int, body: Any, content_type: str = "application/json"
) -> tuple[int, bytes, str]:
    return status, body if isinstance(body, bytes) else _json(body), content_type


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"name": "m", "ready": True}, None),
        (200, {"name": "m", "ready": "True"}, None),
        (200, {"name": "m", "ready": False}, "not ready (ready=False)"),
        (200, {"name": "m", "ready": None}, "not ready (ready=None)"),
        (200, {"name": "m"}, "body has no 'ready' field"),
        (200, ["ready"], "body has no 'ready' field"),
        (200, b"<html>ok</html>", "body is not JSON (HTTP 200)"),
        (503, {"ready": False}, "not ready (HTTP 503)"),
        (500, {"error": "boom"}, "server error (HTTP 500)"),
        (502, b"bad gateway", "server error (HTTP 502)"),
        (401, {"error": "who?"}, "HTTP 401"),
    ],
)
async def test_v1_bodies(
    make: Make, scripted: Any, status: int, body: Any, expected: str | None
) -> None:
    server = scripted(lambda m, p, n: _reply(status, body))
    result = await make(base_url=server.url, protocol="v1").acheck(Target(model="m"))
    if expected is None:
        assert result.status.value == "healthy", result
    else:
        _assert_unhealthy(result, expected)
    assert server.requests["/v1/models/m"] == 1


# -- generic -------------------------------------------------------------------------------


async def test_generic_template_method_and_status_ranges(make: Make, scripted: Any) -> None:
    replies = {
        "/health/good/1": _reply(204, b""),
        "/health/busy/1": _reply(429, b""),
        "/health/gone/1": _reply(404, b""),
        "/health/moved/1": _reply(302, b""),
    }
    server = scripted(lambda m, p, n: replies[p])
    strategy = make(
        base_url=server.url,
        protocol="generic",
        path="/health/{model}/{version}",
        method="post",
        expected_status=["2xx"],
        degraded_status=[429, "503"],
    )
    good = await strategy.acheck(Target(model="good", version="1"))
    assert (good.status.value, good.detail) == ("healthy", "HTTP 204")
    busy = await strategy.acheck(Target(model="busy", version="1"))
    assert (busy.status.value, busy.detail) == ("degraded", "degraded (HTTP 429)")
    _assert_unhealthy(
        await strategy.acheck(Target(model="gone", version="1")), "unexpected HTTP 404"
    )
    # redirects are not followed: a 302 is not in the expected range
    _assert_unhealthy(
        await strategy.acheck(Target(model="moved", version="1")), "unexpected HTTP 302"
    )
    assert set(server.methods) == {"POST"}


async def test_generic_head_and_custom_ranges(make: Make, scripted: Any) -> None:
    server = scripted(lambda m, p, n: _reply(302, b""))
    strategy = make(
        base_url=server.url,
        protocol="generic",
        path="/ping",
        method="HEAD",
        expected_status=["200-399"],
    )
    assert (await strategy.acheck(Target(model="x"))).status.value == "healthy"
    assert server.methods == ["HEAD"]


@pytest.mark.parametrize(
    ("body", "field", "status", "detail"),
    [
        ({"status": {"ok": True}}, "status.ok", "healthy", "HTTP 200, status.ok=True"),
        ({"status": {"ok": False}}, "status.ok", "unhealthy", "HTTP 200, status.ok=False"),
        ({"status": {}}, "status.ok", "unhealthy", "body has no 'status.ok' field"),
        ({"models": [{"ready": True}]}, "models.0.ready", "healthy", "models.0.ready=True"),
        ({"state": "SERVING"}, "state", "healthy", "state='SERVING'"),
        ({"state": ""}, "state", "unhealthy", "state=''"),
        (b"not json", "state", "unhealthy", "body is not JSON (HTTP 200)"),
    ],
)
async def test_generic_json_field(
    make: Make, scripted: Any, body: Any, field: str, status: str, detail: str
) -> None:
    server = scripted(lambda m, p, n: _reply(200, body))
    strategy = make(base_url=server.url, protocol="generic", path="/s/{model}", json_field=field)
    result = await strategy.acheck(Target(model="m"))
    assert result.status.value == status
    assert detail in result.detail
    assert list(server.requests) == ["/s/m"]


async def test_generic_template_without_target_parts(make: Make, scripted: Any) -> None:
    server = scripted(lambda m, p, n: _reply(200, b""))
    strategy = make(base_url=server.url, protocol="generic", path="/m/{model}/v/{version}")
    assert (await strategy.acheck(Target(model="x"))).status.value == "healthy"
    assert list(server.requests) == ["/m/x/v/"]


@pytest.mark.parametrize("path", ["/h/{modle}", "/h/{model", "/h/{0}", "/h/{model.attr}"])
def test_generic_template_errors_are_config_errors(path: str, registry: StrategyRegistry) -> None:
    raw = {"strategy": "http", "base_url": "http://h", "protocol": "generic", "path": path}
    with pytest.raises(ConfigError) as exc:
        parse_spec(raw, registry=registry, path="m")
    assert [i.path for i in exc.value.issues] == ["m.path"]
    assert "{model}" in str(exc.value) and "{version}" in str(exc.value)


def test_empty_expected_status_is_a_config_error(registry: StrategyRegistry) -> None:
    raw = {
        "strategy": "http",
        "base_url": "http://h",
        "protocol": "generic",
        "path": "/h",
        "expected_status": [],
    }
    with pytest.raises(ConfigError, match=r"m\.expected_status: must not be empty"):
        parse_spec(raw, registry=registry, path="m")


# -- failures: timeout, refused, closed, 5xx -------------------------------------------------


async def test_timeout_is_unhealthy(make: Make, silent_server: Any) -> None:
    strategy = make(base_url=silent_server.url, timeout=0.2)
    result = await strategy.acheck(Target(model="m"))
    _assert_unhealthy(result, "timed out after 0.2s")
    assert result.error is not None and "Timeout" in result.error.type


async def test_default_health_timeout_is_one_second(make: Make, silent_server: Any) -> None:
    strategy = make(base_url=silent_server.url)
    assert strategy.config.timeout == 1.0
    assert strategy.client.timeout.read == 1.0
    result = await strategy.acheck(Target(model="m"))
    _assert_unhealthy(result, "timed out after 1s")
    print(f"default timeout check took {result.latency:.3f}s (strategy-measured latency)")


async def test_connection_refused_is_unhealthy(make: Make, refused_url: str) -> None:
    result = await make(base_url=refused_url).acheck(Target(model="m"))
    _assert_unhealthy(result, "connection failed")
    assert result.error is not None and result.error.type == "ConnectError"


async def test_closed_connection_is_unhealthy(make: Make, closing_server: Any) -> None:
    result = await make(base_url=closing_server.url).acheck(Target(model="m"))
    # Depending on timing the client sees the close or a reset; either way it says so.
    _assert_unhealthy(result, "request failed: ")
    assert (
        result.detail
        == "request failed: RemoteProtocolError: Server disconnected without sending a response."
        or (result.detail.startswith("request failed: ReadError: ") and "reset" in result.detail)
    ), result.detail
    assert result.error is not None and result.error.message in result.detail
    assert closing_server.accepted == 1


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_500_is_unhealthy(make: Make, scripted: Any, protocol: str) -> None:
    server = scripted(lambda m, p, n: _reply(500, {"error": "boom"}))
    result = await make(base_url=server.url, protocol=protocol).acheck(Target(model="m"))
    _assert_unhealthy(result, "server error (HTTP 500)")
    assert server.total == 1


async def test_missing_tls_files_fail_startup_naming_the_file(
    registry: StrategyRegistry, tmp_path: Any
) -> None:
    missing = tmp_path / "missing.pem"
    spec = parse_spec(
        {"strategy": "http", "base_url": "https://127.0.0.1:1", "ca_bundle": str(missing)},
        registry=registry,
    )
    resolver = Resolver(registry)
    try:
        with pytest.raises(StrategyCreationError) as exc:
            resolver.acquire("m", spec)
    finally:
        await resolver.aclose()
    assert "strategy 'http'" in str(exc.value)
    assert f"TLS setup failed (ca_bundle={str(missing)!r})" in str(exc.value)
    assert resolver.stats().instances == 0


# -- retries -------------------------------------------------------------------------------


async def test_retries_until_success(make: Make, scripted: Any) -> None:
    server = scripted(lambda m, p, n: _reply(500 if n <= 2 else 200, {"ready": True}))
    strategy = make(base_url=server.url, retries=2, backoff=0.01, backoff_max=0.02)
    result = await strategy.acheck(Target(model="m"))
    assert result.status.value == "healthy"
    assert server.requests["/v2/models/m/ready"] == 3


async def test_retries_exhausted(make: Make, scripted: Any) -> None:
    server = scripted(lambda m, p, n: _reply(500 if n <= 2 else 200, {"ready": True}))
    strategy = make(base_url=server.url, retries=1, backoff=0.01, backoff_max=0.02)
    _assert_unhealthy(await strategy.acheck(Target(model="m")), "server error (HTTP 500)")
    assert server.total == 2


async def test_no_retries_by_default(make: Make, scripted: Any) -> None:
    server = scripted(lambda m, p, n: _reply(502, b""))
    _assert_unhealthy(await make(base_url=server.url).acheck(Target(model="m")), "HTTP 502")
    assert server.total == 1


async def test_connection_errors_are_retried(make: Make, closing_server: Any) -> None:
    strategy = make(base_url=closing_server.url, retries=2, backoff=0.01, backoff_max=0.02)
    _assert_unhealthy(await strategy.acheck(Target(model="m")), "request failed")
    assert closing_server.accepted == 3


async def test_a_404_is_an_answer_not_retried(make: Make, scripted: Any) -> None:
    server = scripted(lambda m, p, n: _reply(404, b""))
    strategy = make(base_url=server.url, retries=3, backoff=0.01)
    _assert_unhealthy(await strategy.acheck(Target(model="m")), "not found")
    assert server.total == 1


# -- headers and credentials -------------------------------------------------------------------


async def test_headers_are_sent_but_never_shown(make: Make, scripted: Any) -> None:
    server = scripted(lambda m, p, n: _reply(500, {"detail": "nope"}))
    strategy = make(
        base_url=server.url,
        headers={"Authorization": "Bearer s3cr3t-token", "X-Tenant": "t-hunter2"},
    )
    result = await strategy.acheck(Target(model="m"))
    assert server.headers[0]["authorization"] == "Bearer s3cr3t-token"
    assert server.headers[0]["x-tenant"] == "t-hunter2"
    shown = " ".join(
        [
            repr(strategy),
            repr(strategy.config),
            json.dumps(result.to_dict()),
            repr(result),
            json.dumps(
                describe_spec(
                    parse_spec(
                        {"strategy": "http", "base_url": server.url},
                        registry=StrategyRegistry(entry_points=False),
                    )
                )
            ),
        ]
    )
    assert "s3cr3t-token" not in shown and "hunter2" not in shown


async def test_url_credentials_are_sent_as_basic_auth_but_never_shown(
    make: Make, scripted: Any
) -> None:
    server = scripted(lambda m, p, n: _reply(503, {"ready": False}))
    url = server.url.replace("http://", "http://admin-user:hunter2@")
    strategy = make(base_url=url)
    result = await strategy.acheck(Target(model="m"))
    expected = "Basic " + base64.b64encode(b"admin-user:hunter2").decode()
    assert server.headers[0]["authorization"] == expected
    for text in (repr(strategy), repr(strategy.config), json.dumps(result.to_dict()), repr(result)):
        assert "hunter2" not in text and "admin-user" not in text
    assert "***@127.0.0.1" in repr(strategy)


async def test_credentials_not_leaked_in_connection_failures(make: Make, refused_url: str) -> None:
    url = refused_url.replace("http://", "http://admin-user:hunter2@")
    strategy = make(base_url=url, headers={"Authorization": "s3cr3t-token"})
    result = await strategy.acheck(Target(model="m"))
    _assert_unhealthy(result, "connection failed")
    text = json.dumps(result.to_dict())
    assert "hunter2" not in text and "admin-user" not in text and "s3cr3t-token" not in text


# -- TLS -----------------------------------------------------------------------------------------


def _https(url: str) -> str:
    return url.replace("http://", "https://")


async def test_tls_verification_fails_with_an_untrusted_ca(
    make: Make, scripted: Any, tls_files: Any
) -> None:
    server = scripted(lambda m, p, n: _reply(200, {}), tls=tls_files.server_context())
    for strategy in (
        make(base_url=_https(server.url)),
        make(base_url=_https(server.url), ca_bundle=str(tls_files.other_ca_path)),
    ):
        result = await strategy.acheck(Target(model="m"))
        print("untrusted:", result.detail)
        _assert_unhealthy(result, "TLS error", "CERTIFICATE_VERIFY_FAILED")


async def test_tls_succeeds_with_the_ca_bundle(make: Make, scripted: Any, tls_files: Any) -> None:
    server = scripted(lambda m, p, n: _reply(200, {}), tls=tls_files.server_context())
    strategy = make(base_url=_https(server.url), ca_bundle=str(tls_files.ca_path))
    result = await strategy.acheck(Target(model="m"))
    assert result.status.value == "healthy", result
    assert server.requests["/v2/models/m/ready"] == 1


async def test_tls_verify_off(make: Make, scripted: Any, tls_files: Any) -> None:
    server = scripted(lambda m, p, n: _reply(200, {}), tls=tls_files.server_context())
    result = await make(base_url=_https(server.url), verify=False).acheck(Target(model="m"))
    assert result.status.value == "healthy", result


async def test_mutual_tls(make: Make, scripted: Any, tls_files: Any) -> None:
    ctx = tls_files.server_context(require_client_cert=True)
    server = scripted(lambda m, p, n: _reply(200, {}), tls=ctx)
    without = make(base_url=_https(server.url), ca_bundle=str(tls_files.ca_path))
    result = await without.acheck(Target(model="m"))
    print("without a client cert:", result.detail)
    assert result.status.value == "unhealthy", result
    assert result.error is not None
    with_cert = make(
        base_url=_https(server.url),
        ca_bundle=str(tls_files.ca_path),
        client_cert=str(tls_files.client_cert_path),
    )
    assert (await with_cert.acheck(Target(model="m"))).status.value == "healthy"
    assert server.requests["/v2/models/m/ready"] == 1


# -- lifecycle -------------------------------------------------------------------------------------


async def test_one_client_serves_many_targets_and_closes(make: Make, oip_server: OipServer) -> None:
    strategy = make(base_url=oip_server.url)
    for name in ("alpha", "beta", "alpha"):
        await strategy.acheck(Target(model=name))
    assert oip_server.total_requests == 3
    await strategy.aclose()
    assert strategy.client.is_closed
