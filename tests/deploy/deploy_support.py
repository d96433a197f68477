"""Shared by the deployment tests: the REST client of the cluster's api-server, and the figures they report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from mc_cluster import Cluster

#: Figures printed at the end of the session and written to tests/artifacts/deploy/figures.json.
FIGURES: dict[str, Any] = {}


class Api:
    """The api-server's REST API with an admin JWT, plus the sandbox's admin endpoints."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.base = cluster.api_url
        self.http = httpx.Client(timeout=60)
        self.token = cluster.token()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"{self.base}{path}", headers=self.auth, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response.json()

    # -- DAGs and runs ---------------------------------------------------------------------------------

    def wait_for_dags(self, dag_ids: set[str], timeout: float = 180) -> None:
        """Until the dag-processor has serialized every DAG (the API lists it)."""
        deadline = time.monotonic() + timeout
        while True:
            listed = {d["dag_id"] for d in self.json("GET", "/api/v2/dags", params={"limit": 100})["dags"]}
            if dag_ids <= listed:
                return
            assert time.monotonic() < deadline, f"DAGs not parsed: {sorted(dag_ids - listed)}"
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        assert self.json("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})["is_paused"] is False

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """``POST /api/v2/dags/{dag_id}/dagRuns`` exactly as a user does: no logical date."""
        body = self.json("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        assert body["logical_date"] is None
        return str(body["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"))

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return list(self.json("GET", path, params={"limit": 100})["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"))

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/return_value"
        )
        body = self.json("GET", path, params={"map_index": map_index, "deserialize": True})
        value = body["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[str]:
        """The events of a try's log as the UI shows them (the task's and its triggers' log files)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
        body = self.json("GET", path, params={"full_content": True})
        return [str(line.get("event", "")) if isinstance(line, dict) else str(line) for line in body["content"]]

    def wait_run(
        self, dag_id: str, run_id: str, timeout: float, on_poll: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if on_poll is not None:
                on_poll()
            run = self.run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                states = {(t["task_id"], t["map_index"]): t["state"] for t in self.task_instances(dag_id, run_id)}
                raise AssertionError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f} s: {states}")
            time.sleep(1)

    # -- the sandbox -----------------------------------------------------------------------------------

    def sandbox(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.cluster.sandbox_url}/__sandbox/{path}", **kwargs)
        assert response.status_code == 200, f"sandbox {path}: {response.status_code} {response.text[:500]}"
        return response.json()
