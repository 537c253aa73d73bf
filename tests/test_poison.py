"""Poison values (issue 15): one odd value must not stop the night's emails."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch, queue_daily_digests, reassign_task
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from tests.crash_harness import NOW, OWNERS, TITLES, decisions_of


def _store(tmp_path: Path) -> TaskStore:
    return TaskStore(f"sqlite:///{tmp_path / 'k.db'}")


# -- owner emails compared case-insensitively ------------------------------------------------
MIXED_CASE = [("KA1", "care_call", "account_manager", "Wang@op.cn"),
              ("KA2", "care_call", "account_manager", "wang@op.cn"),
              ("KA3", "care_call", "account_manager", " WANG@OP.CN ")]


def test_mixed_case_owner_gets_one_new_task_email_and_one_digest(tmp_path: Path) -> None:
    """Wang@op.cn and wang@op.cn are one owner: one new-task email, one digest listing all."""
    store = _store(tmp_path)
    calendar = BusinessCalendar()
    dispatch(decisions_of(MIXED_CASE), TITLES, OWNERS, store, "r", NOW, calendar,
             LinkSigner(b"d" * 32))
    assert {t.owner_email for t in store.list_tasks()} == {"wang@op.cn"}
    new = [e for e in store.unsent_emails() if e.kind == "new_tasks"]
    assert len(new) == 1 and len(new[0].task_ids.split(",")) == 3
    later = NOW + dt.timedelta(days=1)
    assert queue_daily_digests(store, OWNERS, calendar, later, TITLES) == 1
    digest = [e for e in store.unsent_emails() if e.kind == "daily_digest"]
    assert [d.recipient for d in digest] == ["wang@op.cn"]
    assert len(digest[0].task_ids.split(",")) == 3
    store.dispose()


def test_digest_groups_stored_mixed_case_owners_as_one(tmp_path: Path) -> None:
    """Tasks already stored under Wang@op.cn and wang@op.cn (an older run, a reassignment)
    still make one digest, not a unique-key violation that stops every digest."""
    store = _store(tmp_path)
    calendar = BusinessCalendar()
    dispatch(decisions_of(MIXED_CASE[1:2]), TITLES, OWNERS, store, "r", NOW, calendar)
    task = store.list_tasks()[0]
    dispatch(decisions_of([("KA9", "care_call", "key_account_department", "x@op.cn")]),
             TITLES, OWNERS, store, "r2", NOW, calendar)
    other = [t for t in store.list_tasks() if t.id != task.id][0]
    reassign_task(store, OWNERS, other.id, "Wang@OP.cn", "ops", NOW)
    later = NOW + dt.timedelta(days=1)
    assert queue_daily_digests(store, OWNERS, calendar, later, TITLES) == 1
    digest = [e for e in store.unsent_emails() if e.kind == "daily_digest"]
    assert len(digest) == 1 and digest[0].recipient == "wang@op.cn"
    assert sorted(map(int, digest[0].task_ids.split(","))) == sorted([task.id, other.id])
    store.dispose()
