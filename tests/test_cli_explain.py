"""Why is it unhealthy? What each result checked (``endpoint``), and ``check -v``.

Real upstreams on 127.0.0.1 (an ``OipServer``; a closed port for "refused"); the
``tcp`` and ``openai`` plugins are the installed distributions.
"""

from __future__ import annotations

import json
import re
import socket
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from healthkit import (
    BatchStrategy,
    CheckResult,
    HealthKit,
    RequestInfo,
    Status,
    StrategyRegistry,
    Target,
    load_config,
)
from healthkit.cli import cli
from healthkit.testing import OipServer

TOKEN = "tok-Explain-7Hq2-secret"
PASSWORD = "pw-Explain-Zk4-secret"
QUERY_TOKEN = "qs-Explain-Pp9-secret"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def server() -> Iterator[OipServer]:
    srv = OipServer({"alpha": "ready", "sick": "not_ready"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], str]:
    def write(text: str) -> str:
        path = tmp_path / "healthkit.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return write


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def secret_url(url: str) -> str:
    """``url`` with credentials in it: they may never be shown."""
    return url.replace("http://", f"http://svc:{PASSWORD}@") + "/"


def assert_no_secret(text: str) -> None:
    for secret in (TOKEN, PASSWORD, QUERY_TOKEN):
        assert secret not in text


# -- endpoint: what each result checked ----------------------------------------------------


def test_composite_children_say_what_each_one_checked(
    server: OipServer, write: Callable[[str], str]
) -> None:
    down = refused_port()
    path = write(f"""
    [models.alpha.health_check]
    strategy = "composite"
    mode = "all"
    timeout = 2.0
    checks = [
      {{strategy = "http", base_url = "{server.url}", timeout = 1.0}},
      {{strategy = "grpc", target = "127.0.0.1:{down}", timeout = 1.0}},
      {{strategy = "tcp", host = "127.0.0.1", port = {server.port}, timeout = 1.0}},
      {{strategy = "noop"}},
    ]
    """)
    table = run("check", path)
    assert table.exit_code == 2, table.output
    out = table.stdout
    # Children are labelled by their strategy (not "[0] gamma"), the ENDPOINT column says where.
    assert re.search(rf"^  \[0\] http\s+healthy\s+http\s+{re.escape(server.url)}\s", out, re.M)
    assert re.search(rf"^  \[1\] grpc\s+unhealthy\s+grpc\s+127\.0\.0\.1:{down}\s", out, re.M)
    assert re.search(rf"^  \[2\] tcp\s+healthy\s+tcp\s+127\.0\.0\.1:{server.port}\s", out, re.M)
    assert re.search(r"^  \[3\] noop\s+healthy\s+noop\s+-\s", out, re.M)
    assert "[0] alpha" not in out

    data = json.loads(run("check", path, "--format", "json").stdout)
    children = data["models"]["alpha"]["children"]
    assert [c["endpoint"] for c in children] == [
        server.url,
        f"127.0.0.1:{down}",
        f"127.0.0.1:{server.port}",
        None,
    ]
    assert data["models"]["alpha"]["endpoint"] is None  # the composite itself contacts nothing


def test_openai_fills_in_its_endpoint(server: OipServer, write: Callable[[str], str]) -> None:
    path = write(f"""
    [models.chat.health_check]
    strategy = "openai"
    base_url = "{server.url}"
    timeout = 1.0
    """)
    data = json.loads(run("check", path, "--format", "json").stdout)
    assert data["models"]["chat"]["endpoint"] == server.url


def test_endpoint_and_request_never_show_a_secret(
    server: OipServer, write: Callable[[str], str]
) -> None:
    path = write(f"""
    [defaults.health_check]
    strategy = "http"
    base_url = "{secret_url(server.url)}"
    timeout = 1.0
    headers = {{authorization = "Bearer {TOKEN}"}}
    [models.alpha]
    [models.sick]
    """)
    table = run("check", path, "-v")
    as_json = run("check", path, "--format", "json")
    for result in (table, as_json):
        assert result.exit_code == 2, result.output
        assert_no_secret(result.output)
    data = json.loads(as_json.stdout)
    sick = data["models"]["sick"]
    assert sick["endpoint"] == server.url  # no user:password@
    assert sick["request"] == {
        "method": "GET",
        "url": f"{server.url}/v2/models/sick/ready",
        "status": "HTTP 503",
    }
    assert f"GET {server.url}/v2/models/sick/ready -> HTTP 503" in table.stdout


