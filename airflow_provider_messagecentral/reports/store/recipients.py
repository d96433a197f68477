"""
Recipients of accepted send units, and the campaign window their reports are matched in.

The statements the ledger (:mod:`.ledger`) and reconciliation (:mod:`.reconcile`) run inside their write
transactions: lock a campaign row, record an accepted unit's recipients (counted in the campaign, with the
reports already stored matched onto them by :mod:`.ingest`'s rules), and widen the campaign's matching window
to a send attempt whose answer may never be recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, func, insert, or_, select, type_coerce, update
from sqlalchemy.engine import Connection, Dialect

from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.value_list import each_of

#: Reports match a campaign's recipients by mobile when dated in [first send - 1 min, last send + 3 days].
WINDOW_BEFORE = timedelta(minutes=1)
WINDOW_AFTER = timedelta(days=3)
#: Recipient columns that record the report matched to the recipient.
_MATCH_COLUMNS = ("report_message_id", "match_kind", "match_date", "status", "error_code", "submit_date", "done_date")

Window = tuple[datetime, datetime]


def lock_campaign(conn: Connection, campaign_key: str) -> dict[str, Any]:
    """
    The campaign's key, recipient count, send times and window, its row locked until the transaction ends.

    Every writer of a campaign's units locks the campaign row first, then the ledger and recipient rows.

    :raises LookupError: the campaign is not recorded.
    """
    cc = t.campaigns.c
    campaign = (
        conn.execute(
            select(cc.campaign_key, cc.first_send_at, cc.last_send_at, cc.window_start, cc.window_end, cc.recipients)
            .where(cc.campaign_key == campaign_key)
            .with_for_update()
        )
        .mappings()
        .first()
    )
    if campaign is None:
        raise LookupError(f"campaign {campaign_key!r} is not recorded: call ensure_campaign() before mark_accepted()")
    return dict(campaign)


def record_recipients(
    conn: Connection,
    campaign: dict[str, Any],
    unit_key: str,
    numbers: Sequence[str],
    ids: tuple[str | None, str | None],
    sent: datetime,
) -> int:
    """
    Replace the recipient rows of an accepted unit, count them in the (locked) ``campaign`` and match the
    reports already stored onto them. ``campaign`` (as :func:`lock_campaign` read it) is updated in place, so
    that several units can be recorded in one transaction.

    The recipients no report matched (usually all of them) go in with one statement that makes their rows
    from the list of numbers bound as one value (:func:`.value_list.each_of`), in the list's order; the few
    matched ones with their match, one row each.

    :param numbers: the unit's recipients, digits with country code.
    :param ids: the send's transaction and verification ids (``None`` when unknown).
    :param sent: when the unit was sent (naive UTC).
    :returns: how many of the recipients a stored report matched.
    """
    campaign_key = campaign["campaign_key"]
    tx, vid = ids
    removed = conn.execute(
        delete(t.recipients).where(t.recipients.c.campaign_key == campaign_key, t.recipients.c.unit_key == unit_key)
    ).rowcount
    window = _extend_campaign(conn, campaign, sent, int(removed or 0), len(numbers))
    matches = existing_matches(conn, tx, numbers, window)
    send = {
        "campaign_key": campaign_key,
        "unit_key": unit_key,
        "message_id": tx,
        "verification_id": vid,
        "sent_at": sent,
    }
    plain = [mobile for mobile in numbers if mobile not in matches] if matches else numbers
    if plain:
        conn.execute(_insert_each(conn.dialect, plain), send)
    if matches:
        rows = [{**send, "mobile": mobile, **matches[mobile]} for mobile in numbers if mobile in matches]
        conn.execute(insert(t.recipients), rows)
    return len(matches)


def _insert_each(dialect: Dialect, mobiles: Sequence[str]) -> Any:
    """``INSERT`` of one unmatched recipient row per number of ``mobiles``, the send's values bound by name."""
    rc = t.recipients.c
    listed = each_of(dialect, mobiles, "mobiles")
    send = [rc.campaign_key, rc.unit_key, rc.message_id, rc.verification_id, rc.sent_at]
    bound = [type_coerce(bindparam(column.name), column.type) for column in send]
    return insert(t.recipients).from_select(["mobile", *(c.name for c in send)], select(listed.c.value, *bound))


