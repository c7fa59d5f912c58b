"""The built-in strategies pass the same conformance suite that plugins run.

``grpc`` joins when its strategy is registered and available (grpcio installed).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from healthkit import StrategyRegistry
from healthkit.testing import BadConfig, OipServer, SilentServer, StrategyConformance

HEADER_SECRET = "Bearer conformance-header-secret"
URL_SECRET = "conformance-url-password"


@pytest.fixture(scope="module")
def oip() -> Iterator[OipServer]:
    server = OipServer({"conformance": "ready", "sleepy": "not_ready"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def refused_address() -> Iterator[str]:
    """``host:port`` that is bound but not listening: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


class TestNoopConformance(StrategyConformance):
    strategy = "noop"

    @pytest.fixture
    def valid_config(self) -> Mapping[str, Any]:
        return {}

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        return [BadConfig(changes={"base_url": "http://x"}, path="base_url", message="unknown key")]


class TestHttpConformance(StrategyConformance):
    strategy = "http"

    @pytest.fixture
    def valid_config(self, oip: OipServer) -> Mapping[str, Any]:
        return {
            "base_url": f"http://user:{URL_SECRET}@127.0.0.1:{oip.port}",
            "protocol": "v2",
            "timeout": 2.0,
            "headers": {"Authorization": HEADER_SECRET},
        }

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        return [
            BadConfig(changes={"timeout": -1}, path="timeout", message="must be > 0"),
            BadConfig(changes={"protocol": "v3"}, path="protocol", message="must be one of"),
            BadConfig(changes={"base_url": "ftp://example.org"}, path="base_url"),
            BadConfig(remove=("base_url",), path="base_url", message="missing required key"),
            BadConfig(changes={"retries": -2}, path="retries", message="must be >= 0"),
            BadConfig(changes={"path": "/x"}, path="path", message="only allowed"),
        ]

    @pytest.fixture
    def failing_config(self, refused_address: str) -> Mapping[str, Any]:
        return {"base_url": f"http://{refused_address}", "headers": {"x-token": HEADER_SECRET}}

    @pytest.fixture
    def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
        return {"base_url": healthkit_silent_server.url, "headers": {"x-token": HEADER_SECRET}}

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return [HEADER_SECRET, URL_SECRET]


class TestCompositeConformance(StrategyConformance):
    strategy = "composite"

    @pytest.fixture
    def valid_config(self, oip: OipServer) -> Mapping[str, Any]:
        return {
            "mode": "quorum",
            "quorum": 2,
            "checks": [
                {"strategy": "http", "base_url": oip.url, "headers": {"x-token": HEADER_SECRET}},
                {"strategy": "noop"},
                {"strategy": "http", "base_url": oip.url, "protocol": "v1"},
            ],
        }

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        return [
            BadConfig(changes={"mode": "most"}, path="mode", message="must be one of"),
            BadConfig(changes={"quorum": 4}, path="quorum", message="must be <="),
            BadConfig(changes={"checks": []}, path="checks", message="must not be empty"),
            BadConfig(
                changes={
                    "checks": [
                        {"strategy": "noop"},
                        {"strategy": "http", "base_url": "http://h", "timeout": 0},
                    ]
                },
                path="checks[1].timeout",
                message="must be > 0",
            ),
            BadConfig(
                changes={"checks": [{"strategy": "nope"}]},
                path="checks[0].strategy",
                message="unknown strategy",
            ),
        ]

    @pytest.fixture
    def failing_config(self, refused_address: str) -> Mapping[str, Any]:
        return {"checks": [{"strategy": "http", "base_url": f"http://{refused_address}"}]}

    @pytest.fixture
    def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
        return {
            "mode": "any",
            "checks": [
                {"strategy": "http", "base_url": healthkit_silent_server.url, "timeout": 30},
                {
                    "strategy": "http",
                    "base_url": healthkit_silent_server.url,
                    "headers": {"x-token": HEADER_SECRET},
                },
            ],
        }

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return [HEADER_SECRET]


def _grpc_available() -> bool:
    registry = StrategyRegistry(entry_points=False, disabled=())
    return "grpc" in registry and registry.get("grpc").unavailable is None


