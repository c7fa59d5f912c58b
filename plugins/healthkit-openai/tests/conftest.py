"""Fixtures of the ``openai`` strategy's tests: a real OpenAI-compatible server on loopback.

A refused URL comes from healthkit's pytest plugin (``healthkit_refused_url``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai_fake_server import OpenAIServer


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """Lists ``alpha`` and ``beta``; no API key required."""
    server = OpenAIServer(["alpha", "beta"]).start()
    try:
        yield server
    finally:
        server.stop()
