"""healthkit in real KServe processes: a predictor and a transformer on loopback.

``examples/kserve/predictor.py`` serves three models (REST and gRPC) and counts
every readiness request that reaches it, per protocol and model;
``examples/kserve/transformer.py`` serves those three plus a local one, with
``healthkit.kserve.install`` and the example config ``examples/kserve/healthkit.toml``
(one model over REST v2, one over gRPC v2, one not checked, one composite).
Both run once for the module, on free loopback ports; tests that break the
predictor (hang, kill) restore it in a ``finally``.

``kserve`` is never imported here (importing it parses ``sys.argv``): gRPC calls
use healthkit's own Open Inference Protocol messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from healthkit import StrategyRegistry, load_config
from healthkit._proto import grpc_predict_v2_pb2 as pb

pytestmark = pytest.mark.kserve

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kserve"
CONFIG = EXAMPLE / "healthkit.toml"
PREDICTED = ["iris", "digits", "ensemble"]
MODELS = [*PREDICTED, "echo"]
#: No readiness answer may take this long: KServe's own check waits up to the
#: 600 s inference timeout; healthkit's waits at most the 0.5 s health timeout.
HANG = 5.0
#: Generous upper bound for anything to happen (processes start, states settle).
SETTLE = 45.0
SERVICE = "/inference.GRPCInferenceService/"

if importlib.util.find_spec("kserve") is None:  # pragma: no cover - the test extra installs it
    if sys.version_info >= (3, 14):
        pytest.skip("kserve does not support Python >= 3.14", allow_module_level=True)
    raise RuntimeError("tests/test_kserve.py needs kserve: pip install -e '.[test]'")


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago (all bound at once)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class Proc:
    """One example script in a subprocess, its output in a log file."""

    def __init__(self, script: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, str(EXAMPLE / script), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> int:
        """SIGCONT (it may be stopped), SIGTERM, then SIGKILL; the exit code."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGCONT)
                self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return int(self.popen.returncode)


