"""`kamflow tasks show|ack|done|reassign`, `kamflow sla-watch` and `kamflow digest`, run as a
user runs them (subprocesses)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from tests.crash_harness import NOW, OWNERS, TITLES, decisions


def kamflow(*args: str, home: Path, api: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAMFLOW_HOME": str(home),
           "KAMFLOW_LINK_SECRET": "cli-test-secret-0123456789"}
    env.pop("PREFECT_HOME", None)
    env.pop("KAMFLOW_DATABASE_URL", None)
    if api:
        env["PREFECT_API_URL"] = api
    return subprocess.run([sys.executable, "-m", "kamflow.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A KAMFLOW_HOME whose task store holds the five harness tasks."""
    home = tmp_path / "home"
    home.mkdir()
    with TaskStore(f"sqlite:///{home / 'kamflow.db'}") as store:
        dispatch(decisions(), TITLES, OWNERS, store, "cli", NOW, BusinessCalendar(),
                 LinkSigner(b"c" * 32))
    return home


def test_ack_done_reassign_and_show_history(home: Path) -> None:
    """ack, reassign (the new owner is emailed) and done each land in the history that `tasks
    show` prints, with who did it; repeating done is harmless; a closed task cannot be acked."""
    assert kamflow("tasks", "ack", "1", "--by", "wang", home=home).returncode == 0
    moved = kamflow("tasks", "reassign", "1", "--to", "zhao@staff.example.test", "--note",
                    "on leave", "--by", "wang", home=home)
    assert moved.returncode == 0, moved.stderr
    done = kamflow("tasks", "done", "1", "--note", "called, renewed", "--by", "zhao", home=home)
    assert done.returncode == 0 and "now done" in done.stdout
    assert "already done" in kamflow("tasks", "done", "1", home=home).stdout
    refused = kamflow("tasks", "ack", "1", home=home)
    assert refused.returncode == 2 and "already done" in refused.stderr
    shown = json.loads(kamflow("tasks", "show", "1", "--json", home=home).stdout)
    assert shown["status"] == "done" and shown["owner_email"] == "zhao@staff.example.test"
    assert [h["event"] for h in shown["history"]] == ["created", "acknowledged", "reassigned",
                                                      "done"]
    assert "wang@staff.example.test -> zhao@staff.example.test by wang: on leave" in \
        shown["history"][2]["detail"]
    assert shown["history"][3]["detail"] == "by zhao: called, renewed"
    text = kamflow("tasks", "show", "1", home=home).stdout
    assert "reason:" in text and "churn_band=critical" in text and "reassigned" in text
    with TaskStore(f"sqlite:///{home / 'kamflow.db'}") as store:
        assert [e.recipient for e in store.unsent_emails() if e.kind == "reassignment"] == [
            "zhao@staff.example.test"]


def test_unknown_task_is_a_one_line_error(home: Path) -> None:
    """A task id that does not exist exits 2 naming it, without a traceback."""
    result = kamflow("tasks", "show", "999", home=home)
    assert result.returncode == 2 and "no task with id 999" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sla_watch_and_digest_commands_run_the_flows(home: Path, prefect_api: str) -> None:
    """`kamflow sla-watch --now` escalates the overdue tasks and sends the emails; `kamflow
    digest --force` sends each owner today's digest once."""
    later = (NOW + dt.timedelta(days=3)).isoformat()
    watched = kamflow("sla-watch", "--now", later, home=home, api=prefect_api)
    assert watched.returncode == 0, watched.stderr
    assert "5 overdue, 5 escalated" in watched.stdout
    assert len(list((home / "outbox").glob("escalation-*.eml"))) == 1  # one per new owner
    first = kamflow("digest", "--force", "--now", later, home=home, api=prefect_api)
    again = kamflow("digest", "--force", "--now", later, home=home, api=prefect_api)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert "0 digest(s) queued" in again.stdout
    # with the shipped directory every one of these owners reports to the sales director
    digests = list((home / "outbox").glob("digest-*.eml"))
    assert len(digests) == 1 and b"ka-sales-director@operator.example" in digests[0].read_bytes()


def test_queued_tasks_are_listed_and_value_at_risk_is_shown(tmp_path: Path) -> None:
    """With managers allowed one new task a day, `tasks list --status queued` lists the tasks
    waiting for capacity, and `tasks show` gives a task's value at risk a month and a year."""
    import dataclasses

    from kamflow.worklist.capacity import Capacity

    home = tmp_path / "home"
    home.mkdir()
    owners = dataclasses.replace(OWNERS, capacity={"account_manager": Capacity(1, None)})
    frame = decisions().assign(value_at_risk=[12_300.0, 50.0, 80.0, 10.0, 20.0])
    with TaskStore(f"sqlite:///{home / 'kamflow.db'}") as store:
        dispatch(frame, TITLES, owners, store, "cli", NOW, BusinessCalendar())
    queued = json.loads(kamflow("tasks", "list", "--status", "queued", "--json",
                                home=home).stdout)
    # each manager got the one with more revenue at risk: wang KA1, li KA4
    assert sorted(t["account_id"] for t in queued) == ["KA2", "KA3"]
    assert all(t["status"] == "queued" for t in queued)
    text = kamflow("tasks", "show", "1", home=home).stdout
    assert "12,300 CNY a month (revenue at risk ¥147,600 a year)" in text
