"""Benchmarks under faults: readiness answers under a hung predictor, and outage detection time.

Imported by ``benchmarks/run.py`` (section ``faults``); it runs its own helper
process, a predictor whose behaviour switches on command:

    python benchmarks/run.py _switch        # prints its URL; reads "hung", "healthy", "count"

* hung      ``healthkit serve`` over 100 models; once the predictor hangs and the
            models are known to be not ready, bursts of readiness requests vs
            ``/livez`` on the same server: readiness p99 / livez p99 (target <= 2x).
* outage    a :class:`healthkit.Monitor` over 1,000 models behind one predictor with
            the default in-flight budget; the predictor hangs; seconds until every
            model reads not ready, vs ``failure_threshold x (timeout + period)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol


class Helper(Protocol):
    """A helper process of ``benchmarks/run.py`` (its ``Child``): banner line, then commands."""

    banner: str

    def ask(self, command: str) -> str: ...


#: ``child("_switch")`` in ``benchmarks/run.py``: starts this module's switchable predictor.
ChildFactory = Callable[[str], contextlib.AbstractContextManager[Helper]]


def switch_main() -> None:
    """HTTP/1.1 with keep-alive: ``200 {"ready": true}`` for every GET, or never an answer."""
    import threading

    state = {"count": 0}
    loop = asyncio.new_event_loop()
    healthy = asyncio.Event()
    healthy.set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                state["count"] += 1
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length:
                    await reader.readexactly(length)
                # Hung: hold the request unanswered, as a wedged predictor does.
                await healthy.wait()
                body = b'{"ready": true}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def start() -> str:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    url = loop.run_until_complete(start())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    print(url, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command in ("hung", "healthy"):
            loop.call_soon_threadsafe(healthy.set if command == "healthy" else healthy.clear)
            print(command, flush=True)
        elif command == "count":
            print(state["count"], flush=True)


# -- hung: readiness answers under a hung predictor -----------------------------------------


def run_hung(
    quick: bool,
    *,
    healthkit_serve: Callable[[dict[str, Any]], contextlib.AbstractContextManager[str]],
    burst: Callable[..., Any],
    pct: Callable[[list[float], float], float],
    ms: Callable[[float], str],
    table: Callable[..., None],
    child: ChildFactory,
) -> dict[str, Any]:
    models, rounds, n = 100, 4 if quick else 10, 200
    with child("_switch") as pred:
        config = {
            "defaults": {
                "health_check": {
                    "strategy": "http",
                    "base_url": pred.banner,
                    "period": 2.0,
                    "cache_ttl": 0.5,
                    "timeout": 1.0,
                    "failure_threshold": 1,
                }
            },
            "models": {f"model-{i}": {} for i in range(models)},
        }
        path = "/v2/models/model-0/ready"
        with healthkit_serve(config) as url:
            _wait_status(burst, url, path, 200)
            pred.ask("hung")
            _wait_status(burst, url, path, 503)
            lat: dict[str, list[float]] = {"ready": [], "livez": []}
            statuses: dict[str, dict[int, int]] = {"ready": {}, "livez": {}}
            for i in range(rounds):
                # Spread over several cache periods: every expiry must be answered from memory.
                order = [("ready", path), ("livez", "/livez")]
                for key, p in order if i % 2 == 0 else order[::-1]:
                    _, latencies, codes = asyncio.run(burst(url, p, n))
                    lat[key] += latencies
                    for code, count in codes.items():
                        statuses[key][code] = statuses[key].get(code, 0) + count
                time.sleep(0.3)
            pred.ask("healthy")
    p99 = {key: pct(values, 0.99) for key, values in lat.items()}
    ratio = p99["ready"] / max(p99["livez"], 1e-9)
    table(
        f"hung: {rounds} bursts of {n} GETs while the predictor hangs ({models} models)",
        ["path", "p50", "p99", "max", "statuses"],
        [
            [
                label,
                ms(pct(lat[key], 0.5)),
                ms(p99[key]),
                ms(max(lat[key])),
                ",".join(f"{k}x{v}" for k, v in sorted(statuses[key].items())),
            ]
            for key, label in (("ready", path), ("livez", "/livez"))
        ],
    )
    print(f"  readiness p99 / livez p99 under a hung predictor = {ratio:.2f}x")
    return {"p99_ready": p99["ready"], "p99_livez": p99["livez"], "ratio": ratio}


def _wait_status(burst: Callable[..., Any], url: str, path: str, want: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, _, codes = asyncio.run(burst(url, path, 1))
        if want in codes:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url}{path} never answered {want}")


# -- outage: time to detect a full hang of 1,000 models --------------------------------------


def run_outage(quick: bool, *, table: Callable[..., None], child: ChildFactory) -> dict[str, Any]:
    from healthkit import HealthKit, Monitor, MonitorSettings

    models = 1000
    defaults = MonitorSettings()
    period = 2.0 if quick else defaults.period
    timeout, threshold = defaults.timeout, defaults.failure_threshold
    bound = threshold * (timeout + period)

    async def main(url: str, pred: Helper) -> dict[str, Any]:
        raw = {
            "defaults": {"health_check": {"strategy": "http", "base_url": url, "period": period}},
            "models": {f"model-{i}": {} for i in range(models)},
        }
        monitor = Monitor(HealthKit.from_config(raw))
        budget = monitor.max_in_flight
        async with monitor:
            await _until(lambda: monitor.server_ready(), 4 * period + 30)
            pred.ask("hung")
            start = time.perf_counter()
            await _until(
                lambda: not any(monitor.is_ready(m) for m in monitor.models), 4 * bound + 30
            )
            detected = time.perf_counter() - start
            pred.ask("healthy")
            start = time.perf_counter()
            await _until(lambda: monitor.server_ready(), 4 * bound + 30)
            recovered = time.perf_counter() - start
        return {"detected": detected, "recovered": recovered, "budget": budget}

    with child("_switch") as pred:
        result = asyncio.run(main(pred.banner, pred))
    result.update(bound=bound, period=period, models=models)
    table(
        f"outage: {models:,} models behind one predictor that hangs (default budget)",
        ["max_in_flight", "period", "all not ready after", "bound", "all ready again after"],
        [
            [
                result["budget"],
                f"{period:g} s",
                f"{result['detected']:.1f} s",
                f"{bound:g} s",
                f"{result['recovered']:.1f} s",
            ]
        ],
    )
    return result


async def _until(condition: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("condition not reached in time")
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    sys.exit("run: python benchmarks/run.py hung outage")
