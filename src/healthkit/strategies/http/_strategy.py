"""The ``http`` strategy: one shared, self-healing client per config; checks one by one or
many models with one repository index request (``batch``)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import ssl
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

from ..._result import CheckResult, RequestInfo, Target
from ..._status import Status
from ..._strategy import StrategyContext
from ...toolkit import (
    ResultBuilder,
    fetch,
    http_client,
    http_failure,
    no_tls_context,
    retrying,
    tls_context,
)
from ._config import HttpConfig, secrets_of, uses_tls
from ._interpret import index_result, interpret, read_index
from ._pool import Client, GateTimeout, Reply

__all__ = ["HttpBatchStrategy", "HttpStrategy"]

log = logging.getLogger("healthkit.strategies.http")


def _quote(part: str) -> str:
    quoted = urllib.parse.quote(part, safe="")
    if quoted in (".", ".."):
        # A dot segment would be resolved away ("/check/.." is "/"): encode the dots,
        # which URL normalisation (httpx's and the server's) leaves alone.
        return quoted.replace(".", "%2E")
    return quoted


def _mask(secrets: tuple[str, ...], text: str) -> str:
    """``text`` with every secret of the config an upstream echoed back masked."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class _RetryableStatus(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(f"HTTP {reply.status_code}")
        self.reply = reply


