"""Capacity per owner (issue 12): each owner receives what their capacity allows, best first;
the rest waits as ``queued`` and later runs release it, re-ranked, exactly once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from kamflow import config
from kamflow.core.errors import ConfigError
from kamflow.flows.delivery import dispatch
from kamflow.worklist import Owner, OwnerDirectory, Task, TaskEvent, TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from kamflow.worklist.capacity import Capacity, allocate, ranked
from kamflow.worklist.db import aware
from kamflow.worklist.models import OutboxEmail
from tests.postgres import temporary_database

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # Wednesday 10:00 in Shanghai
WANG, LI, KA = "wang@staff.example.test", "li@staff.example.test", "ka@staff.example.test"
TITLES = {"care_call": ("Proactive care call", "主动关怀回访"),
          "manager_visit": ("Account-manager visit", "客户经理上门拜访"),
          "escalate_to_key_account": ("Escalation to the key-account department", "升级至大客户部")}


def owners(new_per_day: int = 2, open_max: int = 3) -> OwnerDirectory:
    """Managers may get ``new_per_day`` new tasks a day and hold ``open_max``; the department
    queue one a day."""
    return OwnerDirectory(
        roles={"key_account_department": Owner("KA dept", KA, "zh-CN")},
        fallback=Owner("Fallback", "fallback@staff.example.test"),
        capacity={"account_manager": Capacity(new_per_day, open_max),
                  "key_account_department": Capacity(1, 10)})


def decisions(rows: list[tuple[str, str, int, float | None]], manager: str = WANG,
              ) -> pd.DataFrame:
    """(account, action, priority, value_at_risk) decisions for ``manager``'s accounts."""
    return pd.DataFrame([{
        "account_id": account, "account_name": f"客户 {account}", "account_manager": "经理",
        "manager_email": manager, "value_class": "high", "churn_band": "critical",
        "churn_risk": 70.0, "rule_id": "r1", "action": action,
        "owner_role": "key_account_department" if action == "escalate_to_key_account"
        else "account_manager",
        "priority": priority, "due_in_days": 2.0, "cooldown_days": 30.0,
        "why": "churn_band=critical", "churn_factors": "revenue_decline",
        "ruleset_version": "v-test", "value_at_risk": var,
        "email": "own" if action == "escalate_to_key_account" else "digest",
    } for account, action, priority, var in rows])


FIVE = [("A1", "care_call", 3, 100.0), ("A2", "care_call", 3, 9000.0),
        ("A3", "care_call", 3, 500.0), ("A4", "manager_visit", 2, 10.0),
        ("A5", "care_call", 3, None)]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty task store on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as s:
            yield s
    else:
        with temporary_database() as url, TaskStore(url) as s:
            yield s


def run(store: TaskStore, frame: pd.DataFrame, when: dt.datetime, directory: OwnerDirectory,
        run_id: str = "run-1"):
    return dispatch(frame, TITLES, directory, store, run_id, when, BusinessCalendar())


def by_account(store: TaskStore) -> dict[str, Task]:
    return {t.account_id: t for t in store.list_tasks()}


def announced(store: TaskStore) -> list[int]:
    """Every task id listed in an email of new (or urgent) tasks, repeats kept."""
    with store.session() as session:
        rows = session.scalars(select(OutboxEmail.task_ids).where(
            OutboxEmail.kind.in_(("new_tasks", "urgent_tasks"))))
        return sorted(int(i) for ids in rows for i in ids.split(","))


# -- the allocation, pure ------------------------------------------------------------------
def candidates(rows: list[tuple[str, str, int, float, bool]]) -> pd.DataFrame:
    """(account, owner, priority, value_at_risk, urgent) candidates."""
    return pd.DataFrame([{"account_id": a, "owner_email": o, "owner_role": "account_manager",
                          "priority": p, "value_at_risk": v, "urgent": u}
                         for a, o, p, v, u in rows])