class Stack:
    """A predictor and a healthkit transformer, with clients for both."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.p_http, self.p_grpc, self.t_http, self.t_grpc = free_ports(4)
        self.env = {
            **os.environ,
            "PREDICTOR_HTTP": f"127.0.0.1:{self.p_http}",
            "PREDICTOR_GRPC": f"127.0.0.1:{self.p_grpc}",
        }
        self.http = httpx.Client(timeout=HANG, trust_env=False)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.t_grpc}")
        self.predictor: Proc | None = None
        self.transformer: Proc | None = None
        self.config = load_config(
            CONFIG, registry=StrategyRegistry()
        )  # the settings the bounds below are derived from

    def start_predictor(self) -> Proc:
        args = ["--http_port", str(self.p_http), "--grpc_port", str(self.p_grpc)]
        args += ["--models", ",".join(PREDICTED), "--configure_logging", "false"]
        self.predictor = Proc("predictor.py", args, self.env, self.logs / "predictor.log")
        return self.predictor

    def start_transformer(self) -> Proc:
        args = ["--http_port", str(self.t_http), "--grpc_port", str(self.t_grpc)]
        args += ["--predictor_host", f"127.0.0.1:{self.p_http}", "--predictor_protocol", "v1"]
        args += ["--models", ",".join(PREDICTED), "--local_models", "echo"]
        args += ["--healthkit_config", str(CONFIG), "--enable_latency_logging", "false"]
        self.transformer = Proc("transformer.py", args, self.env, self.logs / "transformer.log")
        return self.transformer

    def stop(self) -> None:
        for proc in (self.transformer, self.predictor):
            if proc is not None:
                proc.stop()
        self.channel.close()
        self.http.close()

    def diagnostics(self) -> str:
        parts = []
        for name, proc in (("predictor", self.predictor), ("transformer", self.transformer)):
            if proc is not None:
                parts.append(f"--- {name} (exit {proc.popen.poll()}) ---\n{proc.tail()}")
        return "\n".join(parts)

    # -- questions ---------------------------------------------------------------------

    def get(self, path: str) -> int:
        """The transformer's HTTP status for ``path``; a hang fails the test."""
        try:
            return self.http.get(f"http://127.0.0.1:{self.t_http}{path}").status_code
        except httpx.TimeoutException:
            pytest.fail(f"GET {path}: no answer within {HANG} s\n{self.diagnostics()}")

    def grpc_ready(self, model: str | None = None) -> bool:
        """gRPC ``ServerReady`` / ``ModelReady`` on the transformer; an error status fails."""
        if model is None:
            call = self.channel.unary_unary(
                SERVICE + "ServerReady",
                request_serializer=pb.ServerReadyRequest.SerializeToString,
                response_deserializer=pb.ServerReadyResponse.FromString,
            )
            return bool(call(pb.ServerReadyRequest(), timeout=HANG).ready)
        call = self.channel.unary_unary(
            SERVICE + "ModelReady",
            request_serializer=pb.ModelReadyRequest.SerializeToString,
            response_deserializer=pb.ModelReadyResponse.FromString,
        )
        return bool(call(pb.ModelReadyRequest(name=model), timeout=HANG).ready)

    def stats(self) -> dict[str, Any]:
        response = self.http.get(f"http://127.0.0.1:{self.p_http}/demo/stats")
        response.raise_for_status()
        return dict(response.json())

    def upstream(self) -> dict[str, dict[str, int]]:
        """Readiness requests that reached the predictor: protocol -> model -> count."""
        return {k: dict(v) for k, v in self.stats()["health_requests"].items()}

    def steer(self, model: str, **body: Any) -> None:
        url = f"http://127.0.0.1:{self.p_http}/demo/models/{model}"
        self.http.post(url, json=body).raise_for_status()

    def wait_for(self, path: str, status: int, *, limit: float = SETTLE) -> float:
        """Poll ``path`` until it answers ``status``; the seconds it took."""
        start = time.monotonic()
        seen: set[int] = set()
        while time.monotonic() - start < limit:
            for proc in (self.predictor, self.transformer):
                if proc is self.transformer and proc is not None and proc.popen.poll() is not None:
                    pytest.fail(f"the transformer exited\n{self.diagnostics()}")
            try:
                code = self.get(path)
            except httpx.TransportError:  # not listening yet
                time.sleep(0.05)
                continue
            seen.add(code)
            if code == status:
                return time.monotonic() - start
            time.sleep(0.05)
        pytest.fail(f"GET {path} never answered {status} (saw {seen})\n{self.diagnostics()}")

    def wait_predictor(self) -> None:
        start = time.monotonic()
        while time.monotonic() - start < SETTLE:
            assert self.predictor is not None
            if self.predictor.popen.poll() is not None:
                pytest.fail(f"the predictor exited\n{self.diagnostics()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get(f"http://127.0.0.1:{self.p_http}/demo/stats").is_success:
                    return
            time.sleep(0.05)
        pytest.fail(f"the predictor never became ready\n{self.diagnostics()}")

    def bound(self, model: str) -> float:
        """Worst case to notice a failure with readiness polled often: every check
        runs into the deadline, then waits out the cache, ``failure_threshold`` times."""
        mc = self.config.models.get(model)
        settings = mc.monitor if mc is not None else self.config.default_monitor
        return settings.failure_threshold * (settings.timeout + settings.cache_ttl) + 1.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("kserve"))
    try:
        s.start_predictor()
        s.start_transformer()
        s.wait_predictor()
        s.wait_for("/v2/health/ready", 200)
        yield s
    finally:
        s.stop()


@pytest.fixture
def healthy(stack: Stack) -> Iterator[Stack]:
    """The stack with every model up, before and after the test."""
    for model in MODELS:
        stack.wait_for(f"/v2/models/{model}/ready", 200)
    yield stack
    for model in PREDICTED:
        stack.steer(model, ready=True, health_delay=0)
    for model in MODELS:
        stack.wait_for(f"/v2/models/{model}/ready", 200)


def test_each_model_follows_its_own_strategy(healthy: Stack) -> None:
    s = healthy
    for model in MODELS:
        assert s.get(f"/v2/models/{model}/ready") == 200
        assert s.get(f"/v1/models/{model}") == 200
        assert s.grpc_ready(model) is True
    assert s.get("/v2/health/ready") == 200
    assert s.grpc_ready() is True

    up = s.upstream()
    rest, grpc_ = up.get("rest", {}), up.get("grpc", {})
    # iris: the default, REST v2 only.
    assert rest.get("iris", 0) > 0 and "iris" not in grpc_
    # digits: gRPC v2 only.
    assert grpc_.get("digits", 0) > 0 and "digits" not in rest
    # ensemble: a composite of both.
    assert rest.get("ensemble", 0) > 0 and grpc_.get("ensemble", 0) > 0
    # echo: noop, nothing reaches the predictor (which does not even serve it).
    assert "echo" not in rest and "echo" not in grpc_
    # healthkit never asks the predictor's server readiness: every check is per model.
    assert "<server>" not in rest and "<server>" not in grpc_