@pytest.fixture(scope="module")
def grpc_health_server() -> Iterator[int]:
    """A real grpc.health.v1 server on loopback (in threads, so any event loop can call it)."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("conformance", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait()


if _grpc_available():

    class TestGrpcConformance(StrategyConformance):
        strategy = "grpc"

        @pytest.fixture
        def valid_config(self, grpc_health_server: int) -> Mapping[str, Any]:
            return {
                "target": f"127.0.0.1:{grpc_health_server}",
                "protocol": "health-v1",
                "timeout": 2.0,
                "metadata": {"authorization": HEADER_SECRET},
            }

        @pytest.fixture
        def bad_configs(self) -> Sequence[BadConfig]:
            return [
                BadConfig(changes={"timeout": 0}, path="timeout", message="must be > 0"),
                BadConfig(changes={"protocol": "v9"}, path="protocol"),
                BadConfig(remove=("target",), path="target", message="missing required key"),
            ]

        @pytest.fixture
        def failing_config(self, refused_address: str) -> Mapping[str, Any]:
            return {"target": refused_address, "protocol": "health-v1"}

        @pytest.fixture
        def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
            return {"target": healthkit_silent_server.address, "protocol": "health-v1"}

        @pytest.fixture
        def secrets(self) -> Sequence[str]:
            return [HEADER_SECRET]


PYTEST_PLUGIN_PROBE = """
import importlib.metadata, json, logging, os, sys, threading, time, warnings

modules = set(sys.modules)
environ = dict(os.environ)
threads = threading.active_count()
handlers = list(logging.getLogger().handlers) + list(logging.getLogger("healthkit").handlers)
filters = list(warnings.filters)
HEAVY = (
    "healthkit.testing._", "healthkit.cli", "healthkit.strategies.",
    "grpc", "psutil", "uvicorn", "starlette", "yaml",
)
(ep,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "healthkit"]
start = time.perf_counter()
module = ep.load()
took = time.perf_counter() - start
print(json.dumps({
    "value": ep.value,
    "seconds": took,
    "environ_changed": dict(os.environ) != environ,
    "new_threads": threading.active_count() - threads,
    "new_handlers": len(logging.getLogger().handlers) + len(logging.getLogger("healthkit").handlers)
    - len(handlers),
    "filters_changed": list(warnings.filters) != filters,
    "hooks": sorted(n for n in dir(module) if n.startswith("pytest_")),
    "heavy": sorted(
        m for m in set(sys.modules) - modules
        if m.startswith(HEAVY) and m != "healthkit.testing._pytest_plugin"
    ),
}))
"""


def test_the_pytest_plugin_is_registered_light_and_side_effect_free() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PYTEST_PLUGIN_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(done.stdout)
    print(f"loading the pytest11 entry point (healthkit included) took {found['seconds']:.3f}s")
    assert found["value"] == "healthkit.testing._pytest_plugin"
    assert found["environ_changed"] is False
    assert found["new_threads"] == 0
    assert found["new_handlers"] == 0
    assert found["filters_changed"] is False
    # Fixtures only: no hooks that would change every pytest run.
    assert found["hooks"] == []
    # The suite, the servers and optional extras load only when a test asks for them.
    assert found["heavy"] == []


def test_the_silent_server_fixture_comes_from_the_pytest_plugin(
    healthkit_silent_server: SilentServer,
) -> None:
    # No conftest defines it: the pytest11 entry point does.
    assert type(healthkit_silent_server) is SilentServer
    with socket.create_connection(
        (healthkit_silent_server.host, healthkit_silent_server.port)
    ) as sock:
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # it never answers


# -- the suite itself fails broken strategies ------------------------------------------

BROKEN_STRATEGIES = """
import asyncio
import socket
import subprocess

import attrs
import pytest
from healthkit import CheckResult, Secret, Status, StrategyRegistry, hookimpl
from healthkit.testing import BadConfig, SilentServer, StrategyConformance

KEEP = []  # what the leaky strategies leak, kept alive so only the suite notices


@pytest.fixture(autouse=True, scope="module")
def _clean_up_the_leaks():
    yield
    for thing in KEEP:
        if isinstance(thing, subprocess.Popen):
            thing.kill()
            thing.wait()
        elif isinstance(thing, socket.socket):
            thing.close()


@attrs.frozen(kw_only=True)
class Config:
    token: Secret


@attrs.frozen(kw_only=True)
class TimedConfig:
    token: Secret
    timeout: float = 1.0
    hang: bool = False


@attrs.define(kw_only=True)
class MutableConfig:
    token: Secret


class Base:
    def __init__(self, config, name):
        self.config = config
        self.name = name

    async def acheck(self, target):
        await asyncio.sleep(0)
        return CheckResult(status=Status.HEALTHY, strategy=self.name, target=target, detail="ok")

    async def aclose(self):
        return None


class Raises(Base):
    async def acheck(self, target):
        raise RuntimeError("kaboom")


