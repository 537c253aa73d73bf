"""Emails rendered in worker processes: the same emails, in the same order, as in one process;
a failing or dying worker fails the dispatch and writes nothing."""

from __future__ import annotations

import datetime as dt
import functools
import os
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import kamflow.notifications.workers as workers
from kamflow.core.errors import ConfigError
from kamflow.core.links import LinkSigner
from kamflow.core.settings import Settings
from kamflow.flows.delivery import dispatch, queue_daily_digests, render_workers_for
from kamflow.notifications.workers import RenderWorkerError, render_in_workers
from kamflow.worklist import TaskStore, plan_tasks
from kamflow.worklist.calendar import BusinessCalendar
from tests.crash_harness import NOW, OWNERS, TITLES, decisions

MANAGERS = ("wang@staff.example.test", "li@staff.example.test", "zhou@staff.example.test")


def many_decisions(accounts: int) -> pd.DataFrame:
    """The harness's decision, for many accounts over three managers (a few hundred emails'
    worth of task rows, split over several emails per owner)."""
    template = decisions().iloc[0].to_dict()
    rows = []
    for i in range(accounts):
        for action, role in (("care_call", "account_manager"),
                             ("escalate_to_key_account", "key_account_department")):
            rows.append({**template, "account_id": f"KA{i:06d}", "account_name": f"客户 {i}",
                         "manager_email": MANAGERS[i % 3], "action": action,
                         "owner_role": role, "priority": 1 + i % 3})
    return pd.DataFrame(rows)


def outbox(store: TaskStore) -> list[tuple[Any, ...]]:
    return [(e.recipient, e.subject, e.body_text, e.body_html, e.task_ids, e.kind)
            for e in store.unsent_emails()]


def test_workers_render_the_same_emails_in_the_same_order(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "_CHUNK_TASKS", 7)  # many chunks, round-robin over workers
    calendar, links = BusinessCalendar(), LinkSigner(b"w" * 32)
    plan = many_decisions(700)  # 2 emails per manager, 4 for the department
    results = []
    for count in (0, 2):
        store = TaskStore(f"sqlite:///{tmp_path / f'k{count}.db'}")
        raised = dispatch(plan, TITLES, OWNERS, store, "r", NOW, calendar, links,
                          render_workers=count)
        monkeypatch.setenv("KAMFLOW_RENDER_WORKERS", str(count))
        digests = queue_daily_digests(store, OWNERS, calendar, NOW + dt.timedelta(days=1),
                                      TITLES, links)
        results.append((raised.created, raised.emails, digests, outbox(store)))
        store.dispose()
    one, pooled = results
    assert one[:3] == (1400, 10, 10)
    assert pooled == one
    # the links in a worker-rendered email are signed with the run's key and verify
    token = pooled[3][0][2].split("/t/")[1].split()[0]
    assert links.verify(token, NOW).action == "ack"


def test_a_sliced_dispatch_renders_every_slice_in_the_same_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dispatch committed in slices starts its render workers once for all slices (each start
    costs about a second), and its emails are those the same slices rendered in process."""
    started = []

    class Counted(workers._Worker):
        def __init__(self, render: Any) -> None:
            started.append(render)
            super().__init__(render)

    monkeypatch.setattr(workers, "_Worker", Counted)
    calendar, links = BusinessCalendar(), LinkSigner(b"w" * 32)
    plan = many_decisions(600)  # 1,200 tasks over 4 owners
    results = []
    for count, slice_size in ((0, 300), (2, 300)):
        store = TaskStore(f"sqlite:///{tmp_path / f's{count}.db'}")
        raised = dispatch(plan, TITLES, OWNERS, store, "r", NOW, calendar, links,
                          render_workers=count, slice_size=slice_size)
        results.append((raised.created, sorted(outbox(store))))
        store.dispose()
    assert results[1] == results[0] and results[0][0] == 1200
    assert len(started) == 2  # two workers, started once for every slice


class Exploding:
    """A renderer that fails on one owner, as a template error would (picklable: module level)."""

    def __call__(self, owner_name: str, owner_email: str,
                 tasks: list[dict[str, Any]]) -> tuple[str, str, str]:
        if owner_email.startswith("li@"):
            raise ValueError(f"template error for {owner_email}")
        return ("subject", "text", "html")


class Dying:
    def __call__(self, *part: Any) -> tuple[str, str, str]:
        os._exit(3)


def test_a_worker_error_names_itself_and_nothing_is_written(tmp_path: Path) -> None:
    store = TaskStore(f"sqlite:///{tmp_path / 'k.db'}")
    planned = plan_tasks(many_decisions(30), OWNERS, {k: en for k, (en, _) in TITLES.items()},
                         NOW, BusinessCalendar())
    pooled = functools.partial(render_in_workers, Exploding(), workers=2)
    with pytest.raises(RenderWorkerError, match="ValueError: template error for li@"):
        store.raise_tasks(planned, "r", Exploding(), NOW, render_many=pooled)
    assert store.counts() == {"tasks": 0, "emails": 0, "unsent_emails": 0}
    store.dispose()


def test_a_worker_that_dies_fails_the_rendering() -> None:
    parts = [("Wang", "wang@x.test", [{"task_id": 1}])] * 3
    with pytest.raises(RenderWorkerError, match=r"exited unexpectedly \(exit code 3\)"):
        list(render_in_workers(Dying(), parts, workers=2))


def test_link_signer_pickles_to_the_same_key() -> None:
    signer = LinkSigner(b"k" * 32, "https://kam.example", dt.timedelta(days=2))
    copy = pickle.loads(pickle.dumps(signer))
    token = copy.token(7, "done", "wang@x.test", NOW)
    assert signer.verify(token, NOW).task_id == 7
    assert copy.base_url == "https://kam.example" and copy.ttl == dt.timedelta(days=2)
    assert "k" * 16 not in repr(copy)


def test_render_workers_setting() -> None:
    cpus = os.cpu_count() or 1
    assert render_workers_for(100) == 0  # small runs render in process
    assert render_workers_for(20_000) == (cpus if cpus > 1 else 0)
    assert render_workers_for(100, Settings.from_env({"KAMFLOW_RENDER_WORKERS": "3"})
                              .render_workers) == 3
    assert render_workers_for(10**6, Settings.from_env({"KAMFLOW_RENDER_WORKERS": "0"})
                              .render_workers) == 0
    for bad in ("two", "-1"):
        with pytest.raises(ConfigError, match="KAMFLOW_RENDER_WORKERS"):
            Settings.from_env({"KAMFLOW_RENDER_WORKERS": bad})


def test_nothing_to_render_starts_no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A day whose digests are all queued already renders nothing: no process is started."""
    def no_worker(render: Any) -> None:
        pytest.fail("a render worker was started with nothing to render")

    monkeypatch.setattr(workers, "_Worker", no_worker)
    assert list(render_in_workers(Exploding(), [], workers=2)) == []
