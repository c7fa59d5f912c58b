"""The ``openai`` strategy: ``/health`` and the ``/v1/models`` list of an OpenAI-style server."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from healthkit import CheckResult, Secret, Status, StrategyContext, Target
from healthkit.toolkit import (
    HttpReply,
    ResultBuilder,
    fetch,
    http_client,
    http_failure,
    secret_masker,
    tls_context,
)

from ._config import OpenAIConfig

__all__ = ["OpenAIStrategy"]

#: How many served model names a "not served" detail lists.
_LISTED = 10


class _Failed(Exception):
    """A step failed: the status and detail every target of the check gets."""

    def __init__(self, status: Status, detail: str, cause: BaseException | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.cause = cause


class OpenAIStrategy:
    """One ``httpx.AsyncClient`` for every model that shares this config.

    It is a batch strategy: one ``/health`` and one ``/v1/models`` request answer
    any number of models.
    """

    name = "openai"

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if config.api_key_env and not key:
            raise RuntimeError(f"environment variable {config.api_key_env!r} is not set")
        self._key = Secret(key) if key else None
        plain = config.base_url.url.startswith("http:") and config.ca_bundle is None
        self._client = http_client(
            config.base_url,
            timeout=config.timeout,
            max_connections=config.max_connections,
            # Shared with every instance of the same TLS settings; none built for plain http.
            verify=None if plain else tls_context(verify=config.verify, ca_bundle=config.ca_bundle),
        )
        # At most this many checks at once (the client's connections): a monitor queues the
        # rest itself, so none spends its timeout waiting for a connection.
        self._healthkit_concurrency = config.max_connections
        # No credentials (SecretUrl.url has none); CheckResult drops any query.
        # The key and the URL's credentials are masked wherever an upstream echoes them.
        scrub = secret_masker(config, extra=[key] if key else [])
        self._result = ResultBuilder(self.name, endpoint=config.base_url.url, scrub=scrub)

    @classmethod
    def create(cls, config: OpenAIConfig, context: StrategyContext) -> OpenAIStrategy:
        return cls(config)

    def __repr__(self) -> str:
        return f"<OpenAIStrategy {self.config.base_url} {'+'.join(self.config.endpoints)}>"

    # -- requests -------------------------------------------------------------------

    async def _get(self, path: str, end: float, *, need_body: bool) -> HttpReply:
        """``GET path``, over by ``end`` (loop time): one countdown for the whole check."""
        headers = {}
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        where = f"GET {path}"
        left = end - asyncio.get_running_loop().time()
        try:
            if left <= 0:
                raise httpx.ReadTimeout("no time left for this request")
            return await fetch(
                self._client,
                "GET",
                path,
                timeout=left,
                max_body_bytes=self.config.max_body_bytes,
                need_body=need_body,
                headers=headers,
            )
        except (httpx.HTTPError, OSError) as exc:
            words = http_failure(exc, timeout=self.config.timeout)
            raise _Failed(Status.UNHEALTHY, f"{where}: {words}", exc) from None

    def _refused(self, where: str, response: HttpReply) -> _Failed:
        code = response.status_code
        if code in (401, 403):
            hint = (
                f"; check the key in ${self.config.api_key_env}"
                if self.config.api_key_env
                else "; the server wants an API key (set api_key_env)"
            )
            return _Failed(Status.UNHEALTHY, f"{where}: unauthorized (HTTP {code}){hint}")
        if code == 404:
            return _Failed(Status.UNHEALTHY, f"{where}: not found (HTTP 404)")
        return _Failed(Status.UNHEALTHY, f"{where}: not ready (HTTP {code})")

    async def _health(self, end: float) -> str:
        path = self.config.health_path
        response = await self._get(path, end, need_body=False)
        if response.status_code != 200:
            raise self._refused(f"GET {path}", response)
        return f"{path} ok"

    async def _served(self, end: float) -> list[str]:
        path = self.config.models_path
        where = f"GET {path}"
        response = await self._get(path, end, need_body=True)
        if response.status_code != 200:
            raise self._refused(where, response)
        if response.oversize or response.body is None:
            limit = self.config.max_body_bytes
            too_big = f"{where}: body larger than {limit} bytes (max_body_bytes), not read"
            raise _Failed(Status.UNHEALTHY, too_big)
        try:
            body: Any = json.loads(response.body)
        except ValueError:
            raise _Failed(Status.UNHEALTHY, f"{where}: body is not JSON") from None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise _Failed(Status.UNHEALTHY, f"{where}: body has no 'data' list")
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]

    # -- checks -----------------------------------------------------------------------

    async def acheck(self, target: Target) -> CheckResult:
        return (await self.acheck_many([target]))[target]

    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]:
        """Answer every target with one ``/health`` and one ``/v1/models`` request."""
        parts: list[str] = []
        served: list[str] | None = None
        end = asyncio.get_running_loop().time() + self.config.timeout
        try:
            if "health" in self.config.endpoints:
                parts.append(await self._health(end))
            if "models" in self.config.endpoints:
                served = await self._served(end)
        except _Failed as failed:
            done = "; ".join([*parts, failed.detail])
            return {t: self._result(t, failed.status, done, failed.cause) for t in targets}
        return {t: self._judge(t, parts, served) for t in targets}

    def _judge(self, target: Target, parts: list[str], served: list[str] | None) -> CheckResult:
        if served is None:
            return self._result(target, Status.HEALTHY, "; ".join(parts))
        if target.model is None:
            detail = "; ".join([*parts, f"{len(served)} model(s) served"])
            return self._result(target, Status.HEALTHY, detail)
        if target.model in served:
            detail = "; ".join([*parts, f"model {target.model!r} is served"])
            return self._result(target, Status.HEALTHY, detail)
        listed = ", ".join(served[:_LISTED]) + (", ..." if len(served) > _LISTED else "")
        detail = "; ".join(
            [*parts, f"model {target.model!r} is not served (served: {listed or 'none'})"]
        )
        return self._result(target, Status.UNHEALTHY, detail)

    async def aclose(self) -> None:
        await self._client.aclose()
