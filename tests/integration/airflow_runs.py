"""
What the integration tests read back from Airflow's metadata DB after ``dag.test()``, and the two things a test
does that the scheduler or a person would: start an asset-triggered run, answer an approval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest


def xcoms(dag_id: str, run_id: str) -> dict[tuple[str, int], Any]:
    """Return values of a DAG run's task instances, keyed by (task_id, map_index)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value"
            )
        ).all()
        return {(row.task_id, row.map_index): XComModel.deserialize_value(row) for row in rows}


def states(dag_run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def asset_events(asset_name: str, source_run_id: str | None = None) -> list[dict[str, Any]]:
    """The stored events of an asset (oldest first): source DAG/task/run and extra."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(AssetEvent)
        .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        .where(AssetModel.name == asset_name)
        .order_by(AssetEvent.id)
    )
    if source_run_id is not None:
        query = query.where(AssetEvent.source_run_id == source_run_id)
    with create_session() as session:
        return [
            {"dag_id": e.source_dag_id, "task_id": e.source_task_id, "run_id": e.source_run_id, "extra": e.extra}
            for e in session.scalars(query).all()
        ]


def queued_for(dag_id: str) -> list[int]:
    """Asset ids Airflow queued a run of ``dag_id`` for (the scheduler's asset-triggered DAG run queue)."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(AssetDagRunQueue.asset_id).where(AssetDagRunQueue.target_dag_id == dag_id)))


def unpause(dag_id: str) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


@contextmanager
def runs_consume_queued_asset_events(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Make ``dag.test()`` start its run as the scheduler starts an asset-triggered one (``catchup=False``): the run
    consumes the events of its queued assets since the DAG started scheduling on them, not consumed by an earlier
    run (so ``triggering_asset_events`` holds them), and the queue entries go. ``dag.test()`` itself always
    starts a manual run that consumed nothing.
    """
    import airflow.models.dagrun as dagrun_module
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, DagScheduleAssetReference
    from sqlalchemy import delete, func, select

    original = dagrun_module.get_or_create_dagrun

    def create(**kwargs: Any) -> Any:
        run = original(**kwargs)
        session = kwargs["session"]
        queue = AssetDagRunQueue.target_dag_id == run.dag_id
        asset_ids = list(session.scalars(select(AssetDagRunQueue.asset_id).where(queue)))
        scheduled_since = session.scalar(
            select(func.min(DagScheduleAssetReference.created_at)).where(DagScheduleAssetReference.dag_id == run.dag_id)
        )
        events = session.scalars(
            select(AssetEvent).where(
                AssetEvent.asset_id.in_(asset_ids),
                AssetEvent.timestamp > scheduled_since,
                ~AssetEvent.created_dagruns.any(dag_id=run.dag_id),
            )
        ).all()
        run.consumed_asset_events.extend(events)
        session.execute(delete(AssetDagRunQueue).where(queue))
        session.commit()
        return run

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", create)
    yield
    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", original)


class Approver(threading.Thread):
    """
    Answer a human-in-the-loop task of the one running DAG run of ``dag_id`` once it waits for input, through
    the handler of Airflow's REST API (``PATCH .../taskInstances/{task_id}/-1/hitlDetails``), as the UI does.

    Start it before ``dag.test()`` (which must run in the main thread); ``run_id`` is the run it answered.
    An answer the API refuses is tried again until ``timeout``; when no answer could be given, the waiting
    task instance is failed, so that ``dag.test()`` (which waits for a human without a deadline, and whose
    task timeouts cancel pytest-timeout's alarm) returns and the test reports :attr:`error`.
    """

    def __init__(self, dag_id: str, task_id: str, option: str, timeout: float = 120) -> None:
        super().__init__(daemon=True)
        self.dag_id, self.task_id, self.option, self.timeout = dag_id, task_id, option, timeout
        self.run_id: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._answer()
        except BaseException as err:  # reported by the test
            self.error = err
            self._fail_waiting_task()

    def _fail_waiting_task(self) -> None:
        """Fail the task left waiting for input: ``dag.test()`` then ends the run instead of waiting forever."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import update

        with create_session() as session:
            session.execute(
                update(TaskInstance)
                .where(TaskInstance.dag_id == self.dag_id, TaskInstance.task_id == self.task_id)
                .where(TaskInstance.state.in_([TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED]))
                .values(state=TaskInstanceState.FAILED)
            )

    def _waiting(self) -> tuple[str, Any] | None:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.execute(
                select(TaskInstance.run_id, TaskInstance.state)
                .join(DagRun, (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id))
                .where(TaskInstance.dag_id == self.dag_id, TaskInstance.task_id == self.task_id)
                .where(DagRun.state == "running")
            ).first()
        if row is None or str(row.state) not in ("awaiting_input", "deferred", "TaskInstanceState.AWAITING_INPUT"):
            return None
        return row.run_id, row.state

    def _answer(self) -> None:
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.utils.session import create_session

        deadline = time.monotonic() + self.timeout
        while (waiting := self._waiting()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.dag_id}.{self.task_id} never waited for input")
            time.sleep(0.2)
        user = SimpleNamespace(get_id=lambda: "approver", get_name=lambda: "Approver")
        self.run_id = waiting[0]
        while True:
            try:
                with create_session() as session:
                    update_hitl_detail(
                        dag_id=self.dag_id,
                        dag_run_id=self.run_id,
                        task_id=self.task_id,
                        update_hitl_detail_payload=UpdateHITLDetailPayload(
                            chosen_options=[self.option], params_input={}
                        ),
                        user=user,  # type: ignore[arg-type]
                        session=session,
                        map_index=-1,
                    )
                return
            except Exception:  # e.g. the form not recorded yet when the state already said awaiting input
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def hitl_form(dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """What the approval form showed and what was answered (Airflow's HITL detail of the task instance)."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        detail = session.scalars(
            select(HITLDetail)
            .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)
        ).one()
        return {
            "subject": detail.subject,
            "body": detail.body,
            "options": list(detail.options),
            "chosen_options": list(detail.chosen_options or []),
        }