def test_allocation_releases_the_best_up_to_the_smaller_limit_per_owner() -> None:
    """Per owner min(new_per_day - released today, open_max - open) tasks are released, best
    first by priority, then value at risk descending; another owner's count is their own."""
    frame = candidates([("a", "w", 3, 10, False), ("b", "w", 3, 900, False),
                        ("c", "w", 2, 1, False), ("d", "w", 3, 50, False),
                        ("e", "l", 3, 1, False), ("f", "l", 3, 2, False)])
    released = allocate(frame, lambda _e, _r: Capacity(3, 10), {"w": 0, "l": 9},
                        {"w": 1, "l": 0})
    assert frame.loc[released, "account_id"].tolist() == ["b", "c", "f"]


def test_urgent_tasks_skip_the_limits_but_count_against_them() -> None:
    """An urgent task is released even with the day's limit used up, and uses up the day's
    allowance before routine tasks."""
    frame = candidates([("a", "w", 3, 10, False), ("b", "w", 1, 1, True),
                        ("c", "w", 1, 1, True), ("d", "w", 2, 5, False)])
    released = allocate(frame, lambda _e, _r: Capacity(2, None), {}, {})
    assert frame.loc[released, "account_id"].tolist() == ["b", "c"]
    used_up = allocate(frame, lambda _e, _r: Capacity(2, None), {}, {"w": 2})
    assert frame.loc[used_up, "account_id"].tolist() == ["b", "c"]