def test_a_model_not_ready_on_the_predictor_is_not_ready_alone(healthy: Stack) -> None:
    s = healthy
    s.steer("iris", ready=False)
    took = s.wait_for("/v2/models/iris/ready", 503, limit=s.bound("iris") + SETTLE)
    print(
        f"\niris not ready on the predictor -> 503 after {took:.2f} s "
        f"(bound {s.bound('iris'):.1f} s)"
    )
    assert s.get("/v1/models/iris") == 503
    assert s.grpc_ready("iris") is False
    for model in ("digits", "echo", "ensemble"):
        assert s.get(f"/v2/models/{model}/ready") == 200, model
        assert s.grpc_ready(model) is True, model
    # The Open Inference Protocol's server readiness: every model ready.
    assert s.get("/v2/health/ready") == 503
    assert s.grpc_ready() is False

    s.steer("iris", ready=True)
    s.wait_for("/v2/models/iris/ready", 200)
    s.wait_for("/v2/health/ready", 200)
    assert s.grpc_ready() is True


def test_a_hung_model_is_not_ready_within_its_timeout_and_inference_goes_on(
    healthy: Stack,
) -> None:
    s = healthy
    # The predictor's readiness answers for digits (gRPC) now take 60 s; its inference does not.
    s.steer("digits", health_delay=60)
    slowest = 0.0
    start = time.monotonic()
    while s.get("/v2/models/digits/ready") != 503:
        assert time.monotonic() - start < s.bound("digits") + SETTLE, s.diagnostics()
        t0 = time.monotonic()
        s.grpc_ready("digits")
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.05)
    took = time.monotonic() - start
    print(
        f"\ndigits hung on the predictor -> 503 after {took:.2f} s "
        f"(bound {s.bound('digits'):.1f} s); slowest readiness answer {slowest:.2f} s"
    )
    assert s.grpc_ready("digits") is False
    for model in ("iris", "echo", "ensemble"):
        assert s.get(f"/v2/models/{model}/ready") == 200, model

    # Inference of the hung model is untouched: it never waits on a health check.
    t0 = time.monotonic()
    reply = s.http.post(
        f"http://127.0.0.1:{s.t_http}/v1/models/digits:predict",
        json={"instances": [[1, 2], [3, 4]]},
    )
    print(
        f"inference of digits meanwhile: HTTP {reply.status_code} in {time.monotonic() - t0:.3f} s"
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": [6, 14]}  # doubled by the transformer, summed


async def burst_rest(port: int, paths: list[str], n: int) -> list[int]:
    """``n`` HTTP requests that reach the server together: every connection is opened
    first, then all requests are written at once (an HTTP client's pool would spread
    them out). The status of each."""
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(n)))

    async def one(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        try:
            path = paths[i % len(paths)]
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), 30)
            return int(reply.split(b" ", 2)[1])
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return list(await asyncio.gather(*(one(i, r, w) for i, (r, w) in enumerate(conns))))