class HttpStrategy:
    """One ``httpx.AsyncClient`` (one pool) for every model that shares this config.

    Checks wait for a connection at a gate of ``max_connections`` slots before
    they reach httpx, and their deadline is httpx's own per-request timeout
    (what is left of the check's budget), so the pool never holds a request
    that is cancelled from outside. A client found starved anyway is replaced
    (``client_rebuilds`` counts it); the old one is closed in the background.
    """

    name = "http"

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        # Shared by every instance with the same TLS settings; none is built for plain http.
        self._verify = (
            tls_context(
                verify=config.verify,
                ca_bundle=config.ca_bundle,
                client_cert=config.client_cert,
                client_key=config.client_key,
            )
            if uses_tls(config)
            else no_tls_context()
        )
        #: How often the client was replaced because its pool was starved.
        self.client_rebuilds = 0
        # How many checks make progress at once: a monitor queues the rest itself, before
        # their deadline starts (``healthkit._strategy.CONCURRENCY``).
        self._healthkit_concurrency = config.max_connections
        self._current = Client(self._new_client(), config.max_connections)
        self._retired: list[Client] = []
        self._closers: set[asyncio.Task[None]] = set()
        # Upstream text is scrubbed of the config's secrets (the last line of defence).
        scrub = functools.partial(_mask, secrets_of(config))
        # Shown in results: no credentials (SecretUrl.url has none), no query (a token?).
        self._shown_url = config.base_url.url.partition("#")[0].partition("?")[0].rstrip("/")
        self._result = ResultBuilder(
            self.name, scrub=scrub, error_limit=200, endpoint=self._shown_url
        )
        self._request_ids = itertools.count()
        #: ``"HTTP <code>"`` by status code: one string shared by every result that got it.
        self._answers: dict[int, str] = {}

    def _new_client(self) -> httpx.AsyncClient:
        config = self.config
        headers = {k: s.get_secret_value() for k, s in config.headers.items()}
        # Uncompressed, so that max_body_bytes bounds what is held in memory.
        headers.setdefault("accept-encoding", "identity")
        return http_client(
            config.base_url,
            timeout=config.timeout,
            max_connections=config.max_connections,
            headers=headers,
            verify=self._verify,
        )

    @classmethod
    def create(cls, config: HttpConfig, context: StrategyContext) -> HttpStrategy:
        # Only batch configs are a BatchStrategy, so a monitor batches exactly those.
        if config.batch:
            return HttpBatchStrategy(config)
        return cls(config)

    @property
    def client(self) -> httpx.AsyncClient:
        """The client in use now (a rebuild replaces it)."""
        return self._current.client

    def __repr__(self) -> str:
        return f"<HttpStrategy {self.config.protocol} {self.config.base_url}>"

    # -- requests ---------------------------------------------------------------

    def path_for(self, target: Target) -> str:
        """The path (relative to ``base_url``) that answers for ``target``.

        Model and version are percent-encoded, dots too when they would make a
        ``.`` or ``..`` segment: a check never asks another path than its own.
        """
        cfg = self.config
        if cfg.protocol == "v2":
            if target.model is None:
                return "/v2/health/ready"
            path = f"/v2/models/{_quote(target.model)}"
            if target.version is not None:
                path += f"/versions/{_quote(target.version)}"
            return path + "/ready"
        if cfg.protocol == "v1":
            if target.model is None:
                return "/v1/models"
            return f"/v1/models/{_quote(target.model)}"
        assert cfg.path is not None
        return cfg.path.format(
            model=_quote(target.model or ""), version=_quote(target.version or "")
        )

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        need_body: bool,
        cap: int,
        json: Any = None,
    ) -> Reply:
        """One check's request, with the config's retries (5xx, transport errors, no slot)."""
        cfg = self.config
        if cfg.retries == 0:
            # One attempt: tenacity's per-call machinery would cost a third of the check.
            return await self._attempt(method, path, need_body=need_body, cap=cap, json=json)
        try:
            async for attempt in retrying(
                cfg, retry=(httpx.TransportError, _RetryableStatus, GateTimeout)
            ):
                with attempt:
                    reply = await self._attempt(
                        method, path, need_body=need_body, cap=cap, json=json
                    )
                    if reply.status_code >= 500:
                        raise _RetryableStatus(reply)
                    return reply
        except _RetryableStatus as exc:
            return exc.reply
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _attempt(
        self, method: str, path: str, *, need_body: bool, cap: int, json: Any
    ) -> Reply:
        """One attempt, ``timeout`` seconds from now whatever it spends waiting for a slot."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        end = began + self.config.timeout
        while True:
            current = self._current
            granted = await current.gate.acquire(end - loop.time())
            if granted is None:
                continue  # the client was rebuilt while this check waited: use the new one
            if not granted:
                self._look_for_starvation(current, loop.time())
                raise GateTimeout(loop.time() - began, current.gate.held)
            if current is self._current:
                leaked = current.leaked_slots()
                if not leaked:
                    break
                self._rebuild(current, f"{leaked} pool connection(s) stuck with no request on them")
            self._release(current)  # rebuilt meanwhile: go to the new client's gate
        try:
            left = end - loop.time()
            if left <= 0:
                raise GateTimeout(loop.time() - began, current.gate.held)
            return await self._request(current, method, path, left, need_body, cap, json)
        finally:
            self._release(current)

    @staticmethod
    def _release(current: Client) -> None:
        current.gate.release()
        if current.drained is not None and current.gate.held == 0:
            current.drained.set()

    async def _request(
        self,
        current: Client,
        method: str,
        path: str,
        left: float,
        need_body: bool,
        cap: int,
        json: Any,
    ) -> Reply:
        key = next(self._request_ids)
        current.requests[key] = (asyncio.get_running_loop().time(), left)
        try:
            # The deadline (what is left of the budget) ends the request from inside: the
            # pool is never left holding a request cancelled from outside while it waits.
            return await fetch(
                current.client,
                method,
                path,
                timeout=left,
                max_body_bytes=cap,
                need_body=need_body,
                json=json,
            )
        except httpx.PoolTimeout:
            # Behind the gate a slot is always free: this pool has leaked its slots.
            self._rebuild(current, "a request timed out waiting for a pool connection")
            raise
        finally:
            del current.requests[key]

    # -- self-healing -------------------------------------------------------------

    def _look_for_starvation(self, current: Client, now: float) -> None:
        """A check found no free slot: rebuild if the slots are held by requests that hang."""
        stuck = current.overdue(now, margin=max(1.0, self.config.timeout))
        if stuck:
            self._rebuild(current, f"{stuck} request(s) outlived their timeout")
        else:
            leaked = current.leaked_slots()
            if leaked:
                self._rebuild(current, f"{leaked} pool connection(s) stuck")

    def _rebuild(self, old: Client, why: str) -> None:
        """Replace a starved client; the old one is closed in the background, never awaited."""
        if old is not self._current or self.client.is_closed:
            return  # already replaced (another check saw it first), or closing down
        self._current = Client(self._new_client(), self.config.max_connections)
        self.client_rebuilds += 1
        log.warning(
            "http client for %s rebuilt (%s); rebuilds so far: %d",
            self.config.base_url,
            why,
            self.client_rebuilds,
        )
        old.gate.close()
        self._retired.append(old)
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _retire(self, old: Client) -> None:
        # Requests still on the old client end by their own timeouts: let them, then close.
        if old.gate.held:
            old.drained = asyncio.Event()
            waiter = asyncio.ensure_future(old.drained.wait())
            try:
                await asyncio.wait(
                    {waiter}, timeout=self.config.check_deadline(self.config.timeout) + 1.0
                )
            finally:
                waiter.cancel()
        try:
            await old.client.aclose()
        except Exception:
            log.warning("closing a replaced http client of %s failed", self.config.base_url)
        finally:
            self._retired.remove(old)

    # -- checks -------------------------------------------------------------------

    def _needs_body(self, target: Target) -> bool:
        cfg = self.config
        if cfg.protocol == "generic":
            return cfg.json_field is not None
        return cfg.protocol == "v1" and target.model is not None

    async def acheck(self, target: Target) -> CheckResult:
        try:
            path = self.path_for(target)
        except (KeyError, IndexError, ValueError) as exc:
            return self._result(target, Status.UNKNOWN, f"bad path template: {exc}", exc)
        method = self.config.method
        # What check -v shows when it fails.
        url = self._shown_url + path
        try:
            reply = await self._exchange(
                method,
                path,
                need_body=self._needs_body(target),
                cap=self.config.max_body_bytes,
            )
        except GateTimeout as exc:
            return self._gate_timeout(target, exc, request=RequestInfo(method=method, url=url))
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            detail = self._failure(exc)
            request = RequestInfo(method=method, url=url)
            return self._result(target, Status.UNHEALTHY, detail, exc, request=request)
        # Each result is made once, with its request in it: every model's last result
        # stays in memory, and throwaway copies freed among them fragment it.
        answered = self._answered(reply.status_code)
        request = RequestInfo(method=method, url=url, status=answered)
        return interpret(
            self._result, self.config, target, reply, request=request, answered=answered
        )

    def _answered(self, code: int) -> str:
        """``"HTTP <code>"``, one string per status code for all of this instance's results."""
        text = self._answers.get(code)
        if text is None:
            # At most one per status code an upstream can send (three digits).
            text = self._answers[code] = f"HTTP {code}"
        return text

    def _gate_timeout(
        self,
        target: Target,
        exc: GateTimeout,
        prefix: str = "",
        request: RequestInfo | None = None,
    ) -> CheckResult:
        detail = (
            f"{prefix}timed out after {self.config.timeout:g}s waiting for a connection "
            f"({exc.in_flight} checks in flight on this client)"
        )
        return self._result(
            target, Status.UNHEALTHY, detail, exc, error_type="TimeoutError", request=request
        )

    def _failure(self, exc: BaseException) -> str:
        return http_failure(exc, timeout=self.config.timeout)

    async def aclose(self) -> None:
        """Close the client, and any replaced one still closing in the background."""
        for old in self._retired:
            if old.drained is not None:
                old.drained.set()  # stop waiting for its requests: close it now
        if self._closers:
            await asyncio.wait(set(self._closers))
        self._current.gate.close()
        await self._current.client.aclose()


