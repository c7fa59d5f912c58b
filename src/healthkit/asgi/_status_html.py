"""The status page's HTML: the model list and one model's page, and the static assets.

Rendered on the server (a page of rows, filter and search by query string), so
the page works without JavaScript; ``status.js`` and ``status.css`` are served
from the package's ``static`` folder.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.resources
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .._status import Status
from ._status_views import _ORDER, MODEL_WINDOWS, _StatusData

#: Rows the server renders per page (the no-JavaScript view; the script draws every row).
PAGE_ROWS = 100

_SYMBOL = {
    Status.HEALTHY: "\u2714",  # check mark
    Status.DEGRADED: "\u25b2",  # triangle
    Status.UNKNOWN: "?",
    Status.UNHEALTHY: "\u2716",  # heavy x
}
_ASSETS = {
    "status.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
}


class _StatusHtml(_StatusData):
    _assets: dict[str, bytes]

    def _asset(self, name: str) -> bytes:
        if name not in self._assets:
            files = importlib.resources.files("healthkit.asgi") / "static" / name
            self._assets[name] = files.read_bytes()
        return self._assets[name]

    def _base(self, request: Request) -> str:
        root: str = request.scope.get("root_path", "")
        return root.rstrip("/") + "/status"

    def _details_note(self) -> str:
        if self.details:
            return "Details are shown (show_details = always); secrets are masked."
        return (
            "Details (reasons, endpoints) are hidden: the server runs with"
            " show_details = never (<code>--show-details always</code> shows them)."
        )

    @staticmethod
    def _badge(status: str) -> str:
        symbol = _SYMBOL.get(Status(status), "?")
        return (
            f'<span class="badge s-{status}"><span aria-hidden="true">{symbol}</span> '
            f"{status}</span>"
        )

    def _head(self, title: str, base: str) -> str:
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title>"
            f'<link rel="stylesheet" href="{base}/static/status.css"></head>'
        )

    async def page(self, request: Request) -> Response:
        monitor = await self._started()
        base = self._base(request)
        wanted = request.query_params.get("status", "")
        query = request.query_params.get("q", "").strip()
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        names = [
            n
            for n in monitor.models
            if (not wanted or monitor.status(n).value == wanted)
            and (not query or query.lower() in n.lower())
        ]
        shown = names[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
        rows = self._redacted([self.row(n) for n in shown])
        summary = self.summary()
        esc = html.escape
        parts = [
            self._head("healthkit status", base),
            f'<body data-base="{esc(base)}" data-details="{str(self.details).lower()}">',
            "<header><h1>healthkit status</h1>",
            '<p id="summary" class="summary">',
            f'<span class="ready-{str(summary["ready"]).lower()}">Server '
            f"{'ready' if summary['ready'] else 'not ready'}</span> \u00b7 "
            f'<span id="total">{summary["models"]}</span> models: ',
            " ".join(
                f'<span class="count">{self._badge(s)} <b data-count="{s}">{c}</b></span>'
                for s, c in summary["counts"].items()
            ),
            "</p>",
            f'<p class="note">{self._details_note()}</p></header>',
            '<form id="controls" method="get" role="search">',
            '<label>Status <select name="status" id="filter">',
            '<option value="">all</option>',
            *(
                f'<option value="{s.value}"{" selected" if wanted == s.value else ""}>'
                f"{s.value}</option>"
                for s in _ORDER
            ),
            "</select></label> ",
            '<label>Search <input type="search" name="q" id="search" '
            f'placeholder="model name" value="{esc(query)}"></label> ',
            '<noscript><button type="submit">Apply</button></noscript>',
            '<span id="live" class="live">static view</span>',
            "</form>",
            '<div id="table" class="table" role="table" aria-label="models">',
            '<div class="row head" role="row">',
            *(
                f'<span role="columnheader" class="c-{key}" data-sort="{key}">{label}</span>'
                for key, label in (
                    ("name", "Model"),
                    ("status", "Status"),
                    ("since", "Since"),
                    ("strategy", "Strategy"),
                    ("latency_ms", "Latency"),
                    ("uptime", "Uptime 24h / 7d / 30d"),
                    ("p95_ms", "p95 / p99"),
                )
            ),
            "</div>",
            '<div id="viewport" class="viewport"><div id="rows">',
        ]
        for r in rows:
            href = f"{base}/models/{quote(r['name'], safe='')}"
            latency = "-" if r["latency_ms"] is None else f"{r['latency_ms']} ms"
            parts.append(
                f'<div class="row" role="row" data-name="{esc(r["name"])}">'
                f'<span class="c-name"><a href="{esc(href)}">{esc(r["name"])}</a></span>'
                f'<span class="c-status">{self._badge(r["status"])}</span>'
                f'<span class="c-since">{esc(r["since"] or "-")}</span>'
                f'<span class="c-strategy">{esc(r["strategy"] or "-")}</span>'
                f'<span class="c-latency_ms">{latency}</span>'
                '<span class="c-uptime">-</span><span class="c-p95_ms">-</span></div>'
            )
        parts.append("</div></div></div>")
        pages = max(1, -(-len(names) // PAGE_ROWS))
        if pages > 1:
            nav = []
            for label, target in (("previous", page - 1), ("next", page + 1)):
                if 1 <= target <= pages:
                    qs = urlencode({"status": wanted, "q": query, "page": target})
                    nav.append(f'<a href="?{esc(qs)}">{label}</a>')
            parts.append(
                f'<nav id="pager" class="pager">page {page} of {pages} ({len(names)} models) '
                + " ".join(nav)
                + "</nav>"
            )
        parts.append(f'<script src="{base}/static/status.js" defer></script></body></html>')
        return HTMLResponse("".join(parts))

    async def model_page(self, request: Request) -> Response:
        monitor = await self._started()
        name = request.path_params["name"]
        base = self._base(request)
        esc = html.escape
        if name not in monitor:
            return HTMLResponse(
                self._head("not found", base) + f"<body><p>No model {esc(name)}.</p>"
                f'<p><a href="{base}">All models</a></p></body></html>',
                status_code=404,
            )
        body = await self.model_body(
            name, request, window=request.query_params.get("window", "24h")
        )
        row = body["model"]
        parts = [
            self._head(f"{name} - healthkit status", base),
            f'<body data-base="{esc(base)}" data-model="{esc(name)}">',
            f'<header><p><a href="{base}">\u2190 All models</a></p><h1>{esc(name)}</h1>',
            f'<p id="model-status">{self._badge(row["status"])} since '
            f'<span id="model-since">{esc(row["since"] or "-")}</span>; ',
            f"strategy {esc(row['strategy'] or '-')}; last check "
            f"{esc(row['checked_at'] or '-')}"
            + ("" if row["latency_ms"] is None else f" ({row['latency_ms']} ms)")
            + "</p>",
            f'<p class="note">{self._details_note()}</p></header>',
        ]
        if self.details:
            parts.append(
                '<dl class="details"><dt>Last reason</dt>'
                f"<dd>{esc(row.get('detail') or '-')}</dd><dt>Last error</dt>"
                f"<dd>{esc(row.get('error') or '-')}</dd><dt>Endpoint</dt>"
                f"<dd>{esc(row.get('endpoint') or '-')}</dd></dl>"
            )
        if body["history"] and "uptime" in body:
            parts.append(
                '<table class="figures"><caption>History</caption><tr><th>window</th>'
                "<th>uptime</th><th>checks</th><th>p50</th><th>p95</th><th>p99</th></tr>"
            )
            for label, up in body["uptime"].items():
                lat = body["latency_ms"][label]
                parts.append(
                    f"<tr><td>{label}</td><td>{'-' if up is None else f'{up:.2f} %'}</td>"
                    f"<td>{lat['checks']}</td><td>{lat['p50']} ms</td><td>{lat['p95']} ms</td>"
                    f"<td>{lat['p99']} ms</td></tr>"
                )
            parts.append("</table>")
            links = " \u00b7 ".join(
                f"<b>{label}</b>"
                if label == body.get("window")
                else f'<a href="?{urlencode({"window": label})}">{label}</a>'
                for label in MODEL_WINDOWS
            )
            parts.append(f'<p class="windows">Latency chart: {links}</p>')
            parts.append(_chart(body.get("minutes", []), body.get("window", "24h")))
        else:
            parts.append(
                '<p class="note">No history store: the timeline holds the transitions kept'
                " in memory since the server started.</p>"
            )
        parts.append(
            '<h2>Transitions</h2><table class="timeline" id="timeline"><thead><tr>'
            "<th>at</th><th>from</th><th>to</th>"
            + ("<th>reason</th>" if self.details else "")
            + "</tr></thead><tbody>"
        )
        for t in body["transitions"]:
            parts.append(
                f"<tr><td>{esc(t['at'] or '-')}</td><td>{self._badge(t['old'])}</td>"
                f"<td>{self._badge(t['new'])}</td>"
                + (f"<td>{esc(t.get('detail') or '')}</td>" if self.details else "")
                + "</tr>"
            )
        parts.append(
            f'</tbody></table><script src="{base}/static/status.js" defer></script></body></html>'
        )
        return HTMLResponse("".join(parts))

    async def asset(self, request: Request) -> Response:
        name = request.path_params["asset"]
        if name not in _ASSETS:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            self._asset(name),
            media_type=_ASSETS[name],
            headers={"cache-control": "no-cache"},
        )


def _chart(minutes: list[dict[str, Any]], window: str) -> str:
    """Check latency over ``window`` as inline SVG (mean and max per point; no script)."""
    if not minutes:
        return f'<p class="note">No checks stored in the last {window}.</p>'
    width, height = 720.0, 140.0
    top = max(m["max_ms"] for m in minutes) or 1.0
    first = dt.datetime.fromisoformat(minutes[0]["start"]).timestamp()
    span = max(60.0, dt.datetime.fromisoformat(minutes[-1]["start"]).timestamp() - first)

    def points(key: str) -> str:
        return " ".join(
            f"{(dt.datetime.fromisoformat(m['start']).timestamp() - first) / span * width:.1f},"
            f"{height - m[key] / top * height:.1f}"
            for m in minutes
        )

    failed = sum(m["failures"] for m in minutes)
    return (
        f'<figure class="chart"><svg viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="check latency over the last {window}, up to {top} ms">'
        f'<polyline class="max" fill="none" points="{points("max_ms")}"/>'
        f'<polyline class="mean" fill="none" points="{points("mean_ms")}"/>'
        # One minute is one point, which a polyline does not draw.
        + (
            "".join(
                f'<circle class="mean" r="3" cx="{p.split(",")[0]}" cy="{p.split(",")[1]}"/>'
                for p in points("mean_ms").split()
            )
            if len(minutes) < 3
            else ""
        )
        + "</svg>"
        f"<figcaption>Latency, last {window} ({minutes[0]['minutes']} min per point): "
        "mean (solid) and max (dashed), "
        f"0 to {top} ms; {sum(m['checks'] for m in minutes)} checks, {failed} failed."
        "</figcaption></figure>"
    )