async def test_a_burst_of_readiness_requests_costs_one_check_per_model_per_cache_period(
    healthy: Stack,
) -> None:
    s = healthy
    n = 1000
    paths = [
        *(f"/v2/models/{m}/ready" for m in MODELS),
        *(f"/v1/models/{m}" for m in MODELS),
        "/v2/health/ready",
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{s.t_grpc}") as channel:
        model_ready = channel.unary_unary(
            SERVICE + "ModelReady",
            request_serializer=pb.ModelReadyRequest.SerializeToString,
            response_deserializer=pb.ModelReadyResponse.FromString,
        )

        async def rpc(i: int) -> bool:
            request = pb.ModelReadyRequest(name=MODELS[i % len(MODELS)])
            return bool((await model_ready(request, timeout=30)).ready)

        await channel.channel_ready()
        before = s.upstream()
        start = time.perf_counter()
        codes, ready = await asyncio.gather(
            burst_rest(s.t_http, paths, n), asyncio.gather(*(rpc(i) for i in range(n)))
        )
        duration = time.perf_counter() - start
        after = s.upstream()

    assert set(codes) == {200}, sorted(set(codes))
    assert all(ready)
    print(f"\n{n} REST + {n} gRPC readiness requests at once, answered in {duration:.2f} s")
    for model in PREDICTED:
        mc = s.config.models.get(model)
        settings = mc.monitor if mc is not None else s.config.default_monitor
        # On demand: one check per cache period the burst touches; in the background: one
        # per period (background probes do not wait for the cache to expire).
        allowed = (math.floor(duration / settings.cache_ttl) + 1) + (
            math.floor(duration / settings.period) + 1
        )
        for protocol in ("rest", "grpc"):
            got = after.get(protocol, {}).get(model, 0) - before.get(protocol, {}).get(model, 0)
            print(f"  {model} over {protocol}: {got} predictor request(s) (allowed {allowed})")
            assert got <= allowed, (model, protocol, got, allowed)


def test_a_hung_predictor_gives_503_never_a_hang(healthy: Stack) -> None:
    s = healthy
    assert s.predictor is not None
    os.kill(s.predictor.pid, signal.SIGSTOP)
    try:
        for model in PREDICTED:
            took = s.wait_for(f"/v2/models/{model}/ready", 503, limit=s.bound(model) + SETTLE)
            print(
                f"\npredictor hung: {model} -> 503 after {took:.2f} s "
                f"(bound {s.bound(model):.1f} s)"
            )
            assert s.grpc_ready(model) is False
        assert s.get("/v2/health/ready") == 503
        assert s.grpc_ready() is False
        # The transformer's own model does not depend on the predictor.
        assert s.get("/v2/models/echo/ready") == 200
        assert s.grpc_ready("echo") is True
    finally:
        os.kill(s.predictor.pid, signal.SIGCONT)


def test_a_killed_predictor_gives_503_never_500_and_recovery_follows(healthy: Stack) -> None:
    s = healthy
    assert s.predictor is not None
    s.predictor.popen.kill()
    s.predictor.popen.wait(timeout=10)
    try:
        for model in PREDICTED:
            took = s.wait_for(f"/v2/models/{model}/ready", 503, limit=s.bound(model) + SETTLE)
            print(f"\npredictor killed: {model} -> 503 after {took:.2f} s")
            assert s.get(f"/v1/models/{model}") == 503
            assert s.grpc_ready(model) is False
        # KServe's own check answers 500 here (and a gRPC INTERNAL error).
        assert s.get("/v2/health/ready") == 503
        assert s.grpc_ready() is False
        assert s.get("/v2/models/echo/ready") == 200
    finally:
        s.start_predictor()  # on the same ports: the transformer's config still points there
        s.wait_predictor()
    took = s.wait_for("/v2/health/ready", 200)
    print(f"predictor back: ready again after {took:.2f} s")


def streak(s: Stack, proc: Proc, url: str, status: int, length: int) -> None:
    """Wait for ``length`` answers ``status`` in a row from ``url``, served by ``proc``.

    Requests land on any of the transformer's workers: a streak of answers covers all.
    """
    start, run = time.monotonic(), 0
    while run < length:
        assert proc.popen.poll() is None, proc.tail()
        assert time.monotonic() - start < SETTLE, proc.tail()
        try:
            code = s.http.get(url).status_code
        except httpx.TransportError:
            code = 0
        run = run + 1 if code == status else 0
        time.sleep(0.02)


def test_each_worker_process_runs_its_own_monitor(healthy: Stack, tmp_path: Path) -> None:
    """``--workers 2``: KServe pickles the data plane into spawned workers; each follows."""
    s = healthy
    port, grpc_port = free_ports(2)
    args = ["--http_port", str(port), "--grpc_port", str(grpc_port), "--workers", "2"]
    args += ["--predictor_host", f"127.0.0.1:{s.p_http}", "--predictor_protocol", "v1"]
    args += ["--models", "iris", "--local_models", "", "--healthkit_config", str(CONFIG)]
    proc = Proc("transformer.py", args, s.env, tmp_path / "workers.log")
    url = f"http://127.0.0.1:{port}/v2/models/iris/ready"

    try:
        streak(s, proc, url, 200, 10)
        s.steer("iris", ready=False)
        streak(s, proc, url, 503, 20)
        s.steer("iris", ready=True)
        streak(s, proc, url, 200, 20)
    finally:
        code = proc.stop()
    assert code == 0, proc.tail()


def test_unknown_model_is_still_404(stack: Stack) -> None:
    assert stack.get("/v2/models/nope/ready") == 404
    assert stack.get("/v1/models/nope") == 404
    with pytest.raises(grpc.RpcError) as info:
        stack.grpc_ready("nope")
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


# -- without the module's processes ---------------------------------------------------------


def test_importing_healthkit_kserve_does_not_import_kserve() -> None:
    code = "import sys, healthkit.kserve; assert 'kserve' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_a_bad_config_stops_the_transformer_before_it_serves(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[models.iris.health_check]\nstrategy = "http"\nprotocl = "v2"\n', encoding="utf-8"
    )
    http, grpc_port = free_ports(2)
    args = ["--http_port", str(http), "--grpc_port", str(grpc_port)]
    args += ["--healthkit_config", str(bad)]
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "transformer.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode != 0
    assert "models.iris.health_check.base_url" in done.stderr
    assert "models.iris.health_check.protocl" in done.stderr
    assert "did you mean 'protocol'" in done.stderr