def test_check_result_drops_a_query_from_what_it_shows() -> None:
    result = CheckResult(
        status=Status.HEALTHY,
        strategy="x",
        endpoint=f"http://h:1/p?token={QUERY_TOKEN}#frag",
        request=RequestInfo(method="GET", url=f"http://h:1/p/ready?key={QUERY_TOKEN}"),
    )
    assert result.endpoint == "http://h:1/p"
    assert result.request is not None and result.request.url == "http://h:1/p/ready"
    assert_no_secret(repr(result) + json.dumps(result.to_dict()))


# -- check -v ------------------------------------------------------------------------------------


def test_verbose_shows_the_request_of_each_failing_model(
    server: OipServer, write: Callable[[str], str]
) -> None:
    down = refused_port()
    path = write(f"""
    [defaults.health_check]
    strategy = "http"
    base_url = "{server.url}"
    timeout = 1.0
    [models.alpha]
    [models.sick]
    [models.gone.health_check]
    base_url = "http://127.0.0.1:{down}"
    """)
    plain = run("check", path)
    verbose = run("check", path, "-v")
    assert plain.exit_code == verbose.exit_code == 2
    assert "request:" not in plain.stdout
    extra = verbose.stdout[len(plain.stdout) :].splitlines()
    text = "\n".join(extra)
    assert f"GET {server.url}/v2/models/sick/ready -> HTTP 503" in text
    assert f"GET http://127.0.0.1:{down}/v2/models/gone/ready -> no answer" in text
    assert re.search(r"^  error: \w+Error: .+", text, re.M)
    assert "alpha" not in text  # a healthy model is not explained

    # The table itself is unchanged by -v (but for the latencies).
    def rows(out: str) -> list[list[str]]:
        return [line.split()[:4] for line in out.split("\n\n")[0].splitlines()]

    assert rows(verbose.stdout) == rows(plain.stdout)


def test_verbose_shows_failing_composite_children(
    server: OipServer, write: Callable[[str], str]
) -> None:
    down = refused_port()
    path = write(f"""
    [models.sick.health_check]
    strategy = "composite"
    checks = [
      {{strategy = "http", base_url = "{server.url}", timeout = 1.0}},
      {{strategy = "grpc", target = "127.0.0.1:{down}", timeout = 1.0}},
    ]
    """)
    result = run("check", path, "-v")
    assert result.exit_code == 2
    tail = result.stdout.split("\n\n")[-1]
    assert "sick: unhealthy" in tail
    assert "[0] http: unhealthy: not ready (HTTP 503)" in tail
    assert f"GET {server.url}/v2/models/sick/ready -> HTTP 503" in tail
    assert "[1] grpc: unhealthy" in tail
    assert f"endpoint: 127.0.0.1:{down}" in tail


async def test_batch_results_carry_the_index_request(server: OipServer) -> None:
    registry = StrategyRegistry()
    config = load_config(
        {
            "defaults": {
                "health_check": {"strategy": "http", "base_url": server.url, "batch": True}
            },
            "models": {"alpha": {}, "nope": {}},
        },
        registry=registry,
    )
    async with HealthKit(config, registry=registry) as kit:
        instance = kit.resolver.get("alpha")
        assert isinstance(instance, BatchStrategy)
        got = await instance.acheck_many([Target(model="alpha"), Target(model="nope")])
    index = RequestInfo(method="POST", url=f"{server.url}/v2/repository/index", status="HTTP 200")
    for target, result in got.items():
        assert result.request == index, target
        assert result.endpoint == server.url
    assert {t.model: r.status for t, r in got.items()} == {
        "alpha": Status.HEALTHY,
        "nope": Status.UNHEALTHY,
    }


# -- one JSON shape: HealthReport.to_dict is what check --format json prints ------------------


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_timing(v) for k, v in value.items() if k not in ("latency_ms", "checked_at")
        }
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def test_report_to_dict_is_the_check_json(server: OipServer, write: Callable[[str], str]) -> None:
    path = write(f"""
    [defaults.health_check]
    strategy = "http"
    base_url = "{server.url}"
    timeout = 1.0
    [models.alpha]
    [models.sick]
    [models.both.health_check]
    strategy = "composite"
    checks = [ {{strategy = "http", base_url = "{server.url}"}}, {{strategy = "noop"}} ]
    """)
    cli_data = json.loads(run("check", path, "--format", "json").stdout)
    with HealthKit.from_config(path) as kit:
        api_data = kit.check_all().to_dict()
    assert _without_timing(api_data) == _without_timing(cli_data)
    # A leaf has "children": [] in both, not a missing key in one of them.
    assert api_data["models"]["alpha"]["children"] == []
    assert api_data["models"]["both"]["children"][1]["children"] == []
