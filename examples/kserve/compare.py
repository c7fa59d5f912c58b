"""Measure transformer readiness under predictor failures: KServe's own check vs healthkit.

Starts real processes on loopback (free ports): ``predictor.py`` and
``transformer.py``, once per mode, and prints a Markdown table::

    python examples/kserve/compare.py                 # every mode
    python examples/kserve/compare.py --modes healthkit

Modes:

* ``kserve-rest``: ``--enable_predictor_health_check --predictor_protocol v2``
* ``kserve-grpc``: ``--enable_predictor_health_check --predictor_protocol grpc-v2``
* ``healthkit``: ``--healthkit_config healthkit.toml`` (this folder's config)

Scenarios, in order, on one predictor/transformer pair per mode: all up; one
model (``iris``) not ready on the predictor; a burst of concurrent readiness
requests; the predictor hung (``SIGSTOP``); the predictor killed (``SIGKILL``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx

HERE = Path(__file__).resolve().parent
MODELS = ["iris", "digits", "echo", "ensemble"]
#: No client waits longer than this for one readiness answer.
PATIENCE = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGCONT (it may be stopped), SIGTERM, then SIGKILL: never leave one behind."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Pair:
    """A predictor and a transformer, started in one mode."""

    def __init__(self, mode: str, logs: Path) -> None:
        self.mode = mode
        self.ports = {k: free_port() for k in ("p_http", "p_grpc", "t_http", "t_grpc")}
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def predictor(self) -> subprocess.Popen[bytes]:
        return self.procs[0]

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.logs / f"{self.mode}-{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / f"{name}.py"), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        log.close()

    def start(self) -> None:
        p = self.ports
        env = {
            **os.environ,
            "PREDICTOR_HTTP": f"127.0.0.1:{p['p_http']}",
            "PREDICTOR_GRPC": f"127.0.0.1:{p['p_grpc']}",
        }
        self._spawn(
            "predictor",
            [
                "--http_port",
                str(p["p_http"]),
                "--grpc_port",
                str(p["p_grpc"]),
                "--models",
                "iris,digits,ensemble",
            ],
            env,
        )
        args = [
            "--http_port",
            str(p["t_http"]),
            "--grpc_port",
            str(p["t_grpc"]),
            "--models",
            "iris,digits,ensemble",
            "--local_models",
            "echo",
        ]
        if self.mode == "kserve-rest":
            args += [
                "--predictor_host",
                env["PREDICTOR_HTTP"],
                "--predictor_protocol",
                "v2",
                "--enable_predictor_health_check",
            ]
        elif self.mode == "kserve-grpc":
            args += [
                "--predictor_host",
                env["PREDICTOR_GRPC"],
                "--predictor_protocol",
                "grpc-v2",
                "--enable_predictor_health_check",
            ]
        else:
            args += [
                "--predictor_host",
                env["PREDICTOR_HTTP"],
                "--predictor_protocol",
                "v1",
                "--healthkit_config",
                str(HERE / "healthkit.toml"),
            ]
        self._spawn("transformer", args, env)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


class Probe:
    """Readiness questions to the transformer (REST and gRPC) and counts from the predictor."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.http = httpx.AsyncClient(
            timeout=PATIENCE, limits=httpx.Limits(max_connections=1000), trust_env=False
        )
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{pair.ports['t_grpc']}")
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

        self.pb = pb
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.channel.close()

    def url(self, path: str, *, predictor: bool = False) -> str:
        port = self.pair.ports["p_http" if predictor else "t_http"]
        return f"http://127.0.0.1:{port}{path}"

    async def rest(self, path: str) -> tuple[str, float]:
        """``("503", seconds)``, or ``("reset", s)`` / ``("no answer", s)`` for a failed request."""
        start = time.perf_counter()
        try:
            response = await self.http.get(self.url(path))
            outcome = str(response.status_code)
        except httpx.TimeoutException:
            outcome = "no answer"
        except (httpx.RemoteProtocolError, httpx.ReadError):
            outcome = "reset"
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        return outcome, time.perf_counter() - start

    async def grpc_ready(self, model: str | None) -> tuple[str, float]:
        start = time.perf_counter()
        try:
            if model is None:
                reply = await self.stub.ServerReady(self.pb.ServerReadyRequest(), timeout=PATIENCE)
            else:
                reply = await self.stub.ModelReady(
                    self.pb.ModelReadyRequest(name=model), timeout=PATIENCE
                )
            outcome = "ready" if reply.ready else "not ready"
        except grpc.aio.AioRpcError as exc:
            outcome = exc.code().name
        return outcome, time.perf_counter() - start

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get(self.url("/demo/stats", predictor=True))
        return dict(response.json())

    async def steer(self, model: str, **body: Any) -> None:
        await self.http.post(self.url(f"/demo/models/{model}", predictor=True), json=body)

    async def wait_up(self, deadline: float = 60.0) -> None:
        end = time.monotonic() + deadline
        for proc in self.pair.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.pair.mode}: a process exited ({proc.returncode})")
        while time.monotonic() < end:
            with contextlib.suppress(httpx.HTTPError):
                await self.stats()
                code, _ = await self.rest("/v2/models/iris/ready")
                if code == "200":
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.pair.mode}: not ready within {deadline} s")

    async def until(self, path: str, code: str, limit: float = 20.0) -> float | None:
        """Seconds until ``path`` answers ``code`` (polling), or None."""
        start = time.perf_counter()
        while time.perf_counter() - start < limit:
            outcome, _ = await self.rest(path)
            if outcome == code:
                return time.perf_counter() - start
            await asyncio.sleep(0.05)
        return None

    async def until_all(self, paths: list[str], code: str, limit: float) -> dict[str, str]:
        """For each path (polled concurrently): seconds until it answers ``code``."""
        found = await asyncio.gather(*(self.until(p, code, limit) for p in paths))
        return {
            f"time to {code}: {p}": "never" if t is None else f"{t:.2f} s"
            for p, t in zip(paths, found, strict=True)
        }


