"""SLA escalation: overdue tasks climb owner -> supervisor -> department head, one step per
sla_watch run, each step in the history, emailed to the new owner and sent as a Prefect event."""

from __future__ import annotations

import datetime as dt
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from kamflow import config
from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch, escalate_overdue
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from tests.crash_harness import NOW, OWNERS, TITLES, decisions

HEAD = "ka-head@operator.example"
DIRECTOR = "ka-sales-director@operator.example"


def seeded(url: str, owners=OWNERS) -> TaskStore:
    store = TaskStore(url)
    dispatch(decisions(), TITLES, owners, store, "seed", NOW, BusinessCalendar(),
             LinkSigner(b"s" * 32))
    return store


def test_escalation_climbs_the_ladder_one_step_per_run(tmp_path: Path) -> None:
    """Overdue: manager -> supervisor -> head, one step per run with a new business-time
    deadline; at the head it stays; each step is a history row and an email to the new owner."""
    store = seeded(f"sqlite:///{tmp_path / 'k.db'}")
    calendar = BusinessCalendar()
    wang_task = next(t for t in store.list_tasks() if t.owner_email == "wang@staff.example.test")
    assert escalate_overdue(store, OWNERS, calendar, 1, NOW + dt.timedelta(hours=1)).overdue == 0

    first = escalate_overdue(store, OWNERS, calendar, 1, NOW + dt.timedelta(days=3), TITLES,
                             LinkSigner(b"s" * 32))
    assert {s["to"] for s in first.escalated} == {"zhao@staff.example.test",
                                                   "head@staff.example.test"}
    task = store.get_task(wang_task.id)
    assert (task.owner_email, task.status, task.escalation_level) == (
        "zhao@staff.example.test", "escalated", 1)
    # the new deadline is one working day after the step, inside working hours (Shanghai)
    due = task.due_at.replace(tzinfo=dt.UTC).astimezone(calendar.zone)
    assert due.weekday() < 5 and calendar.start <= due.time() <= calendar.end

    second = escalate_overdue(store, OWNERS, calendar, 1, NOW + dt.timedelta(days=8))
    assert store.get_task(wang_task.id).owner_email == "head@staff.example.test"
    third = escalate_overdue(store, OWNERS, calendar, 1, NOW + dt.timedelta(days=30))
    assert third.escalated == [] and set(third.at_top) == {t.id for t in store.list_tasks()}
    assert len(second.escalated) == 4  # the KA-department task was already with the head

    history = store.history(wang_task.id)
    assert [e.event for e in history] == ["created", "escalated", "escalated"]
    assert "wang@staff.example.test -> zhao@staff.example.test" in history[1].detail
    assert "zhao@staff.example.test -> head@staff.example.test" in history[2].detail
    emails = [e for e in store.unsent_emails() if e.kind == "escalation"]
    assert sorted(e.recipient for e in emails if str(wang_task.id) in e.task_ids.split(",")) \
        == ["head@staff.example.test", "zhao@staff.example.test"]
    # one email per new owner and run: zhao once (four tasks), the head once per run
    assert sorted((e.recipient, len(e.task_ids.split(","))) for e in emails) == [
        ("head@staff.example.test", 1), ("head@staff.example.test", 4),
        ("zhao@staff.example.test", 4)]
    zhao = next(e for e in emails if e.recipient == "zhao@staff.example.test")
    assert "逾期任务升级给您" in zhao.subject and "主动关怀回访" in zhao.subject  # in zh-CN
    assert zhao.body_text.count("/t/v1.") == 8  # each task with its two one-click links
    store.dispose()


