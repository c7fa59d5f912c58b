"""What one ``http`` check leaves in memory: a monitor holds every model's last result.

Strings equal across results are one object, and a check's result holds no more
than its own evidence (issue 12, memory per model).
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from healthkit import CheckResult, Status, Target
from healthkit.strategies import http as http_strategy
from healthkit.strategies.http import HttpStrategy
from healthkit.testing import OipServer

Make = Callable[..., HttpStrategy]

#: The http strategy's source files.
_HTTP = str(Path(http_strategy.__file__).parent)


@pytest.fixture
def make(make_http: Callable[..., HttpStrategy]) -> Make:
    """``make_http`` (tests/conftest.py) under this file's name for it."""
    return make_http


async def test_status_text_is_one_string_for_all_results(make: Make, oip_server: OipServer) -> None:
    strategy = make(base_url=oip_server.url, protocol="v2")
    first = await strategy.acheck(Target(model="alpha"))
    second = await strategy.acheck(Target(model="alpha"))
    server = await strategy.acheck(Target())
    assert first.status is second.status is Status.HEALTHY
    assert first.request is not None and second.request is not None
    assert server.request is not None
    assert first.request.status == "HTTP 200"
    assert first.request.status is second.request.status is server.request.status
    # The evidence stays per check.
    assert first.checked_at is not second.checked_at
    assert first.request.to_dict() == {
        "method": "GET",
        "url": f"{oip_server.url}/v2/models/alpha/ready",
        "status": "HTTP 200",
    }


async def test_generic_detail_is_the_shared_status_text(make: Make, oip_server: OipServer) -> None:
    strategy = make(base_url=oip_server.url, protocol="generic", path="/v2/health/ready")
    first = await strategy.acheck(Target(model="alpha"))
    second = await strategy.acheck(Target(model="alpha"))
    assert first.detail == "HTTP 200"
    assert first.detail is second.detail
    assert first.request is not None and second.request is not None
    assert first.detail is first.request.status is second.request.status


async def test_a_held_result_costs_only_its_own_objects(make: Make, oip_server: OipServer) -> None:
    """Live bytes that healthkit's code allocated per result a caller keeps.

    One result of a v2 model check is its CheckResult, its ``checked_at``, its
    RequestInfo and that request's URL; the status text and the detail are shared.
    """
    strategy = make(base_url=oip_server.url, protocol="v2")
    target = Target(model="alpha")
    kept: list[CheckResult] = [await strategy.acheck(target) for _ in range(20)]  # warm up
    count = 150
    gc.collect()
    tracemalloc.start(16)
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(count):
            kept.append(await strategy.acheck(target))
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # What the strategy allocated (its frame on the stack), not the test server's thread,
    # and not what httpx keeps of its exchanges (counted apart: not a result's).
    only = [
        tracemalloc.Filter(True, f"{_HTTP}/*", all_frames=True),
        tracemalloc.Filter(False, "*/httpx/*", all_frames=True),
    ]
    grown = sum(
        stat.size_diff
        for stat in after.filter_traces(only).compare_to(before.filter_traces(only), "filename")
    )
    assert all(r.status is Status.HEALTHY for r in kept)
    per_result = grown / count
    # ~320 now (CheckResult 112, URL ~93, RequestInfo 64, checked_at 48); ~378 when each
    # result had its own "HTTP 200" (and copies): the bound leaves ~30 bytes of headroom.
    assert per_result < 352, f"{per_result:.0f} bytes per held result"