def test_the_transformer_shuts_down_cleanly(tmp_path: Path) -> None:
    """SIGTERM: the lifespan closes the monitor and every client; nothing leaks."""
    port, grpc_port = free_ports(2)
    args = ["--http_port", str(port), "--grpc_port", str(grpc_port)]
    args += ["--models", "", "--local_models", "echo", "--healthkit_config", str(CONFIG)]
    proc = Proc("transformer.py", args, dict(os.environ), tmp_path / "t.log")
    try:
        start = time.monotonic()
        with httpx.Client(timeout=HANG, trust_env=False) as http:
            while True:
                assert proc.popen.poll() is None, proc.tail()
                assert time.monotonic() - start < SETTLE, proc.tail()
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                        break
                time.sleep(0.05)
    finally:
        code = proc.stop()
    log = proc.log.read_text(encoding="utf-8", errors="replace")
    assert code == 0, log[-3000:]
    assert "Application shutdown complete" in log
    for leak in ("Unclosed", "Task was destroyed", "Traceback"):
        assert leak not in log, log[-3000:]


def test_the_kubernetes_manifest_matches_the_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ConfigMap holds the example config, and the probes fit its timing."""
    import yaml

    from healthkit._monitor import deadline_for

    docs = list(yaml.safe_load_all((EXAMPLE / "inferenceservice.yaml").read_text("utf-8")))
    by_kind = {d["kind"]: d for d in docs}
    configmap, isvc = by_kind["ConfigMap"], by_kind["InferenceService"]
    monkeypatch.setenv("PREDICTOR_HTTP", "predictor.test")
    monkeypatch.setenv("PREDICTOR_GRPC", "predictor-grpc.test:8081")
    registry = StrategyRegistry()
    expected = load_config(CONFIG, registry=registry)
    copy = tmp_path / "healthkit.toml"
    copy.write_text(configmap["data"]["healthkit.toml"], encoding="utf-8")
    from_map = load_config(copy, registry=registry)
    assert from_map == expected

    (container,) = isvc["spec"]["transformer"]["containers"]
    (volume,) = isvc["spec"]["transformer"]["volumes"]
    (mount,) = container["volumeMounts"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert mount["name"] == volume["name"]
    assert f"--healthkit_config={mount['mountPath']}/healthkit.toml" in container["args"]
    assert {e["name"] for e in container["env"]} == {"PREDICTOR_HTTP", "PREDICTOR_GRPC"}

    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/v2/health/ready"
    # healthkit applies the thresholds: Kubernetes must not count failures a second time.
    assert readiness["failureThreshold"] == readiness["successThreshold"] == 1
    slowest = max(deadline_for(m.check, m.monitor) for m in expected.models.values())
    assert readiness["timeoutSeconds"] > slowest
    assert readiness["periodSeconds"] >= max(m.monitor.cache_ttl for m in expected.models.values())
    # Liveness never depends on the predictor.
    assert liveness["httpGet"]["path"] == "/v2/health/live"
