"""Task store and task planning, on SQLite and on the local PostgreSQL server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from kamflow.worklist import (
    OutboxEmail,
    Owner,
    OwnerDirectory,
    RosterChange,
    Task,
    TaskEvent,
    TaskStore,
    plan_tasks,
)
from kamflow.worklist.models import AccountRecord
from tests.postgres import temporary_database

NOW = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
OWNERS = OwnerDirectory(
    roles={"key_account_department": Owner("KA dept", "ka@operator.example", "zh-CN")},
    fallback=Owner("Fallback queue", "fallback@operator.example"))
TITLES = {"care_call": "Proactive care call", "escalate_to_key_account": "Escalation"}


def decisions(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Decisions as the rules stage returns them: (account, action, owner_role, manager_email)."""
    return pd.DataFrame([{
        "account_id": account, "account_name": f"客户 {account}", "account_manager": "王芳",
        "manager_email": email, "value_class": "high", "churn_band": "critical",
        "churn_risk": 70.0, "rule_id": "r1", "action": action, "owner_role": role,
        "priority": 1 if action == "escalate_to_key_account" else 3, "due_in_days": 2.0,
        "cooldown_days": 30.0, "why": "churn_band=critical (= critical)",
        "churn_factors": "revenue_decline", "ruleset_version": "abc123",
    } for account, action, role, email in rows])


def render(name: str, email: str, tasks: list[dict]) -> tuple[str, str, str]:
    """A renderer that lists task ids, so tests can read what each email announced."""
    ids = ",".join(str(t["task_id"]) for t in tasks)
    return f"{len(tasks)} tasks for {name}", f"tasks {ids}", f"<p>tasks {ids}</p>"


@pytest.fixture(scope="module")
def postgres_url():
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path):
    """An empty task store on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tasks.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with TaskStore(url) as task_store:
        with task_store.session() as session:  # module-scoped PG database: start each test empty
            for table in (OutboxEmail, TaskEvent, Task, AccountRecord):
                session.query(table).delete()
        yield task_store


def planned(rows: list[tuple[str, str, str, str]], now: dt.datetime = NOW) -> pd.DataFrame:
    return plan_tasks(decisions(rows), OWNERS, TITLES, now)


ROWS = [("KA1", "care_call", "account_manager", "wang@operator.example"),
        ("KA2", "care_call", "account_manager", "wang@operator.example"),
        ("KA2", "escalate_to_key_account", "key_account_department", "wang@operator.example"),
        ("KA3", "care_call", "account_manager", "li@operator.example")]


def test_plan_routes_owners_and_deadlines():
    """Manager tasks go to the account's manager, role tasks to the queue, due = now + days."""
    plan = planned(ROWS)
    assert list(plan["owner_email"]) == ["wang@operator.example", "wang@operator.example",
                                         "ka@operator.example", "li@operator.example"]
    assert (plan["due_at"] == pd.Timestamp(NOW + dt.timedelta(days=2))).all()
    assert plan.loc[0, "action_title"] == "Proactive care call"
    assert "Top churn factors: revenue_decline" in plan.loc[0, "reason"]


def test_plan_sends_unknown_owner_to_fallback(caplog):
    """A task with no manager email, or a role without a queue, goes to the fallback (warned)."""
    plan = planned([("KA9", "care_call", "account_manager", ""),
                    ("KA9", "sla_review", "sla_team", "x@operator.example")])
    assert set(plan["owner_email"]) == {"fallback@operator.example"}
    assert "fallback" in caplog.text


def test_raise_creates_tasks_history_and_one_email_per_owner(store):
    """New tasks get a 'created' event, and each owner gets one outbox email listing theirs."""
    result = store.raise_tasks(planned(ROWS), "run-1", render, NOW)
    assert (result.created, result.emails) == (4, 3)
    tasks = store.list_tasks()
    assert {(t.account_id, t.action, t.status) for t in tasks} == {
        (a, b, "open") for a, b, _, _ in ROWS}
    assert all(len(store.history(t.id)) == 1 for t in tasks)
    emails = store.unsent_emails()
    by_recipient = {e.recipient: e for e in emails}
    assert set(by_recipient) == {"wang@operator.example", "ka@operator.example",
                                 "li@operator.example"}
    wang_ids = {t.id for t in tasks if t.owner_email == "wang@operator.example"}
    assert set(map(int, by_recipient["wang@operator.example"].task_ids.split(","))) == wang_ids


