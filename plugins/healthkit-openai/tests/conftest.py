"""Fixtures of the ``openai`` strategy's tests: a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import socket
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


@pytest.fixture
def refused_url() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
