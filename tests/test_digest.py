"""The daily digest: one email per owner per business day listing all their open tasks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch, queue_daily_digests
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from tests.crash_harness import NOW, OWNERS, TITLES, decisions


def test_digest_lists_open_tasks_once_per_owner_and_day(tmp_path: Path) -> None:
    """Each owner gets one digest with all and only their open tasks (overdue marked, with
    links, in their language); a second run that day queues nothing; the next day does."""
    store = TaskStore(f"sqlite:///{tmp_path / 'k.db'}")
    calendar, links = BusinessCalendar(), LinkSigner(b"d" * 32)
    dispatch(decisions(), TITLES, OWNERS, store, "r", NOW, calendar, links)
    wang = [t for t in store.list_tasks() if t.owner_email == "wang@staff.example.test"]
    store.transition(wang[0].id, "done", NOW, "wang")
    later = NOW + dt.timedelta(days=3)  # Saturday morning in Shanghai: tasks are overdue
    assert queue_daily_digests(store, OWNERS, calendar, later, TITLES, links) == 3
    assert queue_daily_digests(store, OWNERS, calendar, later + dt.timedelta(hours=2), TITLES,
                               links) == 0
    digests = {e.recipient: e for e in store.unsent_emails() if e.kind == "daily_digest"}
    assert set(digests) == {"wang@staff.example.test", "ka@staff.example.test",
                            "li@staff.example.test"}
    mine = digests["wang@staff.example.test"]
    assert mine.task_ids == str(wang[1].id)  # the done one is gone
    assert "已逾期" in mine.body_text and "主动关怀回访" in mine.body_text
    assert mine.body_text.count("/t/v1.") == 2  # acknowledge + done links
    assert queue_daily_digests(store, OWNERS, calendar, later + dt.timedelta(days=1), TITLES,
                               links) == 3
    store.dispose()
