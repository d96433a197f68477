"""
Campaign delivery dashboard: server-rendered HTML pages with inline SVG charts (no JavaScript, no network).

Served by the receiver app (:func:`dashboard_router`), so inside the Airflow api-server it lives at
``/messagecentral/dashboard`` behind Airflow's own login, and the plugin can show it in the Airflow UI as an
external view. Pages:

* ``/dashboard`` — campaigns, newest first (DAG, run, task, sent at, recipients), paged;
* ``/dashboard/campaigns/{campaign_key}`` — one campaign: delivery funnel, delivered ratio over time since
  send, failures by error code, and a paged recipients table searchable by number (``?q=98161&page=2``).

This module only renders: everything is read through the store's view methods
(:class:`~airflow_provider_messagecentral.reports.store.views.ViewsRoom`: campaign row, summary, funnel,
delivery curve, failures by error code, recipients), and nothing here writes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from airflow_provider_messagecentral.reports.store import ReportStore
from airflow_provider_messagecentral.reports.store.views import FUNNEL_STAGES, DeliveryCurve

__all__ = ["dashboard_router"]

_PAGE_SIZE = 50

StoreGetter = Callable[[], ReportStore]


# ---------------------------------------------------------------------------------------------- rendering

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px 24px;color:#1a202c;
background:#fff;font-size:14px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
a{color:#2b6cb0;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e2e8f0}
th{background:#f7fafc;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#718096}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{border:1px solid #e2e8f0;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px}.grid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:24px}
.pager{margin:8px 0;display:flex;gap:12px;align-items:center}form{margin:8px 0}
input[type=search]{padding:5px 8px;border:1px solid #cbd5e0;border-radius:4px;width:240px}
button{padding:5px 12px;border:1px solid #2b6cb0;background:#2b6cb0;color:#fff;border-radius:4px}
.status-DELIVRD{color:#2f855a}.status-UNDELIV,.status-EXPIRED,.status-REJECTD{color:#c53030}
svg text{font-family:inherit;font-size:12px}
"""
_COLORS = {
    "sent": "#a0aec0",
    "accepted": "#4a5568",
    "delivered": "#38a169",
    "undelivered": "#e53e3e",
    "expired": "#dd6b20",
    "rejected": "#9b2c2c",
    "unknown": "#805ad5",
    "pending": "#cbd5e0",
}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    return "—"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "—"


def _duration(seconds: float) -> str:
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def _page(title: str, body: str) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(document, headers={"Cache-Control": "no-store"})