def test_acknowledged_or_done_tasks_behave(tmp_path: Path) -> None:
    """A done task never escalates; an acknowledged one still does once its deadline passes."""
    store = seeded(f"sqlite:///{tmp_path / 'k.db'}")
    first, second = store.list_tasks()[:2]
    store.transition(first.id, "done", NOW, "wang")
    store.transition(second.id, "ack", NOW, "wang")
    result = escalate_overdue(store, OWNERS, BusinessCalendar(), 1, NOW + dt.timedelta(days=3))
    moved = {s["task_id"] for s in result.escalated}
    assert first.id not in moved and second.id in moved
    store.dispose()


def _events(api: str, minimum: int) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + 30
    events: list = []
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            page = client.read_events(EventFilter(
                event=EventNameFilter(name=["kamflow.task.escalated"])), limit=50)
            events = page.events
            if len(events) >= minimum:
                break
            time.sleep(0.5)
    return events


@pytest.mark.slow
def test_sla_watch_flow_escalates_emails_and_emits_events(prefect_api: str, kamflow_home: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The sla_watch flow on a real Prefect server, with the shipped owners directory: each
    overdue task moves one rung per run (manager -> sales director -> head), the new owners'
    emails land in the outbox, and one kamflow.task.escalated event per step reaches Prefect."""
    from kamflow.flows.sla_watch import escalation_event_id, sla_watch

    monkeypatch.setenv("KAMFLOW_LINK_SECRET", "a-test-secret-that-is-long-enough")
    kamflow_home.mkdir(parents=True)
    store = seeded(f"sqlite:///{kamflow_home / 'kamflow.db'}", config.load_owners())
    ids = [t.id for t in store.list_tasks()]
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        first = sla_watch(now=(NOW + dt.timedelta(days=3)).isoformat(), return_state=True)
        second = sla_watch(now=(NOW + dt.timedelta(days=8)).isoformat(), return_state=True)
    assert first.is_completed() and second.is_completed(), (first.message, second.message)
    tasks = store.list_tasks()
    assert {t.owner_email for t in tasks} == {HEAD}
    manager_task = next(t for t in tasks if t.account_id == "KA1")
    steps = [e.detail for e in store.history(manager_task.id) if e.event == "escalated"]
    assert len(steps) == 2 and DIRECTOR in steps[0] and f"{DIRECTOR} -> {HEAD}" in steps[1]
    assert store.counts()["unsent_emails"] == 0
    sent = [BytesParser(policy=policy.default).parsebytes(p.read_bytes())
            for p in (kamflow_home / "outbox").glob("escalation-*.eml")]
    # one email per new owner and run: the director's lists the four manager tasks; the head
    # gets the department's task in the first run and those four in the second
    assert sorted(m["To"] for m in sent) == [HEAD, HEAD, DIRECTOR]
    director = next(m for m in sent if m["To"] == DIRECTOR)
    assert director.get_body(("plain",)).get_content().count("/t/v1.") == 8  # 4 tasks x 2 links
    events = _events(prefect_api, 9)
    mine = {e.id for e in events} & {escalation_event_id(i, lvl) for i in ids for lvl in (1, 2)}
    assert len(mine) == 9  # 5 first steps + 4 second steps, no more, no fewer
    sample = next(e for e in events if e.id == escalation_event_id(manager_task.id, 2))
    assert sample.resource.id == f"kamflow.task.{manager_task.id}"
    assert sample.payload["to"] == HEAD and sample.payload["level"] == "2"
    store.dispose()


def test_the_escalation_artifact_shows_times_in_the_business_zone() -> None:
    """The sla_watch artifact row shows when a task fell overdue and its new deadline in the
    calendar's zone, named; the other fields are as the Prefect event carries them."""
    from kamflow.flows.sla_watch import readable_step

    step = {"task_id": 7, "overdue_since": "2026-12-03T10:00:00+00:00",
            "due_at": "2026-12-11T02:00:00+00:00"}
    assert readable_step(step, BusinessCalendar()) == {
        "task_id": 7, "overdue_since": "2026-12-03 18:00 Asia/Shanghai",
        "due_at": "2026-12-11 10:00 Asia/Shanghai"}
