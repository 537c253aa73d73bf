"""The daily retention flow end to end, on a real Prefect server, SQLite and the file outbox."""

from __future__ import annotations

import email
import uuid
from email import policy
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.conftest import AS_OF
from worklist import TaskStore


@pytest.fixture
def run(prefect_api, kamflow_home):
    """Run retention_run in-process against the session's Prefect server; returns the state."""
    from flows.retention import retention_run

    def _run(source: Path):
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            return retention_run(source=str(source), as_of=AS_OF.isoformat(), return_state=True)
    return _run


def store(home: Path) -> TaskStore:
    return TaskStore(f"sqlite:///{home / 'kamflow.db'}")


def outbox(home: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted((home / "outbox").glob("*.eml"))]


def test_run_creates_tasks_and_emails_then_rerun_adds_nothing(run, snapshot_dir, kamflow_home,
                                                              prefect_api):
    """A run stores tasks and writes .eml files naming account, action, due date and reason;
    the same snapshot again adds no task and no email."""
    state = run(snapshot_dir)
    assert state.is_completed(), state.message
    tasks = store(kamflow_home).list_tasks()
    assert tasks, "the generated snapshot has declining accounts: tasks are expected"
    messages = outbox(kamflow_home)
    owners = {t.owner_email for t in tasks}
    assert {m["To"] for m in messages} == owners  # one digest per owner
    for message in messages:
        body = message.get_body(("plain",)).get_content()
        mine = [t for t in tasks if t.owner_email == message["To"]]
        first = min(mine, key=lambda t: (t.priority, t.due_at, t.id))
        assert first.account_id in message["Subject"]
        for task in mine:
            assert task.account_id in body and task.rule_id in body
            assert task.due_at.strftime("%Y-%m-%d") in body
            assert task.reason.split(";")[0] in body
    counts = store(kamflow_home).counts()
    assert counts["unsent_emails"] == 0

    again = run(snapshot_dir)
    assert again.is_completed(), again.message
    assert store(kamflow_home).counts() == counts
    assert len(outbox(kamflow_home)) == len(messages)


def test_run_publishes_summary_and_actions_artifacts(run, snapshot_dir, prefect_api):
    """Ops see a markdown summary and a table of actions on the flow run page."""
    state = run(snapshot_dir)
    assert state.is_completed(), state.message
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(state.state_details
                                                                         .flow_run_id))])))
    by_key = {a.key: a for a in artifacts}
    assert {"retention-summary", "retention-actions"} <= set(by_key)
    summary = by_key["retention-summary"].data
    assert "accounts quarantined" in summary and "tasks created" in summary
    assert by_key["retention-actions"].type == "table"


def test_missing_required_column_stops_before_any_task_or_email(run, snapshot_dir,
                                                                  kamflow_home):
    """An accounts file without manager_email fails the run, names the column, sends nothing."""
    accounts = pd.read_csv(snapshot_dir / "accounts.csv", dtype=str)
    accounts.drop(columns=["manager_email"]).to_csv(snapshot_dir / "accounts.csv", index=False)
    state = run(snapshot_dir)
    assert state.is_failed()
    assert "manager_email" in state.message and "no email was sent" in state.message
    assert store(kamflow_home).counts()["tasks"] == 0
    assert not (kamflow_home / "outbox").exists() or not list((kamflow_home / "outbox").iterdir())
