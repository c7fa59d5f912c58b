"""The ``healthkit`` strategy: every model of one upstream healthkit from one status request."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

from ..._result import CheckResult, RequestInfo, Target
from ..._status import Status
from ..._strategy import StrategyContext
from ...toolkit import (
    HttpReply,
    ResultBuilder,
    excerpt,
    fetch,
    http_client,
    http_failure,
    no_tls_context,
    retrying,
    secret_masker,
    tls_context,
)
from ._config import FederationConfig

__all__ = ["FederationStrategy"]

#: The status API versions this strategy reads (see healthkit.asgi._status_api).
_READS = (1,)


class _Retryable(Exception):
    def __init__(self, reply: HttpReply) -> None:
        super().__init__(f"HTTP {reply.status_code}")
        self.reply = reply


@attrs.frozen
class _Answer:
    """One status request's outcome: the body, or why there is none."""

    body: Mapping[str, Any] | None
    failure: str | None
    error: BaseException | None
    elapsed: float
    request: RequestInfo


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


class FederationStrategy:
    """One shared client for one upstream healthkit; a batch is one ``GET /v1/status``.

    Every model behind that healthkit is answered from one body, so a monitor
    that batches this instance's models costs the upstream one request per
    period. A result carries the upstream's check time (``checked_at``); one
    older than ``max_age`` is ``unknown``.
    """

    name = "healthkit"

    def __init__(self, config: FederationConfig) -> None:
        self.config = config
        https = config.base_url.url.startswith("https:")
        verify = (
            tls_context(verify=config.verify, ca_bundle=config.ca_bundle)
            if https
            else no_tls_context()
        )
        headers = {k: s.get_secret_value() for k, s in config.headers.items()}
        headers.setdefault("accept-encoding", "identity")  # max_body_bytes bounds memory
        self._client = http_client(
            config.base_url,
            timeout=config.timeout,
            max_connections=4,
            headers=headers,
            verify=verify,
        )
        base = config.base_url.url.partition("#")[0].partition("?")[0].rstrip("/")
        self._shown_url = base + config.path
        self._result = ResultBuilder(
            self.name,
            scrub=secret_masker(config),
            error_limit=200,
            endpoint=self._shown_url,
        )
        #: Status requests sent (each answers every model asked about at once).
        self.requests = 0
        # The status request in flight: checks that come while it runs (a one-shot check
        # of every model, on-demand checks of several) share it instead of sending their own.
        self._inflight: asyncio.Task[_Answer] | None = None

    @classmethod
    def create(cls, config: FederationConfig, context: StrategyContext) -> FederationStrategy:
        return cls(config)

    def __repr__(self) -> str:
        return f"<FederationStrategy {self.config.base_url}{self.config.path}>"

    # -- the request ------------------------------------------------------------------

    async def _get(self) -> HttpReply:
        cfg = self.config

        async def attempt() -> HttpReply:
            self.requests += 1
            return await fetch(
                self._client,
                "GET",
                cfg.path,
                timeout=cfg.timeout,
                max_body_bytes=cfg.max_body_bytes,
            )

        if cfg.retries == 0:
            return await attempt()
        try:
            async for tried in retrying(cfg, retry=(httpx.TransportError, _Retryable)):
                with tried:
                    reply = await attempt()
                    if reply.status_code >= 500:
                        raise _Retryable(reply)
                    return reply
        except _Retryable as exc:
            return exc.reply
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _fetch(self) -> _Answer:
        start = time.perf_counter()
        reply: HttpReply | None = None
        body: Mapping[str, Any] | None = None
        failure: str | None = None
        error: BaseException | None = None
        try:
            reply = await self._get()
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            why = http_failure(exc, timeout=self.config.timeout)
            failure = f"upstream healthkit unreachable: {why}"
            error = exc
        else:
            failure, body = self._read(reply)
        request = RequestInfo(
            method="GET",
            url=self._shown_url,
            status=None if reply is None else f"HTTP {reply.status_code}",
        )
        return _Answer(body, failure, error, time.perf_counter() - start, request)

    def _read(self, reply: HttpReply) -> tuple[str | None, Mapping[str, Any] | None]:
        if reply.status_code == 404:
            return (
                f"upstream healthkit has no status API at {self.config.path} (HTTP 404; "
                "healthkit before federation, or another server)",
                None,
            )
        if reply.status_code != 200:
            return f"upstream healthkit status API answered HTTP {reply.status_code}", None
        if reply.body is None:
            return (
                f"upstream status larger than max_body_bytes ({self.config.max_body_bytes}), "
                "not read",
                None,
            )
        try:
            body = json.loads(reply.body)
        except ValueError:
            return f"upstream status is not JSON: {excerpt(reply.body, 60)!r}", None
        if not isinstance(body, dict) or not isinstance(body.get("models"), dict):
            return "upstream status has no 'models' table (not a healthkit status API?)", None
        version = body.get("version")
        if version not in _READS:
            return (
                f"upstream status API version {excerpt(str(version), 20)} is not one this "
                f"healthkit reads ({', '.join(map(str, _READS))}): upgrade this side",
                None,
            )
        return None, body

    # -- results ----------------------------------------------------------------------

    def _one(self, target: Target, answer: _Answer) -> CheckResult:
        made = self._result
        if answer.body is None:
            assert answer.failure is not None
            timed_out = isinstance(answer.error, httpx.TimeoutException)
            error_type = "TimeoutError" if timed_out else None
            return made(
                target, Status.UNHEALTHY, answer.failure, answer.error, error_type=error_type
            )
        body = answer.body
        if target.model is None:
            ready = body.get("ready") is True
            status = _status(body.get("status"))
            if status is None:
                return made(target, Status.UNKNOWN, "upstream status has no valid 'status'")
            if not ready and status.is_ok:
                status = Status.UNHEALTHY
            return made(target, status, f"upstream healthkit: {status.value}, ready={ready}")
        entry = body["models"].get(target.model)
        if not isinstance(entry, dict):
            return made(
                target,
                Status.UNHEALTHY,
                f"model {target.model} is not configured on the upstream healthkit",
            )
        if target.version is not None and entry.get("version") != target.version:
            upstream = entry.get("version")
            return made(
                target,
                Status.UNKNOWN,
                f"the upstream healthkit checks version {excerpt(str(upstream), 40)}, "
                f"not {target.version}",
            )
        checked_at = _parse_time(entry.get("checked_at"))
        age = entry.get("age")
        if checked_at is None or not isinstance(age, int | float) or isinstance(age, bool):
            return made(target, Status.UNKNOWN, "not checked upstream yet")
        # The upstream measured the age on its clock; this request's time is added, so
        # no clock needs to agree with another.
        age = float(age) + answer.elapsed
        if age > self.config.max_age:
            result = made(
                target,
                Status.UNKNOWN,
                f"upstream result is {age:.1f}s old (max_age {self.config.max_age:g}s)",
            )
            return attrs.evolve(result, checked_at=checked_at)
        status = _status(entry.get("status"))
        if status is None:
            return made(target, Status.UNKNOWN, "upstream status has no valid 'status' for it")
        ready = entry.get("ready") is True
        if status.is_ok and not ready:
            # Passing, but not yet past the upstream's success_threshold.
            detail = f"upstream: {status.value} but not ready yet"
            status = Status.UNKNOWN
        else:
            detail = f"upstream: {status.value}"
        shown = entry.get("detail")
        if isinstance(shown, str) and shown:
            detail += f" ({excerpt(shown, 160)})"
        detail += f", checked {age:.1f}s ago"
        return attrs.evolve(made(target, status, detail), checked_at=checked_at)

    def _settled(self, task: asyncio.Task[_Answer]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved, even when every waiter was cancelled meanwhile

    async def _shared(self) -> _Answer:
        """The answer of the request in flight, or of a new one; a waiter cancelled
        leaves it to the others (it ends by its own timeout)."""
        task = self._inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch())
            self._inflight = task
            task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]:
        answer = await self._shared()
        out: dict[Target, CheckResult] = {}
        for target in targets:
            out[target] = attrs.evolve(
                self._one(target, answer), latency=answer.elapsed, request=answer.request
            )
        return out

    async def acheck(self, target: Target) -> CheckResult:
        return (await self.acheck_many([target]))[target]

    async def aclose(self) -> None:
        task = self._inflight
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        await self._client.aclose()


def _status(value: Any) -> Status | None:
    try:
        return Status(value)
    except ValueError:
        return None
