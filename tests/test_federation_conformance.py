"""The ``healthkit`` (federation) strategy passes the conformance suite plugins run.

Its upstream is a real healthkit app under uvicorn, serving ``/v1/status`` for the
suite's model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from _monitor_support import UvicornThread
from healthkit import HealthKit
from healthkit.asgi import create_app
from healthkit.testing import BadConfig, SilentServer, StrategyConformance

#: The model the conformance suite checks (its default target).
MODEL = "conformance"
HEADER_SECRET = "Bearer federation-header-secret"
URL_SECRET = "federation-url-password"


@pytest.fixture(scope="module")
def sidecar() -> Iterator[UvicornThread]:
    config = {
        "defaults": {"health_check": {"strategy": "noop", "period": 60.0, "jitter": 0.0}},
        "models": {MODEL: {}},
    }
    # The app's lifespan (in uvicorn's thread) starts its monitor and closes it.
    with UvicornThread(create_app(HealthKit.from_config(config))) as server:
        yield server


class TestFederationConformance(StrategyConformance):
    strategy = "healthkit"

    @pytest.fixture
    def valid_config(self, sidecar: UvicornThread) -> Mapping[str, Any]:
        return {
            "base_url": f"http://user:{URL_SECRET}@127.0.0.1:{sidecar.port}",
            "timeout": 2.0,
            "headers": {"Authorization": HEADER_SECRET},
        }

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        return [
            BadConfig(changes={"timeout": 0}, path="timeout", message="must be > 0"),
            BadConfig(changes={"max_age": -1}, path="max_age", message="must be > 0"),
            BadConfig(changes={"path": "v1/status"}, path="path", message="starting with '/'"),
            BadConfig(remove=("base_url",), path="base_url", message="missing required key"),
            BadConfig(changes={"protocol": "v2"}, path="protocol", message="unknown key"),
        ]

    @pytest.fixture
    def failing_config(self, healthkit_refused_url: str) -> Mapping[str, Any]:
        return {"base_url": healthkit_refused_url, "headers": {"x-token": HEADER_SECRET}}

    @pytest.fixture
    def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
        return {"base_url": healthkit_silent_server.url, "headers": {"x-token": HEADER_SECRET}}

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return [HEADER_SECRET, URL_SECRET]