class HttpBatchStrategy(HttpStrategy):
    """``batch = true``: many models answered by one ``POST /v2/repository/index``.

    A model is healthy when an index entry of its name (and version, if the
    target has one) has ``state`` ``READY``. Single checks (``acheck``) still
    ask the per-model endpoint.
    """

    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]:
        out: dict[Target, CheckResult] = {}
        wanted = [t for t in targets if t.model is not None]
        for target in targets:
            if target.model is None:  # the server as a whole is not in the index
                out[target] = await self.acheck(target)
        if not wanted:
            return out
        start = time.perf_counter()
        failure: tuple[str, BaseException | None] | None = None
        by_name: dict[str, list[dict[str, Any]]] = {}
        cap = self.config.max_index_bytes
        reply: Reply | None = None
        try:
            reply = await self._exchange(
                "POST", "/v2/repository/index", need_body=True, cap=cap, json={}
            )
        except GateTimeout as exc:
            failure = (
                f"repository index: timed out after {self.config.timeout:g}s waiting for a "
                f"connection ({exc.in_flight} checks in flight on this client)",
                exc,
            )
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            failure = (f"repository index: {self._failure(exc)}", exc)
        else:
            if reply.status_code != 200:
                failure = (f"repository index failed (HTTP {reply.status_code})", None)
            elif reply.oversize:
                failure = (
                    f"repository index larger than {cap} bytes (max_index_bytes), not read: "
                    "raise max_index_bytes for a predictor that serves this many models",
                    None,
                )
            else:
                names = {t.model for t in wanted if t.model is not None}
                by_name, problem = read_index(reply, names)
                if problem is not None:
                    failure = (f"repository index: {problem}", None)
        elapsed = time.perf_counter() - start
        request = RequestInfo(
            method="POST",
            url=self._shown_url + "/v2/repository/index",
            status=None if reply is None else self._answered(reply.status_code),
        )
        for target in wanted:
            if failure is not None:
                error_type = "TimeoutError" if isinstance(failure[1], GateTimeout) else None
                result = self._result(
                    target, Status.UNHEALTHY, failure[0], failure[1], error_type=error_type
                )
            else:
                result = index_result(self._result, target, by_name.get(target.model or "", []))
            out[target] = attrs.evolve(result, latency=elapsed, request=request)
        return out
