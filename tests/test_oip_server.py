"""The built-in loopback OIP server behaves like a real predictor process when stopped."""

from __future__ import annotations

import httpx
import pytest

from healthkit.testing import OipServer


def test_stop_cuts_open_keep_alive_connections() -> None:
    """A stopped server must not answer on pooled connections: a killed process would not."""
    server = OipServer({"alpha": "ready"}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=2.0) as client:
            assert client.get("/v2/models/alpha/ready").status_code == 200
            server.stop()
            with pytest.raises(httpx.TransportError):
                client.get("/v2/models/alpha/ready")
    finally:
        server.stop()


def test_it_counts_requests_and_flips_states() -> None:
    with (
        OipServer({"alpha": "ready", "flaky": "flaky"}) as server,
        httpx.Client(base_url=server.url, timeout=2.0) as client,
    ):
        assert client.get("/v1/models/alpha").json() == {"name": "alpha", "ready": True}
        server.set_state("alpha", "not_ready")
        assert client.get("/v2/models/alpha/ready").status_code == 503
        flips = [client.get("/v2/models/flaky/ready").status_code for _ in range(4)]
        assert flips == [200, 503, 200, 503]
        assert server.requests["/v2/models/flaky/ready"] == 4
        assert server.total_requests == 6