def test_rerun_raises_no_duplicate_task_or_email(store):
    """The same decisions raised again create nothing: one open task per (account, action)."""
    store.raise_tasks(planned(ROWS), "run-1", render, NOW)
    again = store.raise_tasks(planned(ROWS), "run-2", render, NOW + dt.timedelta(hours=1))
    assert (again.created, again.skipped_open, again.emails) == (0, 4, 0)
    assert store.counts() == {"tasks": 4, "emails": 3, "unsent_emails": 3}


def test_closed_task_waits_for_its_cooldown(store):
    """After a task is done, its action is raised again only once the cooldown has passed."""
    store.raise_tasks(planned(ROWS[:1]), "run-1", render, NOW)
    task = store.list_tasks()[0]
    store.set_status(task.id, "done", NOW + dt.timedelta(days=1), "called the customer")
    soon = NOW + dt.timedelta(days=10)
    cooling = store.raise_tasks(planned(ROWS[:1], soon), "run-2", render, soon)
    assert (cooling.created, cooling.skipped_cooldown) == (0, 1)
    later = NOW + dt.timedelta(days=32)
    fresh = store.raise_tasks(planned(ROWS[:1], later), "run-3", render, later)
    assert fresh.created == 1
    assert [e.event for e in store.history(task.id)] == ["created", "done"]


def test_crash_while_writing_leaves_nothing(store):
    """If writing the emails fails, the tasks of that transaction are not kept either."""
    def broken(name: str, email: str, tasks: list[dict]) -> tuple[str, str, str]:
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        store.raise_tasks(planned(ROWS), "run-1", broken, NOW)
    assert store.counts() == {"tasks": 0, "emails": 0, "unsent_emails": 0}
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(TaskEvent)) == 0
    assert store.raise_tasks(planned(ROWS), "run-2", render, NOW).created == 4


def test_outbox_drains_once(store):
    """An email marked sent is not returned again; a failed one stays unsent with its error."""
    store.raise_tasks(planned(ROWS), "run-1", render, NOW)
    first, second, third = store.unsent_emails()
    store.mark_sent(first.id, "file", "/tmp/x.eml", NOW)
    store.mark_failed(second.id, "SMTP 451 try later")
    unsent = store.unsent_emails()
    assert [e.id for e in unsent] == [second.id, third.id]
    assert unsent[0].attempts == 1 and "451" in unsent[0].last_error


def test_unknown_status_is_refused(store):
    """Only the documented statuses can be set."""
    store.raise_tasks(planned(ROWS[:1]), "run-1", render, NOW)
    with pytest.raises(ValueError, match="unknown status"):
        store.set_status(store.list_tasks()[0].id, "finished", NOW)


def test_action_with_its_own_email_is_not_in_the_digest(store):
    """A task whose action says `email: own` gets an email of its own; the owner's other new
    tasks still share one digest."""
    plan = planned(ROWS)
    plan["email"] = ["digest", "digest", "own", "digest"]
    result = store.raise_tasks(plan, "run-1", render, NOW)
    assert (result.created, result.emails) == (4, 3)
    plan = planned([*ROWS, ("KA4", "escalate_to_key_account", "key_account_department", "")])
    plan["email"] = ["digest", "digest", "own", "digest", "own"]
    store.raise_tasks(plan, "run-2", render, NOW)  # only KA4's escalation is new
    emails = store.unsent_emails()
    to_ka = [e for e in emails if e.recipient == "ka@operator.example"]
    assert len(to_ka) == 2 and all("," not in e.task_ids for e in to_ka)