def _extend_campaign(conn: Connection, campaign: dict[str, Any], sent: datetime, removed: int, added: int) -> Window:
    """
    Count a unit's recipients (``removed`` replaced by ``added``) and its send; returns the new window: the send
    times' window, never narrower than the stored one (which also covers pending attempts: :func:`widen_window`).
    """
    first = min(d for d in (campaign["first_send_at"], sent) if d is not None)
    last = max(d for d in (campaign["last_send_at"], sent) if d is not None)
    start = min(d for d in (campaign["window_start"], first - WINDOW_BEFORE) if d is not None)
    end = max(d for d in (campaign["window_end"], last + WINDOW_AFTER) if d is not None)
    values = {
        "first_send_at": first,
        "last_send_at": last,
        "window_start": start,
        "window_end": end,
        "recipients": max(0, int(campaign["recipients"]) - removed) + added,
    }
    conn.execute(update(t.campaigns).where(t.campaigns.c.campaign_key == campaign["campaign_key"]).values(**values))
    campaign.update(values)
    return start, end


def widen_window(conn: Connection, campaign_key: str, attempt: datetime) -> None:
    """Widen the campaign's matching window to cover a send attempt at ``attempt``; its send times stay."""
    cc = t.campaigns.c
    start, end = attempt - WINDOW_BEFORE, attempt + WINDOW_AFTER
    earlier = or_(cc.window_start.is_(None), cc.window_start > start)
    later = or_(cc.window_end.is_(None), cc.window_end < end)
    conn.execute(
        update(t.campaigns)
        .where(cc.campaign_key == campaign_key, or_(earlier, later))
        .values(
            window_start=case((earlier, start), else_=cc.window_start),
            window_end=case((later, end), else_=cc.window_end),
        )
    )


def existing_matches(
    conn: Connection, transaction_id: str | None, mobiles: Sequence[str], window: Window
) -> dict[str, dict[str, Any]]:
    """
    Reports already stored for new recipients: ``mobile -> recipient columns of the match``.

    By id: the report whose messageId is the send's transactionId (its mobile among ``mobiles``, or no mobile
    and a single recipient). Else by mobile: the latest report (by submit date, else done date, else arrival;
    of equal dates, the one stored last) for the number dated inside ``window``. One query for the numbers,
    whatever their count: they go to the database as one value (PostgreSQL: an array; SQLite: a JSON array).
    """
    r = t.reports.c
    cols = (r.message_id, r.mobile, r.status, r.error_code, r.submit_date, r.done_date, r.received_at)
    found: dict[str, dict[str, Any]] = {}
    wanted = set(mobiles)
    if transaction_id is not None:
        row = conn.execute(select(*cols).where(r.message_id == transaction_id)).mappings().first()
        if row is not None and (row["mobile"] in wanted or (row["mobile"] is None and len(wanted) == 1)):
            mobile = row["mobile"] if row["mobile"] is not None else next(iter(wanted))
            found[mobile] = _match_columns(row, "id")
    unique = list(wanted.difference(found))
    if not unique:
        return found
    dated = func.coalesce(r.submit_date, r.done_date, r.received_at)
    listed = each_of(conn.dialect, unique, "mobiles")  # the numbers first: one index probe each
    query = (
        select(*cols)
        .select_from(listed)
        .join(t.reports, r.mobile == listed.c.value)
        .where(dated.between(*window))
        .order_by(r.id)
    )
    for row in conn.execute(query).mappings():
        date = row["submit_date"] or row["done_date"] or row["received_at"]
        if not window[0] <= date <= window[1]:
            continue
        current = found.get(row["mobile"])
        if current is None or (current["match_kind"] == "mobile" and date >= current["match_date"]):
            found[row["mobile"]] = _match_columns(row, "mobile")
    return found


def _match_columns(row: Any, kind: str) -> dict[str, Any]:
    """The recipient columns (:data:`_MATCH_COLUMNS`) that record a match with report ``row``."""
    return {
        "report_message_id": row["message_id"],
        "match_kind": kind,
        "match_date": row["submit_date"] or row["done_date"] or row["received_at"],
        "status": row["status"],
        "error_code": row["error_code"],
        "submit_date": row["submit_date"],
        "done_date": row["done_date"],
    }
