"""Kill the process at every named step of dispatch, send, digest and escalation, rerun, and
check that no task, escalation or email was lost or doubled (SQLite and PostgreSQL)."""

from __future__ import annotations

import collections
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from kamflow.worklist import QueuedEmail, TaskStore
from kamflow.worklist.faults import CRASH_EXIT_CODE, CRASH_POINTS
from kamflow.worklist.locks import RunLocked, lock_owner, run_lock
from tests.crash_harness import DECISIONS, HOLDOUT, NOW, OPS, decisions
from tests.fake_sendgrid import FakeSendGrid
from tests.postgres import temporary_database

HARNESS = Path(__file__).resolve().parent / "crash_harness.py"
OWNERS = {"wang@staff.example.test", "ka@staff.example.test", "li@staff.example.test"}
ALL = ["dispatch", "send", "digest", "send"]
HEAD, ZHAO, KA = "head@staff.example.test", "zhao@staff.example.test", "ka@staff.example.test"


def harness(db: str, outbox: Path, *phases: str, crash_at: str | None = None,
            sendgrid: str | None = None, urgent: bool = False,
            storm: bool = False, holdout: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KAMFLOW_TEST_CRASH_AT"}
    if crash_at:
        env["KAMFLOW_TEST_CRASH_AT"] = crash_at
    args = [sys.executable, str(HARNESS), "--db", db, "--outbox", str(outbox)]
    if sendgrid:
        args += ["--sendgrid", sendgrid]
    if urgent:
        args.append("--urgent")
    if storm:
        args.append("--storm")
    if holdout:
        args.append("--holdout")
    return subprocess.run([*args, *phases], env=env, capture_output=True, text=True, timeout=120)


def rows(db: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def eml_by_recipient_and_kind(outbox: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in outbox.glob("*.eml"):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        key = message["X-Kamflow-Key"]
        kind = "daily_digest" if key.startswith("digest-") else (
            "escalation" if key.startswith("escalation-") else (
                "urgent_tasks" if any(w in message["Subject"] for w in ("URGENT", "紧急"))
                else "new_tasks"))
        counts[(message["To"], kind)] += 1
    return counts


def assert_exactly_once(db: str, outbox: Path) -> None:
    """One task per decision, one 'created' per task; one new-task email and one digest per
    owner, each sent, each written once."""
    tasks = rows(db, "SELECT account_id, action, owner_email FROM tasks ORDER BY id")
    assert sorted((a, b) for a, b, _ in tasks) == sorted((a, b) for a, b, _, _ in DECISIONS)
    created = rows(db, "SELECT task_id, COUNT(*) FROM task_events WHERE event = 'created' "
                       "GROUP BY task_id")
    assert len(created) == len(DECISIONS) and all(n == 1 for _, n in created)
    outbox_rows = rows(db, "SELECT recipient, kind, sent_at, task_ids FROM outbox")
    kinds = collections.Counter((r, k) for r, k, _, _ in outbox_rows)
    assert kinds == {**{(o, "new_tasks"): 1 for o in OWNERS},
                     **{(o, "daily_digest"): 1 for o in OWNERS}}
    assert all(sent is not None for _, _, sent, _ in outbox_rows)
    announced = sorted(int(i) for r, k, _, ids in outbox_rows if k == "new_tasks"
                       for i in ids.split(","))
    assert announced == sorted(i for i, _ in created)
    assert eml_by_recipient_and_kind(outbox) == kinds


def assert_held_out_once(db: str, outbox: Path) -> None:
    """The control group the plan's rule gives (rules/holdout.py), each held out exactly once
    (one held_out row, no 'created' event, in no email); every other decision one task."""
    from kamflow.rules.holdout import hold_out

    expected = hold_out(decisions(), NOW.date(), HOLDOUT)
    held = sorted(expected.loc[expected["held_out"], "account_id"] + "|care_call")
    assert held == ["KA2|care_call", "KA4|care_call"]
    tasks = rows(db, "SELECT id, account_id, action, status, holdout_key, experiment_period "
                     "FROM tasks ORDER BY id")
    assert sorted(f"{a}|{b}" for _, a, b, s, _, _ in tasks if s == "held_out") == held
    assert sorted(k for *_, s, k, _ in tasks if s == "held_out") == [f"{k}|2026Q4"
                                                                     for k in held]
    assert all(p == "2026Q4" for _, _, b, _, _, p in tasks if b == "care_call")
    raised = sorted(f"{a}|{b}" for _, a, b, s, _, _ in tasks if s != "held_out")
    assert raised == sorted(f"{a}|{b}" for a, b, _, _ in DECISIONS if f"{a}|{b}" not in held)
    held_ids = {i for i, *_, s, _, _ in tasks if s == "held_out"}
    created = rows(db, "SELECT task_id, COUNT(*) FROM task_events WHERE event = 'created' "
                       "GROUP BY task_id")
    assert len(created) == len(raised) and all(n == 1 for _, n in created)
    assert not held_ids & {i for i, _ in created}
    announced = [int(i) for (ids,) in rows(db, "SELECT task_ids FROM outbox WHERE kind = "
                                               "'new_tasks'") for i in ids.split(",")]
    assert sorted(announced) == sorted(i for i, _ in created)
    assert len(list(outbox.glob("*.eml"))) == len(rows(db, "SELECT id FROM outbox"))


@pytest.mark.parametrize("point", ["dispatch.held_out_written", "dispatch.tasks_written",
                                   "dispatch.emails_written", "dispatch.committed"])
def test_a_kill_mid_dispatch_then_rerun_holds_out_the_same_accounts(point: str,
                                                                     tmp_path: Path) -> None:
    """Killed anywhere in dispatch, the rerun (another process, as another worker would be)
    holds out exactly the accounts the hash gives, once each, and raises and emails the rest
    once; a third run on a later day of the quarter adds nothing."""
    db, outbox = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "outbox"
    crashed = harness(db, outbox, "dispatch", "send", crash_at=point, holdout=True)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    again = harness(db, outbox, "dispatch", "send", holdout=True)
    assert again.returncode == 0, again.stderr
    assert_held_out_once(db, outbox)
    later = subprocess.run([sys.executable, str(HARNESS), "--db", db, "--outbox", str(outbox),
                            "--holdout", "--day", "3", "dispatch", "send"],
                           capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items()
                                if k != "KAMFLOW_TEST_CRASH_AT"})
    assert later.returncode == 0, later.stderr
    assert_held_out_once(db, outbox)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throw-away database on the local PostgreSQL server."""
    with temporary_database() as url:
        yield url


@pytest.fixture
def fresh_pg(postgres_url: str) -> Iterator[str]:
    """The module's PostgreSQL database, emptied (schema kept) before each test."""
    yield postgres_url
    engine = create_engine(postgres_url)
    with engine.begin() as conn:  # every table, whatever later migrations add
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


# the daily run's points (escalations and housekeeping have crash tests of their own:
# below, and tests/test_housekeeping.py)
POINTS = [p for p in CRASH_POINTS if not p.startswith(("escalate.", "housekeeping."))]


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_each_step_then_rerun_sends_everything_once(point: str, tmp_path: Path) -> None:
    """Killed at any step of dispatch/send/digest, a rerun leaves one task per decision and one
    email per owner and digest (SQLite, file outbox)."""
    db, outbox = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "outbox"
    crashed = harness(db, outbox, *ALL, crash_at=point)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    again = harness(db, outbox, *ALL)
    assert again.returncode == 0, again.stderr
    assert_exactly_once(db, outbox)


@pytest.mark.postgres
@pytest.mark.parametrize("point", ["dispatch.emails_written", "send.accepted",
                                   "digest.written"])
def test_crash_and_rerun_on_postgresql(point: str, tmp_path: Path, fresh_pg: str) -> None:
    """The same guarantee on PostgreSQL: crash mid-transaction or mid-send, rerun, all once."""
    outbox = tmp_path / "outbox"
    assert harness(fresh_pg, outbox, *ALL, crash_at=point).returncode == CRASH_EXIT_CODE
    again = harness(fresh_pg, outbox, *ALL)
    assert again.returncode == 0, again.stderr
    assert_exactly_once(fresh_pg, outbox)


@pytest.mark.parametrize("point", ["escalate.written", "escalate.written#2",
                                   "escalate.committed", "send.accepted"])
def test_crash_during_escalation_escalates_and_emails_each_task_once(point: str,
                                                                    tmp_path: Path) -> None:
    """Killed while escalating (before the first or second batched email is committed, after
    the commit, or mid-send), a rerun escalates every overdue task exactly one step with one
    history row, and each new owner gets ONE email listing every task escalated to them:
    never two, none lost."""
    db, outbox = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "outbox"
    assert harness(db, outbox, "dispatch", "send").returncode == 0
    crashed = harness(db, outbox, "escalate", "send", crash_at=point)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert harness(db, outbox, "escalate", "send").returncode == 0
    levels = rows(db, "SELECT escalation_level, status FROM tasks")
    assert levels == [(1, "escalated")] * len(DECISIONS)
    steps = rows(db, "SELECT task_id, COUNT(*) FROM task_events WHERE event = 'escalated' "
                     "GROUP BY task_id")
    assert len(steps) == len(DECISIONS) and all(n == 1 for _, n in steps)
    emails = rows(db, "SELECT recipient, task_ids, sent_at FROM outbox "
                      "WHERE kind = 'escalation'")
    assert sorted(r for r, _, _ in emails) == [HEAD, ZHAO] and all(s for _, _, s in emails)
    listed = sorted(int(i) for _, ids, _ in emails for i in ids.split(","))
    assert listed == sorted(i for i, _ in steps)  # every escalated task in exactly one email
    sent = {to: n for (to, kind), n in eml_by_recipient_and_kind(outbox).items()
            if kind == "escalation"}
    assert sent == {HEAD: 1, ZHAO: 1}


@pytest.mark.parametrize("point", ["escalate.written", "escalate.committed", "send.claimed"])
def test_crash_during_a_storm_sends_one_summary_per_owner_and_one_alert(point: str,
                                                                         tmp_path: Path) -> None:
    """Killed mid-storm, a rerun leaves one summary email per new owner naming all their
    escalated tasks and exactly one ops alert, each sent."""
    db, outbox = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "outbox"
    assert harness(db, outbox, "dispatch", "send").returncode == 0
    crashed = harness(db, outbox, "escalate", "send", crash_at=point, storm=True)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert harness(db, outbox, "escalate", "send", storm=True).returncode == 0
    emails = rows(db, "SELECT recipient, kind, task_ids, sent_at FROM outbox "
                      "WHERE kind IN ('escalation', 'storm_alert')")
    assert collections.Counter((r, k) for r, k, _, _ in emails) == {
        (HEAD, "escalation"): 1, (ZHAO, "escalation"): 1, (OPS, "storm_alert"): 1}
    assert sorted(int(i) for _, k, ids, _ in emails if k == "escalation"
                  for i in ids.split(",")) == [i for (i,) in rows(db, "SELECT id FROM tasks")]
    assert all(sent for *_, sent in emails)
    assert len(list(outbox.glob("escalation-*.eml"))) == 2
    assert len(list(outbox.glob("storm-*.eml"))) == 1


@pytest.mark.parametrize("point", ["dispatch.emails_written", "dispatch.committed",
                                   "send.accepted"])
def test_urgent_tasks_go_in_one_email_per_owner_across_a_crash(point: str,
                                                               tmp_path: Path) -> None:
    """`email: own` tasks: one urgent email per owner and run listing them all, apart from
    the routine new-task emails; killed mid-dispatch or mid-send, the rerun sends it once."""
    db, outbox = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "outbox"
    crashed = harness(db, outbox, "dispatch", "send", crash_at=point, urgent=True)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert harness(db, outbox, "dispatch", "send", urgent=True).returncode == 0
    emails = rows(db, "SELECT recipient, kind, task_ids, sent_at FROM outbox")
    kinds = collections.Counter((r, k) for r, k, _, _ in emails)
    assert kinds == {(KA, "urgent_tasks"): 1, ("wang@staff.example.test", "new_tasks"): 1,
                     ("li@staff.example.test", "new_tasks"): 1}
    urgent = next(ids for r, k, ids, _ in emails if k == "urgent_tasks")
    ka_tasks = rows(db, f"SELECT id FROM tasks WHERE owner_email = '{KA}' ORDER BY id")
    assert sorted(map(int, urgent.split(","))) == [i for (i,) in ka_tasks] and len(ka_tasks) == 2
    assert all(sent for *_, sent in emails)
    assert eml_by_recipient_and_kind(outbox) == kinds


def test_sendgrid_crash_between_accept_and_mark_resends_only_that_batch(
        tmp_path: Path, sendgrid_server: FakeSendGrid) -> None:
    """The documented at-least-once window: killed after SendGrid accepted a batch but before
    it was marked sent, the rerun resends exactly that batch (same kamflow_key) and nothing
    else; every email is accepted at least once and, outside that batch, exactly once."""
    db, outbox = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "outbox"
    assert harness(db, outbox, "dispatch", "digest").returncode == 0
    crashed = harness(db, outbox, "send", crash_at="send.accepted", sendgrid=sendgrid_server.url)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    first_batch = collections.Counter(sendgrid_server.keys())
    assert harness(db, outbox, "send", sendgrid=sendgrid_server.url).returncode == 0
    keys = sendgrid_server.keys()
    all_keys = {k for (k,) in rows(db, "SELECT key FROM outbox")}
    assert set(keys) == all_keys  # every email accepted
    assert {k for k, n in keys.items() if n > 1} == set(first_batch)  # only the in-flight batch
    assert all(n == 2 for k, n in keys.items() if k in first_batch)
    assert rows(db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
    assert len(sendgrid_server.requests) < len(all_keys) + 1  # batched: fewer requests than emails


# -- drains running at once: claims and leases ---------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new SQLite file, then the module's PostgreSQL database (emptied afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'claims.db'}"
    else:
        yield request.getfixturevalue("fresh_pg")


def _queue(store: Any, count: int) -> None:
    for n in range(count):
        store.queue_email(QueuedEmail(f"claim-{n}", f"p{n}@staff.example.test", "P", "s", "t",
                                      "", "new_tasks"), CLAIM_NOW)


CLAIM_NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)


def test_a_live_lease_is_not_taken_and_an_expired_one_is(store_url: str) -> None:
    """A second drain skips the rows another drain holds under a live lease (no duplicate
    send) and takes them back, marked in doubt, once that lease has expired (a dead drain)."""
    lease = dt.timedelta(minutes=10)
    with TaskStore(store_url) as store:
        _queue(store, 5)
        first = store.claim_unsent("a" * 32, CLAIM_NOW, lease, limit=3)
        assert [r.in_flight_since for r in first] == [None] * 3
        second = store.claim_unsent("b" * 32, CLAIM_NOW + dt.timedelta(minutes=1), lease)
        assert {r.key for r in second} == {"claim-3", "claim-4"}  # not the first drain's rows
        assert store.claim_unsent("c" * 32, CLAIM_NOW + dt.timedelta(minutes=2), lease) == []
        store.mark_sent_many([(r.id, "x") for r in second], "test", CLAIM_NOW)
        later = CLAIM_NOW + lease + dt.timedelta(seconds=1)  # the first drain died meanwhile
        taken_back = store.claim_unsent("d" * 32, later, lease)
        assert [r.key for r in taken_back] == [r.key for r in first]
        assert all(r.in_flight_since is not None for r in taken_back)  # resent in doubt
        tokens = rows(store_url, "SELECT DISTINCT claim_token FROM outbox WHERE sent_at IS NULL")
        assert tokens == [("d" * 32,)]


def test_drains_claiming_at_the_same_moment_never_share_a_row(store_url: str) -> None:
    """Four threads claiming one row at a time from one outbox: every row claimed exactly
    once (FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite)."""
    with TaskStore(store_url) as store:
        _queue(store, 60)
    claimed: list[str] = []
    errors: list[BaseException] = []

    def drain(token: str) -> None:
        try:
            with TaskStore(store_url) as mine:
                while batch := mine.claim_unsent(token, CLAIM_NOW, limit=1):
                    claimed.extend(r.key for r in batch)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(f"{n:032d}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(claimed) == sorted(f"claim-{n}" for n in range(60))


# -- a second retention run on the same store: the run lock ----------------------------------
def test_a_second_run_waits_for_the_first_then_goes_on(store_url: str) -> None:
    """While one run holds the lock a second waits (it does not fail on the store's locks),
    and takes the lock as soon as the first releases it."""
    released: list[float] = []
    with TaskStore(store_url) as store, run_lock(store, "retention_run", "first"):
        def second() -> None:
            with TaskStore(store_url) as other, run_lock(other, "retention_run", "second",
                                                         wait=30, poll=0.05):
                taken.append(time.monotonic())

        taken: list[float] = []
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(1.0)
        assert taken == []  # still waiting
        released.append(time.monotonic())
    waiter.join(timeout=30)
    assert len(taken) == 1 and taken[0] >= released[0]


def test_a_second_run_stops_with_one_message_naming_the_first(store_url: str) -> None:
    """Past its wait, the second run stops with one message that names the run holding the
    lock and says what to do; the first run's lock is untouched."""
    with TaskStore(store_url) as store, run_lock(store, "retention_run", lock_owner("run-A")):
        with pytest.raises(RunLocked) as stopped:
            with run_lock(store, "retention_run", lock_owner("run-B"), wait=0.5, poll=0.1):
                pytest.fail("the second run must not get the lock")
        message = str(stopped.value)
        assert "another retention_run is running" in message and "run run-A" in message
        assert "Let that run finish" in message and "\n" not in message
        assert rows(store_url, "SELECT owner FROM run_locks") == [(lock_owner("run-A"),)]
    assert rows(store_url, "SELECT COUNT(*) FROM run_locks") == [(0,)]  # released at the end


def test_a_killed_runs_lock_lapses_after_its_lease(store_url: str, tmp_path: Path) -> None:
    """A run killed while holding the lock stops renewing it: the next run gets it once the
    lease has run out, with no operator action."""
    crashed = subprocess.run(
        [sys.executable, str(HARNESS), "--db", store_url, "--outbox", str(tmp_path / "o"),
         "--lock", "--lock-lease", "1", "dispatch"], capture_output=True, text=True,
        timeout=120, env={**os.environ, "KAMFLOW_TEST_CRASH_AT": "dispatch.tasks_written"})
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert len(rows(store_url, "SELECT owner FROM run_locks")) == 1  # left behind
    with TaskStore(store_url) as store, run_lock(store, "retention_run", "next", wait=20,
                                                 poll=0.1):
        assert rows(store_url, "SELECT owner FROM run_locks") == [("next",)]


@pytest.mark.parametrize("point", ["dispatch.tasks_written#2", "dispatch.emails_written#2",
                                   "dispatch.tasks_written#3"])
def test_a_dispatch_killed_between_slices_is_completed_by_the_rerun(point: str,
                                                                     tmp_path: Path) -> None:
    """Dispatch commits in slices of whole owners (here 2 tasks, so one slice per owner): killed
    in a later slice, the earlier slices stay committed, and the rerun raises the rest with one
    task per decision and one new-task email per owner."""
    db, outbox = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "outbox"
    crashed = harness(db, outbox, "--slice", "2", *ALL, crash_at=point)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    committed = rows(db, "SELECT COUNT(DISTINCT owner_email) FROM tasks")[0][0]
    assert 1 <= committed < len(OWNERS)  # some slices committed, not all
    again = harness(db, outbox, *ALL)
    assert again.returncode == 0, again.stderr
    assert_exactly_once(db, outbox)


@pytest.mark.parametrize("point", ["dispatch.tasks_written#2", "dispatch.emails_written#2",
                                   "dispatch.committed"])
def test_a_release_killed_between_slices_releases_and_emails_each_task_once(
        point: str, tmp_path: Path) -> None:
    """Managers may take one new task a day: the first run queues one care call of wang and
    one of li. The next day, all done, a run releasing them (one slice per owner) is killed
    after its first slice; the rerun releases the other. Each queued task is released once
    (one history row) and listed in exactly one email, and every task in exactly one."""
    assert_release_once_across_a_kill(f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "outbox",
                                      point)


@pytest.mark.postgres
@pytest.mark.parametrize("point", ["dispatch.emails_written#2", "dispatch.committed"])
def test_a_release_killed_between_slices_on_postgresql(point: str, tmp_path: Path,
                                                       fresh_pg: str) -> None:
    """The same release guarantee on PostgreSQL."""
    assert_release_once_across_a_kill(fresh_pg, tmp_path / "outbox", point)


def assert_release_once_across_a_kill(db: str, outbox: Path, point: str) -> None:
    first = harness(db, outbox, "--capacity", "1", "dispatch", "send", "finish")
    assert first.returncode == 0, first.stderr
    queued = rows(db, "SELECT id FROM tasks WHERE status = 'queued'")
    assert len(queued) == 2
    day2 = ("--capacity", "1", "--day", "1", "--slice", "1", "dispatch", "send")
    crashed = harness(db, outbox, *day2, crash_at=point)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    again = harness(db, outbox, *day2)
    assert again.returncode == 0, again.stderr
    released = rows(db, "SELECT task_id, COUNT(*) FROM task_events WHERE event = 'released' "
                        "GROUP BY task_id ORDER BY task_id")
    assert released == [(i, 1) for (i,) in sorted(queued)]
    assert rows(db, "SELECT COUNT(*) FROM tasks WHERE status = 'queued'") == [(0,)]
    listed = sorted(int(i) for (ids,) in rows(
        db, "SELECT task_ids FROM outbox WHERE kind IN ('new_tasks', 'urgent_tasks')")
        for i in ids.split(","))
    assert listed == sorted(i for (i,) in rows(db, "SELECT id FROM tasks"))
    assert rows(db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
    eml = eml_by_recipient_and_kind(outbox)
    assert eml[("wang@staff.example.test", "new_tasks")] == 2  # day 1, then its release
    assert eml[("li@staff.example.test", "new_tasks")] == 2
