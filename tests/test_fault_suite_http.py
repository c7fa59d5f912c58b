"""The fault suite over HTTP: every HTTP fault against every strategy that speaks HTTP or TCP.

Strategies: ``http`` (protocols ``v2``, ``v1``, ``generic`` with a ``json_field``,
and ``v2`` with ``batch = true``, checked by a monitor's first round),
``composite`` (``all`` over a ``v2`` and a ``v1`` child), and the plugins
``openai`` and ``tcp`` (sending an HTTP request and expecting ``HTTP/1.1 200``).

Each cell asserts the documented status, an answer within the check's
deadline plus a grace, a readable detail, and that the cell's secret (a
header, the API key, ``send``) shows nowhere, though several faults echo it.
The ``none`` row is the control: against a healthy server every config is
healthy, so an unhealthy fault cell is the fault's doing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from _fault_checks import assert_cell, run_check, run_monitor_round
from _fault_servers import (
    BEARER,
    HTTP_REPLIES,
    INVALID_HOST,
    TIMEOUT,
    TOKEN,
    RawServer,
    TlsFaultServer,
    plaintext_http,
)
from _http_fault_server import FaultServer
from healthkit import Status, StrategyRegistry

OPENAI_KEY_ENV = "HK_FAULT_SUITE_OPENAI_KEY"

HTTP_FAULTS = (
    "none",
    "refused",
    "reset",
    "hang",
    "slow",
    "drip",
    "5xx",
    "garbage",
    "non-http",
    "huge",
    "huge-unsized",
    "redirect-loop",
    "tls-untrusted",
    "https-plaintext",
    "dns",
)


@attrs.frozen
class Endpoint:
    host: str
    port: int
    tls: bool = False
    #: The CA the client is told to trust (``tls`` only).
    ca: str | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


# -- the strategies' configs --------------------------------------------------------------


def _http(where: Endpoint, **keys: Any) -> dict[str, Any]:
    return {
        "strategy": "http",
        "base_url": where.url,
        "timeout": TIMEOUT,
        "headers": {"Authorization": BEARER},
        **({"ca_bundle": where.ca} if where.ca else {}),
        **keys,
    }


def _composite(where: Endpoint) -> dict[str, Any]:
    children = [
        {k: v for k, v in _http(where, protocol=p).items() if k != "timeout"} for p in ("v2", "v1")
    ]
    return {"strategy": "composite", "mode": "all", "timeout": TIMEOUT, "checks": children}


def _openai(where: Endpoint) -> dict[str, Any]:
    return {
        "strategy": "openai",
        "base_url": where.url,
        "api_key_env": OPENAI_KEY_ENV,
        "timeout": TIMEOUT,
        **({"ca_bundle": where.ca} if where.ca else {}),
    }


def _tcp(where: Endpoint) -> dict[str, Any]:
    return {
        "strategy": "tcp",
        "host": where.host,
        "port": where.port,
        "timeout": TIMEOUT,
        # The secret is in `send`, as a password would be.
        "send": f"GET /health HTTP/1.1\r\nHost: fault\r\nAuthorization: {BEARER}\r\n\r\n",
        "expect": "HTTP/1.1 200",
        **({"tls": True, "ca_bundle": where.ca} if where.tls else {}),
    }


STRATEGIES: dict[str, Callable[[Endpoint], dict[str, Any]]] = {
    "http-v2": lambda e: _http(e, protocol="v2"),
    "http-v1": lambda e: _http(e, protocol="v1"),
    "http-generic": lambda e: _http(
        e, protocol="generic", path="/status/{model}", json_field="ready"
    ),
    "http-batch": lambda e: _http(e, protocol="v2", batch=True),
    "composite": _composite,
    "openai": _openai,
    "tcp": _tcp,
}

# -- what each cell must give -------------------------------------------------------------
#
# Unhealthy unless listed here. Sources: docs/config.md ("Protocols": 5xx, a redirect,
# "a connection error, timeout, TLS error or a body that is not JSON (where one is
# needed) is unhealthy"; max_body_bytes: "a bigger one is unhealthy where the body
# matters"); docs/concepts.md (composite `all`: the worst child); docs/plugins/openai.md
# and docs/plugins/tcp.md ("Results"). openai does not document a huge body: no model
# list arrives within the deadline, which is unhealthy like any timeout there.
EXPECTED: dict[tuple[str, str], Status] = {
    **{(strategy, "none"): Status.HEALTHY for strategy in STRATEGIES},
    # docs/config.md: v2 "200 is healthy"; only the status is read, the body is left unread.
    ("http-v2", "garbage"): Status.HEALTHY,
    ("http-v2", "huge"): Status.HEALTHY,
    ("http-v2", "huge-unsized"): Status.HEALTHY,
    # docs/plugins/tcp.md: healthy once `expect` arrived; these answers begin "HTTP/1.1 200".
    ("tcp", "garbage"): Status.HEALTHY,
    ("tcp", "huge"): Status.HEALTHY,
    ("tcp", "huge-unsized"): Status.HEALTHY,
}
#: Faults where no answer arrives in time. docs/reliability.md: the strategy gives up
#: within its own timeout, with its own reason, before the monitor's hard cap has to cut
#: it ("check timed out after ..."); a server that drips a byte now and then must not
#: reset that countdown. (A composite's children are cut by the composite's timeout:
#: that is its own reason, so composite cells are judged by the table above only.)
TIMEOUT_FAULTS = ("hang", "slow", "drip")
OWN_TIMEOUT_REASON = f"timed out after {TIMEOUT:g}s"

#: Cells that do not exist: a TCP probe follows no redirects (its 302 is just bytes
#: that are not `expect`, which the 5xx cell covers already).
NOT_APPLICABLE = {("tcp", "redirect-loop")}

CELLS = [
    (strategy, fault)
    for strategy in STRATEGIES
    for fault in HTTP_FAULTS
    if (strategy, fault) not in NOT_APPLICABLE
]


# -- servers, one set per module ----------------------------------------------------------


@attrs.frozen
class HttpFaults:
    endpoints: dict[str, Endpoint]


@pytest.fixture(scope="module")
def http_faults(tls_files: Any) -> Iterator[HttpFaults]:
    started: list[Any] = []
    try:
        endpoints: dict[str, Endpoint] = {}
        for fault, reply in HTTP_REPLIES.items():
            server = FaultServer().start()
            started.append(server)
            if reply is None:
                server.set_mode("hung")
            server.reply = reply
            endpoints[fault] = Endpoint("127.0.0.1", server.port)
        tls = TlsFaultServer(tls_files.server_context()).start()
        started.append(tls)
        tls.reply = HTTP_REPLIES["none"]
        # Signed by the suite's CA, but the client trusts another one.
        endpoints["tls-untrusted"] = Endpoint(
            "127.0.0.1", tls.port, tls=True, ca=str(tls_files.other_ca_path)
        )
        plain = RawServer(plaintext_http).start()
        started.append(plain)
        endpoints["https-plaintext"] = Endpoint(
            "127.0.0.1", plain.port, tls=True, ca=str(tls_files.ca_path)
        )
        endpoints["dns"] = Endpoint(INVALID_HOST, 8080)
        yield HttpFaults(endpoints)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(scope="module")
def plugin_registry() -> StrategyRegistry:
    """Built-ins and the installed plugins (tcp, exec, openai): the suite needs all three."""
    registry = StrategyRegistry()
    missing = {"tcp", "exec", "openai"} - set(registry.names())
    assert not missing, f"plugins not installed: {sorted(missing)}"
    return registry


@pytest.mark.parametrize(("strategy", "fault"), CELLS, ids=[f"{s}-{f}" for s, f in CELLS])
async def test_http_fault_cell(
    strategy: str,
    fault: str,
    http_faults: HttpFaults,
    plugin_registry: StrategyRegistry,
    refused_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OPENAI_KEY_ENV, TOKEN)
    if fault == "refused":
        where = Endpoint("127.0.0.1", int(refused_url.rsplit(":", 1)[1]))
    else:
        where = http_faults.endpoints[fault]
    health_check = STRATEGIES[strategy](where)
    run = run_monitor_round if strategy == "http-batch" else run_check
    outcome = await run(health_check, plugin_registry)
    assert_cell(outcome, EXPECTED.get((strategy, fault), Status.UNHEALTHY))
    if fault in TIMEOUT_FAULTS and strategy != "composite":
        detail = outcome.result.detail
        assert OWN_TIMEOUT_REASON in detail and "check timed out" not in detail, detail


def test_every_http_fault_and_strategy_is_a_cell() -> None:
    # A fault or strategy added to one table and forgotten in the other would test nothing.
    assert set(HTTP_REPLIES) | {"refused", "tls-untrusted", "https-plaintext", "dns"} == set(
        HTTP_FAULTS
    )
    assert {s for s, _ in EXPECTED} <= set(STRATEGIES)
    assert len(CELLS) == len(STRATEGIES) * len(HTTP_FAULTS) - len(NOT_APPLICABLE)
