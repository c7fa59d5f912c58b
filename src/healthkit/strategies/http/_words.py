"""What went wrong, in words: redirects, excerpts of bodies.

A request that got no answer is told by the toolkit's ``http_failure``.
"""

from __future__ import annotations

from typing import Any

import httpx

from ...toolkit._results import cut
from ._pool import Reply

__all__ = ["EXCERPT", "cut", "excerpt", "redirect"]

#: Longest excerpt of an upstream value echoed into a detail.
EXCERPT = 80


def excerpt(value: Any) -> str:
    """``repr(value)``, cut to a short excerpt: upstream bodies must not flood a detail."""
    return cut(repr(value), EXCERPT)


def redirect(reply: Reply) -> str:
    return (
        f"unexpected HTTP {reply.status_code}: redirect not followed "
        f"(to {_redact_location(reply.headers.get('location', ''))})"
    )


def _redact_location(location: str) -> str:
    """A redirect's target without credentials, query or fragment, and cut short."""
    try:
        url = httpx.URL(location)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "an invalid location"
    shown = url.copy_with(username=None, password=None, query=None, fragment=None)
    text = str(shown)
    if url.userinfo:
        scheme, _, rest = text.partition("://")
        text = f"{scheme}://***@{rest}"
    if url.query or url.fragment:
        text += "?***"
    return cut(text, 120)
