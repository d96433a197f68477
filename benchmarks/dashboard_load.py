"""
Page-load time of the delivery dashboard on a large SQLite store (default: one campaign, 1,000,000 reports).

    .venv/bin/python benchmarks/dashboard_load.py --reports 1000000 --db /tmp/mc-dash-1m.db

Builds the store through its API (ensure_campaign, mark_accepted per 1,000-recipient chunk, ingest of
delivery reports in batches) unless the file exists, then times the dashboard's pages through the ASGI app
(the same router the api-server serves). Prints and writes JSON to benchmarks/out/dashboard_load.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.dashboard import dashboard_router
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import ReportStore

STATUSES = (("DELIVRD", 0, 0.9), ("UNDELIV", 1, 0.04), ("EXPIRED", 2, 0.03), ("REJECTD", 3, 0.01), ("UNKNOWN", 0, 0.02))


def build(store: ReportStore, reports: int, chunk: int = 1000) -> str:
    key = make_campaign_key("bench_dag", "bench_run", "send")
    store.ensure_campaign(key, dag_id="bench_dag", run_id="bench_run", task_id="send", kind="bulk")
    rng = random.Random(7)
    sent = datetime(2026, 1, 1, 9, 30)
    weights = [w for _s, _c, w in STATUSES]
    for start in range(0, reports, chunk):
        mobiles = [f"9198{n:08d}" for n in range(start, min(start + chunk, reports))]
        store.mark_accepted(
            key,
            f"chunk-{start // chunk}",
            transaction_id=None,
            verification_id=None,
            response={},
            mobiles=mobiles,
            sent_at=sent + timedelta(seconds=start // 5000),
        )
        batch = []
        for mobile in mobiles:
            status, code, _w = rng.choices(STATUSES, weights)[0]
            done = sent + timedelta(seconds=start // 5000 + int(rng.expovariate(1 / 90)))
            batch.append(
                DeliveryReport(
                    messageId=f"m-{mobile}",
                    status=status,
                    errorCode=code,
                    mobile=mobile,
                    submitDate=sent,
                    doneDate=done,
                )
            )
        store.ingest(batch, [])
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--db", default="/tmp/mc-dashboard-1m.db")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = Path(args.db)
    fresh = not path.exists()
    store = ReportStore(f"sqlite:///{path}")
    started = time.perf_counter()
    key = build(store, args.reports) if fresh else make_campaign_key("bench_dag", "bench_run", "send")
    build_s = time.perf_counter() - started
    app = FastAPI()
    app.include_router(dashboard_router(lambda: store))
    client = TestClient(app)
    pages = {
        "campaigns": "/dashboard",
        "campaign": f"/dashboard/campaigns/{key}",
        "campaign_page_200": f"/dashboard/campaigns/{key}?page=200",
        "campaign_search": f"/dashboard/campaigns/{key}?q=9198000123",
    }
    timings = {}
    for name, url in pages.items():
        runs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            response = client.get(url)
            runs.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text[:500]
        timings[name] = {"median_s": round(statistics.median(runs), 3), "max_s": round(max(runs), 3)}
    result = {
        "reports": store.stats()["reports"],
        "recipients": store.stats()["recipients"],
        "build_s": round(build_s, 1) if fresh else None,
        "pages": timings,
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "dashboard_load.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