class LeaksSocket(Base):
    async def acheck(self, target):
        KEEP.append(socket.socket())
        return await super().acheck(target)


class LeaksTask(Base):
    async def acheck(self, target):
        KEEP.append(asyncio.ensure_future(asyncio.sleep(60)))
        return await super().acheck(target)


class LeaksProcess(Base):
    async def acheck(self, target):
        KEEP.append(subprocess.Popen(["sleep", "60"]))
        return await super().acheck(target)


class ShowsSecret(Base):
    def __repr__(self):
        return f"<ShowsSecret {self.config.token.get_secret_value()}>"


class IgnoresCancel(Base):
    async def acheck(self, target):
        if self.config.hang:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(0.8)  # a slow, stubborn cleanup
        return await super().acheck(target)


class IgnoresOwnTimeout(Base):
    async def acheck(self, target):
        if self.config.hang:
            await asyncio.sleep(60)
        return await super().acheck(target)


BEHAVIOURS = {
    "good": (Config, Base),
    "raises": (Config, Raises),
    "leaks_socket": (Config, LeaksSocket),
    "leaks_task": (Config, LeaksTask),
    "leaks_process": (Config, LeaksProcess),
    "shows_secret": (Config, ShowsSecret),
    "ignores_cancel": (TimedConfig, IgnoresCancel),
    "ignores_own_timeout": (TimedConfig, IgnoresOwnTimeout),
    "mutable": (MutableConfig, Base),
}


class Plugin:
    __name__ = "broken-strategies"

    @hookimpl
    def healthkit_register_strategies(self, registrar):
        for name, (config, cls) in BEHAVIOURS.items():
            registrar.add(name, config=config, factory=lambda c, ctx, cls=cls, n=name: cls(c, n))


class Common(StrategyConformance):
    deadline_slack = 0.5
    release_timeout = 0.5
    hang_limit = 1.0

    @pytest.fixture
    def registry(self):
        return StrategyRegistry(plugins=[Plugin()], entry_points=False, disabled=())

    @pytest.fixture
    def valid_config(self):
        return {"token": "very-secret-token"}

    @pytest.fixture
    def bad_configs(self):
        return [BadConfig(changes={"token": 5}, path="token")]

    @pytest.fixture
    def secrets(self):
        return ["very-secret-token"]


class Hangs(Common):
    @pytest.fixture
    def unresponsive_config(self):
        return {"token": "very-secret-token", "hang": True}


""" + "".join(
    f"class Test_{name}({'Hangs' if name.startswith('ignores') else 'Common'}):\n"
    f"    strategy = {name!r}\n\n\n"
    for name in (
        "good",
        "raises",
        "leaks_socket",
        "leaks_task",
        "leaks_process",
        "shows_secret",
        "ignores_cancel",
        "ignores_own_timeout",
        "mutable",
    )
)


def test_the_suite_fails_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "test_broken.py").write_text(BROKEN_STRATEGIES)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    root = ElementTree.parse(report).getroot()
    failed: dict[str, set[str]] = {}
    for case in root.iter("testcase"):
        strategy = case.get("classname", "").rsplit("Test_", 1)[-1]
        failed.setdefault(strategy, set())
        if case.find("failure") is not None or case.find("error") is not None:
            failed[strategy].add(case.get("name", ""))
    # Each broken behaviour fails exactly the tests about it; the good one fails none.
    assert failed == {
        "good": set(),
        "raises": {"test_check_always_returns_a_result"},
        "leaks_socket": {"test_close_releases_every_resource"},
        "leaks_task": {"test_close_releases_every_resource"},
        "leaks_process": {"test_close_releases_every_resource"},
        "shows_secret": {"test_secrets_never_appear"},
        # It ignores its own timeout, and returns a result after it was cancelled.
        "ignores_cancel": {"test_timeout_is_honoured", "test_check_obeys_cancellation"},
        "ignores_own_timeout": {"test_timeout_is_honoured"},
        # Unhashable: the resolver cannot even hold it.
        "mutable": {
            "test_valid_config_loads_into_a_frozen_record",
            "test_equal_configs_are_equal_and_hashable",
            "test_check_always_returns_a_result",
            "test_timeout_is_honoured",
            "test_close_releases_every_resource",
            "test_secrets_never_appear",
            "test_check_does_not_block_the_event_loop",
            "test_check_obeys_cancellation",
            "test_aclose_returns_promptly_without_raising",
            "test_odd_values_give_config_errors_not_crashes",
        },
    }