def test_a_big_worklist_is_split_into_emails_of_at_most_200_tasks(store):
    """A team mailbox with 450 new tasks gets three emails (most urgent first), each task in
    exactly one, so no email outgrows a mail server's size limit; the daily digest too."""
    from kamflow.worklist import store as store_module

    rows = [(f"KA{i:04d}", "care_call", "account_manager", "team@operator.example")
            for i in range(450)]
    plan = planned(rows)
    plan["priority"] = [1 + (i % 3) for i in range(450)]
    result = store.raise_tasks(plan, "run-1", render, NOW)
    assert (result.created, result.emails) == (450, 3)
    emails = store.unsent_emails()
    parts = [list(map(int, e.task_ids.split(","))) for e in emails]
    assert [len(p) for p in parts] == [200, 200, 50]
    tasks = {t.id: t for t in store.list_tasks()}
    assert sorted(i for p in parts for i in p) == sorted(tasks)
    priorities = [tasks[i].priority for p in parts for i in p]
    assert priorities == sorted(priorities)  # the first email holds the most urgent

    assert store_module.MAX_TASKS_PER_EMAIL == 200
    day = NOW.date()
    queued = store.queue_digests(day, render, NOW)
    assert queued == 3
    digest_keys = {e.key for e in store.unsent_emails() if e.kind == "daily_digest"}
    assert digest_keys == {store_module.digest_key(day, "team@operator.example", n)
                           for n in (1, 2, 3)}
    assert store.queue_digests(day, render, NOW) == 0  # at most once per owner part and day


def roster(*accounts: tuple[str, str]) -> pd.DataFrame:
    """A snapshot's accounts table: (account id, manager email)."""
    return pd.DataFrame({"account_id": [a for a, _ in accounts],
                         "account_manager": [e.split("@")[0] for _, e in accounts],
                         "manager_email": [e for _, e in accounts]})


def lost_by_manager(store: TaskStore, now: dt.datetime) -> dict[str, int]:
    return {k["email"]: k["accounts lost"] for k in store.owner_kpis(now) if k["accounts lost"]}


def test_roster_marks_accounts_lost_and_back_for_the_manager_kpi(store):
    """An account gone from the snapshot is lost for its last manager (the KPI table counts it
    for a year, with or without tasks); back in a later snapshot, it is not lost any more."""
    wang, li = "wang@operator.example", "li@operator.example"
    first = roster(("KA1", wang), ("KA2", wang), ("KA3", li), ("KA4", li))
    assert store.record_accounts(first, NOW) == RosterChange(4, 0, 0)
    store.raise_tasks(planned(ROWS[:1]), "run-1", render, NOW)  # wang has a task, li none
    day2 = NOW + dt.timedelta(days=1)
    moved = roster(("KA1", wang), ("KA3", "Zhou@Operator.example"), ("KA5", li))
    assert store.record_accounts(moved, day2, max_lost_share=0.5) == RosterChange(1, 2, 0)
    assert lost_by_manager(store, day2) == {wang: 1, li: 1}
    kpis = {k["email"]: k for k in store.owner_kpis(day2)}
    assert kpis[wang]["open"] == 1 and kpis[li]["open"] == 0  # li listed for the loss alone
    day3 = day2 + dt.timedelta(days=1)
    back = roster(("KA1", wang), ("KA2", wang), ("KA3", "zhou@operator.example"), ("KA5", li))
    assert store.record_accounts(back, day3, max_lost_share=0.5) == RosterChange(0, 0, 1)
    assert lost_by_manager(store, day3) == {li: 1}  # KA4
    assert lost_by_manager(store, day3 + dt.timedelta(days=400)) == {}  # older than a year
    with store.session() as session:
        ka3 = session.get(AccountRecord, "KA3")
        assert ka3.manager_email == "zhou@operator.example" and ka3.lost_at is None


def test_roster_does_not_mark_a_partial_export_lost(store, caplog):
    """Too many accounts gone at once (a truncated export, not churn): none is marked lost."""
    everyone = roster(*((f"KA{i}", "wang@operator.example") for i in range(40)))
    store.record_accounts(everyone, NOW)
    half = everyone.iloc[:20]
    assert store.record_accounts(half, NOW + dt.timedelta(days=1)) == RosterChange(0, 0, 0, 20)
    assert "looks like a partial export" in caplog.text
    assert lost_by_manager(store, NOW + dt.timedelta(days=1)) == {}
    one_gone = everyone.iloc[1:]  # 1 of 40 (2.5 %): churn
    assert store.record_accounts(one_gone, NOW + dt.timedelta(days=2)).lost == 1
