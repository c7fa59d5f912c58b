"""What an upstream's answer means: a status and a detail for the checked target."""

from __future__ import annotations

import json as _jsonlib
from collections.abc import Collection
from typing import Any

from ..._result import CheckResult, RequestInfo, Target
from ..._status import Status
from ...toolkit import ResultBuilder
from ._config import HttpConfig
from ._pool import Reply
from ._words import EXCERPT, cut, excerpt, redirect

__all__ = ["index_result", "interpret", "read_index", "read_json"]


def interpret(
    results: ResultBuilder,
    config: HttpConfig,
    target: Target,
    reply: Reply,
    *,
    request: RequestInfo | None = None,
    answered: str | None = None,
) -> CheckResult:
    """``target``'s result from ``reply``, made once with ``request`` in it.

    ``answered`` is the strategy's shared ``"HTTP <code>"`` text, reused as the
    detail of a generic check that only looks at the status.
    """
    if config.protocol == "generic":
        status, detail = _verdict_generic(config, reply, answered)
    else:
        status, detail = _verdict(config, target, reply)
    return results(target, status, detail, request=request)


def _verdict(config: HttpConfig, target: Target, reply: Reply) -> tuple[Status, str]:
    code = reply.status_code
    if 300 <= code < 400 and "location" in reply.headers:
        return Status.UNHEALTHY, redirect(reply)
    if code == 404:
        what = "server" if target.model is None else f"model {target}"
        return Status.UNHEALTHY, f"{what} not found (HTTP 404)"
    if code >= 500 and code != 503:
        return Status.UNHEALTHY, f"server error (HTTP {code})"
    if code == 503:
        return Status.UNHEALTHY, f"not ready (HTTP {code})"
    if code != 200:
        return Status.UNHEALTHY, f"unexpected HTTP {code}"
    if config.protocol == "v2" or target.model is None:
        return Status.HEALTHY, "ready (HTTP 200)"
    body, problem = read_json(config, reply)
    if problem is not None:
        return Status.UNHEALTHY, problem
    if not isinstance(body, dict) or "ready" not in body:
        return Status.UNHEALTHY, "body has no 'ready' field"
    ready = body["ready"]
    if ready is True or (isinstance(ready, str) and ready.lower() == "true"):
        return Status.HEALTHY, "ready (HTTP 200)"
    return Status.UNHEALTHY, f"not ready (ready={excerpt(ready)})"


def _verdict_generic(cfg: HttpConfig, reply: Reply, answered: str | None) -> tuple[Status, str]:
    code = reply.status_code
    if _in_ranges(code, cfg.expected_status):
        if cfg.json_field is None:
            return Status.HEALTHY, answered or f"HTTP {code}"
        body, problem = read_json(cfg, reply)
        if problem is not None:
            return Status.UNHEALTHY, problem
        found, value = _dig(body, cfg.json_field)
        if not found:
            return Status.UNHEALTHY, f"body has no {cfg.json_field!r} field"
        status = (
            Status.HEALTHY
            if value is True or (value and not isinstance(value, bool))
            else Status.UNHEALTHY
        )
        return status, f"HTTP {code}, {cfg.json_field}={excerpt(value)}"
    if _in_ranges(code, cfg.degraded_status):
        return Status.DEGRADED, f"degraded (HTTP {code})"
    if 300 <= code < 400 and "location" in reply.headers:
        return Status.UNHEALTHY, redirect(reply)
    return Status.UNHEALTHY, f"unexpected HTTP {code}"


def read_json(config: HttpConfig, reply: Reply) -> tuple[Any, str | None]:
    """The body as JSON, or why it cannot be had (too large, not JSON)."""
    if reply.oversize:
        return None, (
            f"body larger than {config.max_body_bytes} bytes (max_body_bytes), "
            f"not read (HTTP {reply.status_code})"
        )
    return _decode(reply)


def _decode(reply: Reply, **options: Any) -> tuple[Any, str | None]:
    try:
        return _jsonlib.loads(reply.body or b"", **options), None
    except ValueError:
        return None, f"body is not JSON (HTTP {reply.status_code})"
    except RecursionError:
        # Arrays nested a few thousand deep fit in any body limit and exhaust the decoder.
        return None, f"body nested too deeply to read (HTTP {reply.status_code})"


def read_index(
    reply: Reply, names: Collection[str]
) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    """The repository index entries named in ``names``, by name, or why there are none.

    The index lists every model the predictor serves, maybe thousands more than a
    config asks about: the other entries are dropped as they are decoded, so what
    is kept grows with the models asked about, not with the predictor.
    """

    def keep(entry: dict[str, Any]) -> dict[str, Any] | None:
        # Called for every object, nested ones first; only whole entries are read later.
        return entry if str(entry.get("name")) in names else None

    body, problem = _decode(reply, object_hook=keep)
    if problem is not None:
        return {}, problem
    if not isinstance(body, list):
        return {}, "body is not a list"
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in body:
        if isinstance(entry, dict):
            by_name.setdefault(str(entry.get("name")), []).append(entry)
    return by_name, None


def index_result(
    results: ResultBuilder, target: Target, entries: list[dict[str, Any]]
) -> CheckResult:
    """``target``'s result from the repository index entries of its name."""
    if target.version is not None:
        entries = [e for e in entries if str(e.get("version")) == target.version]
    if not entries:
        return results(target, Status.UNHEALTHY, f"model {target} not in repository index")
    for entry in entries:
        if str(entry.get("state", "")).upper() == "READY":
            return results(target, Status.HEALTHY, "READY in repository index")
    entry = entries[0]
    reason = entry.get("reason") or ""
    detail = f"state {cut(str(entry.get('state')), EXCERPT)} in repository index"
    if reason:
        detail += f": {cut(str(reason), EXCERPT)}"
    return results(target, Status.UNHEALTHY, detail)


def _in_ranges(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def _dig(body: Any, dotted: str) -> tuple[bool, Any]:
    node = body
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node
