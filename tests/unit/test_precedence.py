"""
The one precedence rule (reports/store/precedence.py): its Python form and both SQL forms agree.

For arbitrary pairs of reports of one message, (status, final, doneDate, submitDate) with missing dates,
the Python verdict decides exactly what the report upsert writes and what the recipient update takes, run on
a real SQLite and a real PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from helpers import REPORT_T0
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from airflow_provider_messagecentral.reports.models import FINAL_STATUSES
from airflow_provider_messagecentral.reports.store import ReportStore
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.ingest import IngestStatements
from airflow_provider_messagecentral.reports.store.precedence import (
    EPOCH,
    Standing,
    Verdict,
    outranks,
    rank_params,
    verdict,
)

T0 = REPORT_T0
EXAMPLES = 150

statuses = st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "UNKNOWN", "ACCEPTD"])
# Few distinct dates, so ties (the epoch against a missing date included) come up often; plus any date.
dates = st.one_of(
    st.none(),
    st.sampled_from([EPOCH, T0, T0 + timedelta(seconds=1), T0 + timedelta(microseconds=1), datetime(1969, 12, 31)]),
    st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2100, 1, 1)),
)
standings = st.builds(Standing, statuses, st.booleans(), dates, dates)
# A recipient row has no ``final`` column: it is read from the status it holds.
held_by_recipients = st.builds(
    lambda status, done, submit: Standing(status, status in FINAL_STATUSES, done, submit), statuses, dates, dates
)


def documented_verdict(old: Standing, new: Standing) -> Verdict:
    """The rule as documented: same status is a duplicate; final beats non-final; then doneDate, submitDate."""
    if new.status == old.status:
        return "duplicate"
    if new.is_final != old.is_final:
        return "store" if new.is_final else "stale"
    new_dates = (new.done_date or EPOCH, new.submit_date or EPOCH)
    old_dates = (old.done_date or EPOCH, old.submit_date or EPOCH)
    return "store" if new_dates >= old_dates else "stale"


@settings(max_examples=500, deadline=None)
@given(standings, standings)
def test_the_verdict_is_the_documented_rule(old: Standing, new: Standing) -> None:
    assert verdict(old, new) == documented_verdict(old, new)
    assert outranks(new, old) == (new.rank() >= old.rank())


def _report_row(standing: Standing) -> dict[str, object]:
    return {
        "message_id": "m1",
        "status": standing.status,
        "is_final": int(standing.is_final),
        "error_code": None,
        "mobile": None,
        "country_code": None,
        "client_id": None,
        "submit_date": standing.submit_date,
        "done_date": standing.done_date,
        "received_at": T0,
        "extra": None,
    }


def test_the_report_upsert_writes_exactly_what_the_verdict_stores(store: ReportStore) -> None:
    upsert = IngestStatements.build(store.dialect).upsert

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(standings, standings)
    def check(old: Standing, new: Standing) -> None:
        with store.engine.connect() as conn:
            conn.begin()
            conn.execute(insert(t.reports).values(**_report_row(old)))
            written = set(conn.execute(upsert, _report_row(new)).scalars())
            held = conn.execute(select(t.reports.c.status).where(t.reports.c.message_id == "m1")).scalar_one()
            conn.rollback()
        expected = verdict(old, new)
        assert ("m1" in written) == (expected == "store"), (old, new, expected)
        assert held == (new.status if expected == "store" else old.status)

    check()


def test_the_recipient_update_takes_exactly_what_outranks_it(store: ReportStore) -> None:
    by_id = IngestStatements.build(store.dialect).by_id_only
    recipient = {
        "campaign_key": "mc-test",
        "unit_key": "u",
        "mobile": "919816111111",
        "message_id": "m1",
        "sent_at": T0,
        "report_message_id": "m1",
        "match_kind": "id",
        "match_date": T0,
    }

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(held_by_recipients, standings)
    def check(old: Standing, new: Standing) -> None:
        params = {
            "b_mid": "m1",
            "b_status": new.status,
            "b_error": None,
            "b_submit": new.submit_date,
            "b_done": new.done_date,
            "b_date": new.submit_date or new.done_date or T0,
            **rank_params(new),
        }
        with store.engine.connect() as conn:
            conn.begin()
            conn.execute(
                insert(t.recipients).values(
                    **recipient, status=old.status, submit_date=old.submit_date, done_date=old.done_date
                )
            )
            taken = conn.execute(by_id, params).rowcount
            conn.rollback()
        assert taken == int(outranks(new, old)), (old, new)

    check()


def test_a_recipient_holding_another_report_or_none_always_takes_the_match(store: ReportStore) -> None:
    """Precedence guards only the recipient's own message; other reports follow the matching rules."""
    by_id = IngestStatements.build(store.dialect).by_id_only
    stale = Standing("UNKNOWN", False, None, None)
    params = {"b_mid": "m1", "b_status": "UNKNOWN", "b_error": None, "b_submit": None, "b_done": None, "b_date": T0}
    for held_id in (None, "m0"):
        with store.engine.connect() as conn:
            conn.begin()
            conn.execute(
                insert(t.recipients).values(
                    campaign_key="mc-test",
                    unit_key="u",
                    mobile="919816111111",
                    message_id="m1",
                    sent_at=T0,
                    report_message_id=held_id,
                    status=None if held_id is None else "DELIVRD",
                    done_date=T0,
                )
            )
            assert conn.execute(by_id, {**params, **rank_params(stale)}).rowcount == 1
            conn.rollback()
