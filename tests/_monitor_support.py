"""Shared helpers of the monitor, ASGI and serve tests: real servers, a scripted plugin."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

import healthkit
from healthkit import CheckResult, HealthKit, Monitor, Status, StrategyRegistry, Target, load_config

Behaviour = Callable[[Target], Awaitable[Any]]


async def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.01
) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took. Fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
    return time.monotonic() - start


_PREDICTOR_MAIN = """
import sys, threading
from healthkit.testing import OipServer
server = OipServer(sys.argv[1:]).start()
print(server.url, flush=True)
threading.Event().wait()
"""


class PredictorProcess:
    """An OIP predictor in its own process, so that killing it closes every connection."""

    def __init__(self, *models: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PREDICTOR_MAIN, *models],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.kill()
            raise RuntimeError("predictor process did not start")

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> PredictorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


class UvicornThread:
    """Serve an ASGI app with a real uvicorn server on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws="none"
            )
        )
        self._thread = threading.Thread(target=self._run, name="uvicorn", daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


async def raw_get_many(
    url: str, path: str, count: int, *, concurrency: int
) -> list[tuple[int, bytes]]:
    """GET ``path`` ``count`` times over ``concurrency`` keep-alive connections, all at once.

    A bare asyncio HTTP/1.1 client: httpx's pool bookkeeping with a thousand
    queued requests costs seconds, which would measure the client, not the server.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    remaining = [count]
    out: list[tuple[int, bytes]] = []
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                out.append((status, await reader.readexactly(length)))
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return out


# -- a scripted strategy plugin -------------------------------------------------------


@attrs.frozen(kw_only=True)
class ScriptedConfig:
    #: Which behaviour of the plugin this config runs.
    script: str
    timeout: float = 1.0


class ScriptedPlugin:
    """Registers ``scripted`` (and ``scripted_batch``): each check runs a test-owned coroutine.

    ``calls`` counts checks per target, ``batch_calls`` records each batch's targets,
    and ``concurrent``/``max_concurrent`` track how many checks run at once.
    """

    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.calls: dict[Target, int] = {}
        self.batch_calls: list[tuple[Target, ...]] = []
        self.concurrent = 0
        self.max_concurrent = 0
        self.closed = 0

    @healthkit.hookimpl
    def healthkit_register_strategies(self, registrar: Any) -> None:
        registrar.add("scripted", config=ScriptedConfig, factory=self._make)
        registrar.add("scripted_batch", config=ScriptedConfig, factory=self._make_batch)

    def _make(self, config: ScriptedConfig, context: Any) -> _Scripted:
        return _Scripted(self, config)

    def _make_batch(self, config: ScriptedConfig, context: Any) -> _ScriptedBatch:
        return _ScriptedBatch(self, config)

    def registry(self) -> StrategyRegistry:
        return StrategyRegistry(plugins=[self], entry_points=False)

    def monitor(
        self, models: Iterable[str], *, monitor: Mapping[str, Any] | None = None, **check: Any
    ) -> Monitor:
        """A monitor of ``models``, each checked by ``scripted`` (script ``"s"`` unless
        ``check`` names another) with the ``health_check`` options ``check``;
        ``monitor``: keyword arguments of :class:`Monitor`."""
        registry = self.registry()
        raw = {
            "defaults": {"health_check": {"strategy": "scripted", "script": "s", **check}},
            "models": {name: {} for name in models},
        }
        kit = HealthKit(load_config(raw, registry=registry), registry=registry)
        return Monitor(kit, **(monitor or {}))


class _Scripted:
    def __init__(self, plugin: ScriptedPlugin, config: ScriptedConfig) -> None:
        self.plugin = plugin
        self.config = config

    async def acheck(self, target: Target) -> Any:
        p = self.plugin
        p.calls[target] = p.calls.get(target, 0) + 1
        p.concurrent += 1
        p.max_concurrent = max(p.max_concurrent, p.concurrent)
        try:
            return await p.behaviours[self.config.script](target)
        finally:
            p.concurrent -= 1

    async def aclose(self) -> None:
        self.plugin.closed += 1


class _ScriptedBatch(_Scripted):
    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, Any]:
        self.plugin.batch_calls.append(tuple(targets))
        return {t: await self.plugin.behaviours[self.config.script](t) for t in targets}


def healthy(target: Target) -> CheckResult:
    return CheckResult(status=Status.HEALTHY, strategy="scripted", target=target, detail="ok")


def unhealthy(target: Target, detail: str = "down") -> CheckResult:
    return CheckResult(status=Status.UNHEALTHY, strategy="scripted", target=target, detail=detail)


def http_config(url: str, models: Sequence[str], **health_check: Any) -> dict[str, Any]:
    """``models`` behind one OIP v2 server; monitor settings go in ``health_check``."""
    return {
        "defaults": {"health_check": {"strategy": "http", "base_url": url, **health_check}},
        "models": {name: {} for name in models},
    }