def test_the_three_orderings() -> None:
    """value_at_risk ranks proactive care below risk-driven work at equal priority and then by
    revenue at risk; priority ignores the revenue; random is a seeded shuffle."""
    frame = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "priority": [3, 3, 3, 2],
                          "value_at_risk": [5.0, np.nan, 100.0, 1.0],
                          "proactive": [False, False, True, False]})
    assert frame["account_id"].to_numpy()[ranked(frame)].tolist() == ["d", "a", "b", "c"]
    assert frame["account_id"].to_numpy()[ranked(frame, "priority")].tolist() == [
        "d", "a", "b", "c"]
    assert ranked(frame.drop(columns=["proactive"]))[:2].tolist() == [3, 2]  # d, then c
    assert ranked(frame, "random", seed=1).tolist() == ranked(frame, "random", seed=1).tolist()
    assert sorted(ranked(frame, "random", seed=2).tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown order"):
        ranked(frame, "alphabetical")


# -- the task store ------------------------------------------------------------------------
def test_first_run_releases_capacity_and_queues_the_rest(store: TaskStore) -> None:
    """Five decisions for a manager allowed 2 a day: the 2 best (priority, then value at risk)
    are open and emailed, 3 are queued with no email; value at risk is stored."""
    result = run(store, decisions(FIVE), NOW, owners())
    tasks = by_account(store)
    assert {a for a, t in tasks.items() if t.status == "open"} == {"A4", "A2"}
    assert {a for a, t in tasks.items() if t.status == "queued"} == {"A1", "A3", "A5"}
    assert (result.created, result.released, result.queued) == (5, 2, 3)
    assert result.released_by_owner == {WANG: 2} and result.queued_by_owner == {WANG: 3}
    assert announced(store) == sorted([tasks["A4"].id, tasks["A2"].id])
    with store.session() as session:
        body = session.scalar(select(OutboxEmail.body_text))
    assert "另有 3 项任务在排队" in body  # the manager (zh-CN) knows what is coming
    assert tasks["A2"].value_at_risk == 9000.0 and tasks["A5"].value_at_risk is None
    assert [t.account_id for t in store.list_tasks(status="queued")] == ["A1", "A3", "A5"]
    kpi = next(k for k in store.owner_kpis(NOW) if k["email"] == WANG)
    assert (kpi["open"], kpi["queued"]) == (2, 3)
    assert store.overdue_tasks(NOW + dt.timedelta(days=30))  # the open ones
    assert {t.account_id for t in store.overdue_tasks(NOW + dt.timedelta(days=30))} == {
        "A4", "A2"}  # queued tasks run no deadline


def test_later_runs_release_as_capacity_frees_never_twice(store: TaskStore) -> None:
    """The same day adds nothing; the next day, with one task done, the best queued tasks
    are released (history row, email) up to the limits; a rerun releases none again."""
    directory = owners()
    run(store, decisions(FIVE), NOW, directory)
    again = run(store, decisions(FIVE), NOW + dt.timedelta(hours=1), directory, "run-1b")
    assert (again.created, again.released) == (0, 0)
    store.transition(by_account(store)["A4"].id, "done", NOW, WANG)
    later = NOW + dt.timedelta(days=1)
    # re-ranked on the day's scores: A1 now has the most revenue at risk
    frame = decisions([(a, b, p, 50_000.0 if a == "A1" else v) for a, b, p, v in FIVE])
    second = run(store, frame, later, directory, "run-2")
    tasks = by_account(store)
    # open max 3: one open (A2) + 2 released, within 2 a day
    assert (second.released, second.released_from_queue, second.queued) == (2, 2, 1)
    assert {a for a, t in tasks.items() if t.status == "open"} == {"A2", "A1", "A3"}
    assert tasks["A1"].value_at_risk == 50_000.0
    assert aware(tasks["A1"].due_at) > later  # its deadline counts from its release
    events = store.history(tasks["A1"].id)
    assert [e.event for e in events] == ["created", "released"]
    assert run(store, frame, later + dt.timedelta(hours=2), directory, "run-2b").released == 0
    ids = announced(store)
    assert len(ids) == len(set(ids)) == 4  # each released task emailed exactly once


def test_a_queued_task_is_rewritten_only_when_its_rank_or_reason_changes(
        store: TaskStore) -> None:
    """An ordinary day at full capacity: queued tasks planned again as before keep their rows
    (no rewrite of a national backlog every day); one whose value at risk moved takes it."""
    directory = owners(new_per_day=2, open_max=2)
    run(store, decisions(FIVE), NOW, directory)
    before = by_account(store)
    later = NOW + dt.timedelta(days=1)  # nothing done: no room, nothing released
    frame = decisions([(a, b, p, 777.0 if a == "A3" else v) for a, b, p, v in FIVE])
    result = run(store, frame, later, directory, "run-2")
    after = by_account(store)
    assert (result.released, result.queued) == (0, 3)
    assert after["A1"].due_at == before["A1"].due_at  # unchanged: row left as it was
    assert after["A5"].due_at == before["A5"].due_at
    assert after["A3"].value_at_risk == 777.0  # re-ranked: today's value and deadline
    assert aware(after["A3"].due_at) > aware(before["A3"].due_at)


def test_a_queued_task_whose_rule_stops_firing_is_withdrawn(store: TaskStore) -> None:
    """A queued task not decided again is withdrawn with its reason; it starts no cooldown, so
    decided again later it is raised anew."""
    directory = owners()
    run(store, decisions(FIVE), NOW, directory)
    later = NOW + dt.timedelta(days=1)
    result = run(store, decisions([r for r in FIVE if r[0] != "A5"]), later, directory, "run-2")
    assert result.withdrawn == 1
    task = next(t for t in store.list_tasks() if t.account_id == "A5")
    assert task.status == "withdrawn" and task.open_key is None
    assert store.history(task.id)[-1].detail == "rule no longer fires on run run-2"
    third = run(store, decisions(FIVE), later + dt.timedelta(days=1), owners(10, 10), "run-3")
    assert third.created == 1  # A5 again, not blocked by a cooldown


def test_department_escalations_skip_the_daily_limit(store: TaskStore) -> None:
    """The department queue may take 1 a day, yet all three escalations are released (urgent
    email); the manager's routine tasks still queue at the limit."""
    frame = decisions([("A1", "escalate_to_key_account", 1, 10.0),
                       ("A2", "escalate_to_key_account", 1, 20.0),
                       ("A3", "escalate_to_key_account", 1, 30.0), *FIVE])
    result = run(store, frame, NOW, owners())
    assert result.released_by_owner == {KA: 3, WANG: 2}
    with store.session() as session:
        kinds = session.execute(select(OutboxEmail.recipient, OutboxEmail.kind)).all()
    assert sorted(kinds) == [(KA, "urgent_tasks"), (WANG, "new_tasks")]


def test_released_from_the_queue_the_history_says_why(store: TaskStore) -> None:
    """A queued task's creation says it was queued for capacity."""
    run(store, decisions(FIVE), NOW, owners())
    queued = store.list_tasks(status="queued")[0]
    with store.session() as session:
        detail = session.scalar(select(TaskEvent.detail).where(TaskEvent.task_id == queued.id))
    assert "queued" in detail and "capacity" in detail


# -- configuration -------------------------------------------------------------------------
OWNERS_YAML = """
roles:
  sla_team: {name: SLA, email: sla@op.example, capacity: {new_per_day: 50}}
fallback: {name: Fallback, email: fb@op.example}
capacity:
  account_manager: {new_per_day: 8, open_max: 30}
  sla_team: {new_per_day: 20, open_max: 100}
people:
  - {email: wang@op.example, name: Wang, capacity: {open_max: 12}}
people_file: staff.csv
"""


def test_capacity_per_role_overridden_per_person(tmp_path: Path) -> None:
    """Roles give the defaults; a person (YAML or people_file columns) or queue overrides one
    limit and keeps the other from the role; an unknown manager gets the role's."""
    (tmp_path / "owners.yaml").write_text(OWNERS_YAML, encoding="utf-8")
    (tmp_path / "staff.csv").write_text("email,name,new_per_day,open_max\n"
                                        "li@op.example,Li,3,\n", encoding="utf-8")
    directory = config.load_owners(tmp_path / "owners.yaml")
    assert directory.capacity_of("wang@op.example", "account_manager") == Capacity(8, 12)
    assert directory.capacity_of("li@op.example", "account_manager") == Capacity(3, 30)
    assert directory.capacity_of("zhou@op.example", "account_manager") == Capacity(8, 30)
    assert directory.capacity_of("sla@op.example", "sla_team") == Capacity(50, 100)
    assert directory.capacity_of("x@op.example", "key_account_department") == Capacity()


@pytest.mark.parametrize(("text", "key"), [
    ("capacity: {managers: {new_per_day: 3}}", "capacity.managers"),
    ("capacity: {account_manager: {new_per_day: -1}}", "new_per_day"),
    ("capacity: {account_manager: {per_day: 3}}", "per_day"),
])
def test_a_bad_capacity_is_refused_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    """An unknown role, a negative limit or an unknown key is refused with its key path."""
    (tmp_path / "owners.yaml").write_text(
        "fallback: {name: F, email: fb@op.example}\n" + text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=key):
        config.load_owners(tmp_path / "owners.yaml")


def test_the_shipped_owners_file_has_the_suggested_defaults() -> None:
    """Account managers: 8 new tasks a day, 30 open at most, 3.5 hours of task work a day."""
    directory = config.load_owners()
    assert directory.capacity_of("anyone@op.example", "account_manager") == Capacity(8, 30, 3.5)


# -- issue 17: a supervisor's own capacity -------------------------------------------------
ZHAO, HEAD = "zhao@staff.example.test", "head@staff.example.test"


def test_a_supervisor_at_capacity_is_passed_over_and_the_head_always_takes_it(
        store: TaskStore) -> None:
    """Zhao may hold 1 escalated task: of wang's three overdue tasks one goes to zhao, the
    other two skip to the department head (history names the rung passed over)."""
    from kamflow.flows.delivery import escalate_overdue

    directory = OwnerDirectory(
        roles={}, fallback=Owner("Fallback", "fallback@staff.example.test"),
        people={WANG: Owner("王芳", WANG, "zh-CN", supervisor=ZHAO),
                ZHAO: Owner("赵主管", ZHAO, "zh-CN", capacity=Capacity(None, 1))},
        department_head=Owner("KA head", HEAD, "en"))
    run(store, decisions(FIVE[:3]), NOW, directory)
    result = escalate_overdue(store, directory, BusinessCalendar(), 1.0,
                              NOW + dt.timedelta(days=9), storm=None)
    owners_now = sorted(t.owner_email for t in store.list_tasks())
    assert owners_now == [HEAD, HEAD, ZHAO]
    assert result.skipped_full == [ZHAO, ZHAO]
    to_head = next(t for t in store.list_tasks() if t.owner_email == HEAD)
    assert "skipped (at capacity): " + ZHAO in store.history(to_head.id)[-1].detail


def test_storm_thresholds_come_from_the_pipeline_file(tmp_path: Path) -> None:
    """conf/pipeline.yaml escalation_storm sets sla_watch's storm policy; a bad share is
    refused naming its key."""
    from kamflow.flows.sla_watch import storm_policy

    path = tmp_path / "pipeline.yaml"
    path.write_text("escalation_storm: {share: 0.5, minimum: 10, summary_size: 5, "
                    "alert_quiet_hours: 24}\n", encoding="utf-8")
    policy = storm_policy(config.load_pipeline(path).storm)
    assert (policy.share, policy.minimum, policy.summary_size) == (0.5, 10, 5)
    assert policy.alert_quiet == dt.timedelta(hours=24)
    assert not policy.is_storm(9, 10) and policy.is_storm(10, 15)
    path.write_text("escalation_storm: {share: 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="escalation_storm.share"):
        config.load_pipeline(path)
    shipped = storm_policy(config.load_pipeline().storm)
    assert (shipped.share, shipped.minimum) == (0.25, 100)


# -- the daily flow on a generated snapshot ------------------------------------------------
def test_the_flow_releases_within_capacity_and_later_runs_release_the_queue(
        prefect_api, snapshot_dir, kamflow_home) -> None:
    """On a generated snapshot no manager receives more than 8 new tasks (the shipped
    capacity) and the summary lists released and queued per owner; the next day, with some
    tasks done, a run releases queued tasks, none twice, each in exactly one email."""
    from sqlalchemy import text, update

    from tests.test_flow import run_with, summary_markdown

    state, summary, run_id = run_with(prefect_api, snapshot_dir)
    assert state.is_completed(), state.message
    db = TaskStore(f"sqlite:///{kamflow_home / 'kamflow.db'}")
    with db:
        # the holdout's control group (status held_out) is nobody's work: not counted here
        tasks = [t for t in db.list_tasks() if t.status != "held_out"]
        open_by_owner: dict[str, int] = {}
        for task in tasks:
            if task.status == "open" and task.owner_role == "account_manager":
                open_by_owner[task.owner_email] = open_by_owner.get(task.owner_email, 0) + 1
        assert open_by_owner and max(open_by_owner.values()) <= 8
        queued = [t for t in tasks if t.status == "queued"]
        assert queued, "the generated snapshot has more work than 8 tasks per manager"
        assert summary["tasks_queued"] == len(queued)
        assert summary["tasks_released"] == len(tasks) - len(queued)
        rows = summary["capacity_by_owner"]
        assert rows and all(r["released"] <= 8 for r in rows
                            if r["owner"] in open_by_owner)
        assert sum(r["queued"] for r in rows) <= len(queued)
        top = rows[0]
        assert f"| {top['owner']} | {top['released']:,} | {top['queued']:,} |" in \
            summary_markdown(prefect_api, run_id)
        # the first run was yesterday; today each manager finished two tasks
        with db.session() as session:
            session.execute(update(Task).where(Task.released_at.is_not(None)).values(
                released_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
        done = []
        for owner in open_by_owner:
            mine = [t for t in tasks if t.owner_email == owner and t.status == "open"]
            for task in mine[:2]:
                db.transition(task.id, "done", dt.datetime.now(dt.UTC), owner)
                done.append(task.id)
    state, second, _ = run_with(prefect_api, snapshot_dir)
    assert state.is_completed(), state.message
    assert second["tasks_released_from_queue"] > 0
    with db:
        with db.session() as session:
            released = session.execute(text(
                "SELECT task_id, COUNT(*) FROM task_events WHERE event = 'released' "
                "GROUP BY task_id")).all()
            listed = [int(i) for (ids,) in session.execute(text(
                "SELECT task_ids FROM outbox WHERE kind IN ('new_tasks', 'urgent_tasks')"))
                for i in ids.split(",")]
        assert len(released) == second["tasks_released_from_queue"]
        assert all(n == 1 for _, n in released)
        assert len(listed) == len(set(listed))  # no task in two emails
        assert {i for i, _ in released} <= set(listed)
        for owner in open_by_owner:  # open_max 30, 8 a day: yesterday's 8 minus 2 done
            now_open = [t for t in db.list_tasks(status="open") if t.owner_email == owner]
            assert len(now_open) <= 30
    state, third, _ = run_with(prefect_api, snapshot_dir)
    assert state.is_completed() and third["tasks_released_from_queue"] == 0


# -- urgent actions and value at risk in the emails ----------------------------------------
def test_an_action_marked_urgent_is_emailed_on_its_own_and_a_bad_flag_is_refused(
        tmp_path: Path) -> None:
    """``urgent: true`` in rules/actions.yaml means ``email: own`` (released whatever the
    capacity); ``urgent: soon`` is refused naming the action."""
    import shutil

    from kamflow.rules import RULES_DIR, load_ruleset

    shutil.copytree(RULES_DIR, tmp_path / "rules", ignore=shutil.ignore_patterns("*.py"))
    actions = tmp_path / "rules" / "actions.yaml"
    text = actions.read_text(encoding="utf-8")
    actions.write_text(text.replace("  sla_review:\n", "  sla_review:\n    urgent: true\n"),
                       encoding="utf-8")
    assert load_ruleset(tmp_path / "rules").actions["sla_review"].email == "own"
    actions.write_text(text.replace("  sla_review:\n", "  sla_review:\n    urgent: soon\n"),
                       encoding="utf-8")
    with pytest.raises(ConfigError, match="sla_review.*urgent must be true or false"):
        load_ruleset(tmp_path / "rules")


@pytest.mark.parametrize(("language", "line", "phrase"), [
    ("zh-CN", "风险收入：年化 ¥147,600", "年化风险收入 ¥147,600"),
    ("en", "At risk:  ¥147,600 of revenue a year", "revenue at risk ¥147,600 a year")])
def test_emails_list_by_priority_then_value_at_risk_and_show_it_a_year(
        language: str, line: str, phrase: str) -> None:
    """At equal priority the task with more revenue at risk comes first; each shows its value
    at risk a year (monthly x 12) in the reader's words; a task without one shows none."""
    from kamflow.notifications import render_task_digest

    due = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
    tasks = [{"task_id": i, "account_id": a, "account_name": f"客户 {a}", "action": "care_call",
              "action_title": "Proactive care call", "priority": p, "due_at": due,
              "reason": "churn_band=critical", "rule_id": "r1", "value_at_risk": v}
             for i, a, p, v in ((1, "KA-small", 3, 300.0), (2, "KA-big", 3, 12_300.0),
                                (3, "KA-none", 3, None), (4, "KA-first", 2, 1.0))]
    _, text, html = render_task_digest("王芳", tasks, language, "Asia/Shanghai", TITLES)
    order = [text.index(a) for a in ("KA-first", "KA-big", "KA-small", "KA-none")]
    assert order == sorted(order)
    # the text part gives it a labelled line like the task's other fields; the HTML a note
    assert line in text and phrase in html
    assert text.count("¥") == 3  # KA-none has no figure