def _funnel_svg(counts: dict[str, int]) -> str:
    rows = [("sent", "Sent"), ("accepted", "Accepted")] + [(k, label) for k, label, _s in FUNNEL_STAGES]
    top = max(counts["sent"], 1)
    width, label_w, bar_w, row_h = 560, 100, 330, 26
    parts = [
        f'<svg id="funnel" role="img" aria-label="Delivery funnel" width="{width}" height="{row_h * len(rows) + 8}" '
        f'viewBox="0 0 {width} {row_h * len(rows) + 8}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, (key, label) in enumerate(rows):
        y = 4 + index * row_h
        count = counts[key]
        w = max(round(bar_w * count / top), 1 if count else 0)
        base = counts["sent"] if key in ("sent", "accepted") else counts["accepted"]
        parts.append(
            f'<g class="stage" data-stage="{key}" data-count="{count}">'
            f'<text x="0" y="{y + 17}">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row_h - 8}" fill="{_COLORS[key]}" rx="2"/>'
            f'<text x="{label_w + bar_w + 8}" y="{y + 17}">{count:,} ({_pct(count, base)})</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _reconciled_note(reconciled: int) -> str:
    if not reconciled:
        return ""
    return (
        f'<p class="muted" id="reconciled" data-reconciled="{reconciled}">{reconciled:,} accepted recipient(s) were '
        "in requests whose answer was lost (worker stopped, timeout); MessageCentral's delivery reports for them "
        "showed they were sent.</p>"
    )


def _curve_svg(curve: DeliveryCurve) -> str:
    width, height, left, bottom, top, right = 560, 240, 44, 28, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max(curve.points[-1][0], curve.step) if curve.points else curve.step
    whole = max(curve.recipients, 1)

    def xy(seconds: int, delivered: int) -> tuple[float, float]:
        return left + plot_w * seconds / span, top + plot_h * (1 - delivered / whole)

    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(s, d) for s, d in curve.points))
    final = curve.points[-1][1] if curve.points else 0
    parts = [
        f'<svg id="delivery-curve" role="img" aria-label="Delivered ratio over time since send" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'data-recipients="{curve.recipients}" data-delivered="{final}" data-undated="{curve.undated}" '
        f'data-step="{curve.step}" data-points="{len(curve.points)}" data-sample="{curve.sample}">'
    ]
    for tick in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - tick / 100)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#edf2f7"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}%</text>'
        )
    for i in range(5):
        seconds = span * i / 4
        x = left + plot_w * i / 4
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">{_duration(seconds)}</text>')
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#a0aec0"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#a0aec0"/>'
        f'<polyline fill="none" stroke="{_COLORS["delivered"]}" stroke-width="2" points="{coords}"/>'
    )
    for seconds, delivered in curve.points[1:]:
        x, y = xy(seconds, delivered)
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{_COLORS["delivered"]}" '
            f'data-seconds="{seconds}" data-delivered="{delivered}"><title>{_duration(seconds)}: '
            f"{delivered:,} delivered ({_pct(delivered, curve.recipients)})</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _failures_html(failures: Sequence[tuple[str, int | None, int]]) -> str:
    if not failures:
        return '<p class="muted" id="failures-none">No failed deliveries.</p>'
    top = max(n for _s, _c, n in failures)
    rows = "".join(
        f'<tr class="failure" data-status="{_e(status)}" data-error-code="{_e(code)}" data-count="{n}">'
        f'<td class="status-{_e(status)}">{_e(status)}</td><td class="num">{_e("—" if code is None else code)}</td>'
        f'<td class="num">{n:,}</td><td><svg width="160" height="12" aria-hidden="true">'
        f'<rect width="{max(round(160 * n / top), 1)}" height="12" fill="#e53e3e" rx="2"/></svg></td></tr>'
        for status, code, n in failures
    )
    return (
        '<table id="failures"><thead><tr><th>Status</th><th class="num">Error code</th>'
        f'<th class="num">Recipients</th><th></th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _pager(base: str, page: int, page_size: int, total: int, extra: dict[str, str]) -> str:
    pages = max(1, math.ceil(total / page_size))
    links = []
    if page > 1:
        links.append(f'<a rel="prev" href="{_e(base)}?{_e(urlencode({**extra, "page": page - 1}))}">← Previous</a>')
    links.append(f'<span class="muted">Page {page:,} of {pages:,} ({total:,} rows)</span>')
    if page < pages:
        links.append(f'<a rel="next" href="{_e(base)}?{_e(urlencode({**extra, "page": page + 1}))}">Next →</a>')
    return f'<div class="pager">{"".join(links)}</div>'


def _task_label(campaign: dict[str, Any]) -> str:
    index = int(campaign.get("map_index", -1))
    return str(campaign["task_id"]) + ("" if index < 0 else f" [{index}]")


def _airflow_ti_path(campaign: dict[str, Any]) -> str:
    path = "/dags/{}/runs/{}/tasks/{}".format(
        *(quote(str(campaign[k]), safe="") for k in ("dag_id", "run_id", "task_id"))
    )
    if int(campaign.get("map_index", -1)) >= 0:
        path += f"/mapped/{int(campaign['map_index'])}"
    return path


# ---------------------------------------------------------------------------------------------- routes


def dashboard_router(get_store: StoreGetter, *, dependencies: Sequence[Any] | None = None) -> APIRouter:
    """
    The dashboard pages as a FastAPI router, for the receiver app to include.

    :param get_store: returns the report store to read (called per request; cheap).
    :param dependencies: FastAPI dependencies guarding every page (the receiver's read auth: Airflow's login
        when mounted in the api-server).

    Example::

        app.include_router(dashboard_router(lambda: get_store(url), dependencies=[Depends(read_auth)]))
        # GET /dashboard, GET /dashboard/campaigns/{campaign_key}?q=98161&page=2
    """
    router = APIRouter(prefix="/dashboard", dependencies=list(dependencies or []))

    @router.get("", response_class=HTMLResponse, name="mc_dashboard_campaigns")
    async def campaigns(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> HTMLResponse:
        """Campaigns, newest first."""
        store = await run_in_threadpool(get_store)
        listing = await run_in_threadpool(store.list_campaigns, page, 25)
        base = request.url_for("mc_dashboard_campaigns").path
        rows = "".join(
            f'<tr class="campaign" data-campaign="{_e(c["campaign"])}">'
            f'<td><a href="{_e(base)}/campaigns/{_e(quote(c["campaign"], safe=""))}">{_e(c["campaign"])}</a></td>'
            f"<td>{_e(c['dag_id'])}</td><td>{_e(c['run_id'])}</td>"
            f"<td>{_e(_task_label(c))}</td>"
            f"<td>{_e(c['kind'])}</td><td>{_e(_when(c['first_send_at']))}</td>"
            f'<td class="num">{int(c["recipients"]):,}</td></tr>'
            for c in listing["items"]
        )
        body = (
            "<h1>MessageCentral campaigns</h1>"
            '<p class="muted">Every send task instance is a campaign. Open one for its delivery funnel, delivery '
            "over time, failures and recipients.</p>"
            '<table id="campaigns"><thead><tr><th>Campaign</th><th>DAG</th><th>Run</th><th>Task</th><th>Kind</th>'
            f'<th>Sent at</th><th class="num">Recipients</th></tr></thead><tbody>{rows}</tbody></table>'
            + (_pager(base, listing["page"], listing["page_size"], listing["total"], {}) if listing["total"] else "")
            + ("" if listing["items"] else '<p class="muted">No campaigns yet.</p>')
        )
        return _page("MessageCentral campaigns", body)

    @router.get("/campaigns/{campaign_key}", response_class=HTMLResponse, name="mc_dashboard_campaign")
    async def campaign_page(
        request: Request,
        campaign_key: str,
        q: str = Query("", max_length=64),
        page: int = Query(1, ge=1, le=1_000_000),
    ) -> HTMLResponse:
        """One campaign: funnel, delivery curve, failures by error code, recipients (paged, searchable)."""
        store = await run_in_threadpool(get_store)
        summary = await run_in_threadpool(store.campaign_summary, campaign_key)
        campaign = await run_in_threadpool(store.get_campaign, campaign_key)
        if summary is None or campaign is None:
            raise HTTPException(status_code=404, detail=f"unknown campaign {campaign_key!r}")
        funnel = await run_in_threadpool(store.campaign_funnel, campaign_key, summary)
        curve = await run_in_threadpool(
            store.delivery_curve, campaign_key, int(summary["recipients"]), int(summary["delivered"])
        )
        failures = await run_in_threadpool(store.failures_by_error_code, campaign_key)
        term = q.strip()
        recipients = await run_in_threadpool(store.campaign_reports, campaign_key, page, _PAGE_SIZE, term or None)
        listing = request.url_for("mc_dashboard_campaigns").path
        here = request.url_for("mc_dashboard_campaign", campaign_key=campaign_key).path
        return _page(
            f"Campaign {campaign_key}",
            _campaign_body(campaign, summary, funnel, curve, failures, recipients, term, listing, here),
        )

    return router


def _campaign_body(
    campaign: dict[str, Any],
    summary: dict[str, Any],
    funnel: dict[str, int],
    curve: DeliveryCurve,
    failures: Sequence[tuple[str, int | None, int]],
    recipients: dict[str, Any],
    term: str,
    listing: str,
    here: str,
) -> str:
    task = _e(_task_label(campaign))
    cards = "".join(
        f'<div class="card" data-card="{key}"><span class="muted">{label}</span><b>{value}</b></div>'
        for key, label, value in (
            ("recipients", "Recipients", f"{summary['recipients']:,}"),
            ("delivered", "Delivered", f"{summary['delivered']:,}"),
            ("failed", "Failed", f"{summary['failed']:,}"),
            ("pending", "Not final yet", f"{summary['pending']:,}"),
            ("ratio", "Delivered ratio", _pct(summary["delivered"], summary["recipients"])),
        )
    )
    rows = "".join(
        f'<tr class="recipient" data-mobile="{_e(r["mobile"])}" data-status="{_e(r["status"] or "PENDING")}">'
        f'<td>+{_e(r["mobile"])}</td><td class="status-{_e(r["status"])}">{_e(r["status"] or "no report yet")}</td>'
        f'<td class="num">{_e("" if r["error_code"] is None else r["error_code"])}</td>'
        f"<td>{_e(_when(r['sent_at']))}</td><td>{_e(_when(r['done_date']))}</td>"
        f'<td class="muted">{_e(r["message_id"])}</td></tr>'
        for r in recipients["items"]
    )
    search_note = f" matching “{_e(term)}”" if term else ""
    undated = (
        f'<p class="muted">{curve.undated:,} delivered recipients have no delivery time and are not on the chart.</p>'
        if curve.undated
        else ""
    )
    if curve.sample > 1:
        undated += (
            f'<p class="muted" id="curve-sampled">Shape estimated from every {curve.sample:,}th delivered '
            "recipient, scaled to the exact delivered count.</p>"
        )
    return (
        f'<p><a href="{_e(listing)}">← All campaigns</a></p>'
        f'<h1>Campaign <span id="campaign-key">{_e(campaign["campaign_key"])}</span></h1>'
        f'<p class="muted">DAG <b>{_e(campaign["dag_id"])}</b> · run <b>{_e(campaign["run_id"])}</b> · task '
        f'<a target="_top" href="{_e(_airflow_ti_path(campaign))}"><b>{task}</b></a> · {_e(campaign["kind"])} · '
        f"sent {_e(_when(campaign['first_send_at']))}</p>"
        f'<div class="cards">{cards}</div>'
        '<div class="grid"><section><h2>Delivery funnel</h2>'
        f"{_funnel_svg(funnel)}{_reconciled_note(funnel.get('reconciled', 0))}</section>"
        "<section><h2>Delivered ratio over time since send</h2>"
        f"{_curve_svg(curve)}{undated}</section></div>"
        f"<h2>Failures by error code</h2>{_failures_html(failures)}"
        f"<h2>Recipients{search_note}</h2>"
        f'<form method="get" action="{_e(here)}" role="search"><input type="search" name="q" value="{_e(term)}" '
        'placeholder="Search by number, e.g. 98161" aria-label="Search recipients by number"> '
        "<button type=submit>Search</button></form>"
        '<table id="recipients"><thead><tr><th>Mobile</th><th>Latest status</th><th class="num">Error code</th>'
        f"<th>Sent at</th><th>Done at</th><th>Message id</th></tr></thead><tbody>{rows}</tbody></table>"
        + _pager(here, recipients["page"], recipients["page_size"], recipients["total"], {"q": term} if term else {})
    )