@contextlib.asynccontextmanager
async def running(mode: str, logs: Path) -> AsyncIterator[Probe]:
    pair = Pair(mode, logs)
    try:
        pair.start()
        probe = Probe(pair)
        try:
            await probe.wait_up()
            yield probe
        finally:
            await probe.aclose()
    finally:
        pair.stop()


def fmt(outcome: tuple[str, float]) -> str:
    code, seconds = outcome
    return f"{code} ({seconds * 1000:.0f} ms)" if seconds < 1 else f"{code} ({seconds:.1f} s)"


async def snapshot(probe: Probe) -> dict[str, str]:
    """Every readiness answer of the transformer, asked concurrently."""
    paths = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in MODELS), "/v1/models/iris"]
    rest = await asyncio.gather(*(probe.rest(p) for p in paths))
    grpc_models: list[str | None] = [None, "iris", "digits", "echo"]
    grpc_outcomes = await asyncio.gather(*(probe.grpc_ready(m) for m in grpc_models))
    row = {p: fmt(o) for p, o in zip(paths, rest, strict=True)}
    for m, o in zip(grpc_models, grpc_outcomes, strict=True):
        row["gRPC ServerReady" if m is None else f"gRPC ModelReady({m})"] = fmt(o)
    return row


def upstream(stats: dict[str, Any]) -> Counter[str]:
    """Readiness requests that reached the predictor, per model, REST and gRPC together."""
    total: Counter[str] = Counter()
    for counts in stats["health_requests"].values():
        total.update(counts)
    return total


async def raw_burst(port: int, path: str, n: int) -> tuple[list[str], float]:
    """``n`` requests that reach the server together: every connection is opened
    first, then every request is written at once (an HTTP client's pool would
    spread them out). Returns each outcome and the seconds from first write to
    last answer."""
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(n)))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        try:
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.read(), PATIENCE)
            return head.split(b" ", 2)[1].decode() if head else "reset"
        except asyncio.TimeoutError:
            return "no answer"
        except ConnectionError:
            return "reset"
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(r, w) for r, w in conns))
    return list(outcomes), time.perf_counter() - start


async def burst(probe: Probe, n: int) -> dict[str, str]:
    before = upstream(await probe.stats())
    outcomes, elapsed = await raw_burst(probe.pair.ports["t_http"], "/v2/models/iris/ready", n)
    after = upstream(await probe.stats())
    delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    codes = Counter(outcomes)
    return {
        "answers": ", ".join(f"{c}x{k}" for k, c in sorted(codes.items())),
        "burst seconds": f"{elapsed:.2f}",
        "requests reaching the predictor": str(sum(delta.values())) + f" {delta}",
    }


async def measure(mode: str, n: int, logs: Path) -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    async with running(mode, logs) as probe:
        table["all up"] = await snapshot(probe)

        await probe.steer("iris", ready=False)
        t = await probe.until("/v2/models/iris/ready", "503")
        row = await snapshot(probe)
        row["time to 503 (iris)"] = "never" if t is None else f"{t:.2f} s"
        table["iris not ready on the predictor"] = row
        await probe.steer("iris", ready=True)
        await probe.until("/v2/models/iris/ready", "200")

        table[f"burst of {n} GET /v2/models/iris/ready"] = await burst(probe, n)

        watched = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in MODELS)]
        pred = probe.pair.predictor
        os.kill(pred.pid, signal.SIGSTOP)
        try:
            row = {"/v2/health/ready (first answer)": fmt(await probe.rest("/v2/health/ready"))}
            row.update(await probe.until_all(watched, "503", limit=PATIENCE))
            row.update(await snapshot(probe))
            table["predictor hung (SIGSTOP)"] = row
        finally:
            os.kill(pred.pid, signal.SIGCONT)
        for model in ("iris", "digits", "ensemble"):
            await probe.until(f"/v2/models/{model}/ready", "200")

        pred.kill()
        pred.wait(timeout=5)
        row = {"/v2/health/ready (first answer)": fmt(await probe.rest("/v2/health/ready"))}
        row.update(await probe.until_all(watched, "503", limit=PATIENCE))
        row.update(await snapshot(probe))
        table["predictor killed (SIGKILL)"] = row
    return table


def render(results: dict[str, dict[str, dict[str, str]]]) -> str:
    modes = list(results)
    lines = []
    scenarios = list(next(iter(results.values())))
    for scenario in scenarios:
        lines.append(f"\n### {scenario}\n")
        lines.append("| | " + " | ".join(modes) + " |")
        lines.append("|---|" + "---|" * len(modes))
        keys: list[str] = []
        for mode in modes:
            for key in results[mode].get(scenario, {}):
                if key not in keys:
                    keys.append(key)
        for key in keys:
            cells = [results[m].get(scenario, {}).get(key, "") for m in modes]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="kserve-rest,kserve-grpc,healthkit")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--logs", default=None, help="folder for the processes' logs")
    args, _ = parser.parse_known_args()
    logs = (
        Path(args.logs)
        if args.logs
        else Path(os.environ.get("TMPDIR", "/tmp")) / "healthkit-kserve-compare"
    )
    logs.mkdir(parents=True, exist_ok=True)
    results = {}
    for mode in args.modes.split(","):
        print(f"measuring {mode} ...", file=sys.stderr)
        results[mode] = asyncio.run(measure(mode, args.burst, logs))
    print(render(results))


if __name__ == "__main__":
    main()
