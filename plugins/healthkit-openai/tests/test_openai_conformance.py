"""``openai`` passes healthkit's conformance suite, installed through its entry point."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from openai_fake_server import OpenAIServer

from healthkit.testing import BadConfig, SilentServer, StrategyConformance

KEY_ENV = "HK_CONFORMANCE_OPENAI_KEY"
KEY = "sk-conformance-0123456789"


@pytest.fixture
def keyed_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    """Serves ``conformance``; requires the API key, which is set in the environment."""
    monkeypatch.setenv(KEY_ENV, KEY)
    server = OpenAIServer(["conformance", "other"], api_key=KEY).start()
    try:
        yield server
    finally:
        server.stop()


class TestOpenAIConformance(StrategyConformance):
    strategy = "openai"

    @pytest.fixture
    def valid_config(self, keyed_server: OpenAIServer) -> Mapping[str, Any]:
        return {"base_url": keyed_server.url, "api_key_env": KEY_ENV, "timeout": 2.0}

    @pytest.fixture
    def bad_configs(self, tmp_path: Path) -> Sequence[BadConfig]:
        pem = tmp_path / "ca.pem"
        pem.write_text("not used")
        return [
            BadConfig(
                changes={"endpoints": ["health", "chat"]}, path="endpoints", message="'chat'"
            ),
            BadConfig(changes={"endpoints": []}, path="endpoints", message="must not be empty"),
            BadConfig(
                changes={"health_path": "health"}, path="health_path", message="starting with '/'"
            ),
            BadConfig(
                changes={"api_key_env": "HK_SURELY_UNSET_VARIABLE"},
                path="api_key_env",
                message="is not set",
            ),
            BadConfig(
                changes={"api_key_env": "not-a-name"}, path="api_key_env", message="variable name"
            ),
            BadConfig(changes={"timeout": 0}, path="timeout", message="must be > 0"),
            BadConfig(changes={"base_url": "ws://example.org"}, path="base_url"),
            BadConfig(remove=("base_url",), path="base_url", message="missing required key"),
            BadConfig(changes={"verify": False, "ca_bundle": str(pem)}, path="ca_bundle"),
        ]

    @pytest.fixture
    def failing_config(self, healthkit_refused_url: str) -> Mapping[str, Any]:
        return {"base_url": healthkit_refused_url, "api_key_env": KEY_ENV}

    @pytest.fixture
    def unresponsive_config(self, healthkit_silent_server: SilentServer) -> Mapping[str, Any]:
        return {"base_url": healthkit_silent_server.url, "api_key_env": KEY_ENV}

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return [KEY]
