"""Housekeeping (issue 28): the retention policy archives closed tasks to Parquet, clears old
email bodies, compacts the revenue history and removes old run folders; idempotent, safe to
interrupt, a dry run changes nothing, reports read the archive, an archived month comes back.
On SQLite and on the local PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from kamflow.cli import main
from kamflow.core.settings import Settings
from kamflow.flows.housekeeping import housekeeping, measure_space
from kamflow.worklist import OutboxEmail, Task, TaskEvent, TaskStore
from kamflow.worklist.faults import CRASH_EXIT_CODE
from kamflow.worklist.housekeeping import HousekeepingPolicy
from kamflow.worklist.measures import department_report
from kamflow.worklist.models import AccountRecord, AccountRevenue
from tests.postgres import temporary_database
from tests.test_worklist import planned, render

NOW = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
DAYS = range(0, 560, 20)  # a task raised every 20 days over a year and a half


@pytest.fixture(scope="module")
def postgres_url():
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request, tmp_path: Path) -> Settings:
    """A home whose store holds a year and a half of tasks, each acknowledged the next day
    and done the day after (the newest still open), and their emails sent."""
    env = {"KAMFLOW_HOME": str(tmp_path / "home")}
    if request.param == "postgresql":
        env["KAMFLOW_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = Settings.from_env(env).ensure_home()
    with TaskStore(settings.database_url) as store:
        with store.session() as session:  # the module's PostgreSQL database: start empty
            for table in (OutboxEmail, TaskEvent, Task, AccountRevenue, AccountRecord):
                session.query(table).delete()
        for days in sorted(DAYS, reverse=True):
            at = NOW - dt.timedelta(days=days)
            account = f"KA{days:03d}"
            store.raise_tasks(planned([(account, "care_call", "account_manager",
                                        "wang@operator.example")], at), f"run-{days}", render, at)
            if days:
                task = next(t for t in store.list_tasks() if t.account_id == account)
                store.set_status(task.id, "acknowledged", at + dt.timedelta(days=1))
                store.set_status(task.id, "done", at + dt.timedelta(days=2))
        for email in store.unsent_emails():
            store.mark_sent(email.id, "file", f"/tmp/{email.id}.eml", email.created_at)
    return settings


def policy(home: Settings, **days: float) -> HousekeepingPolicy:
    return HousekeepingPolicy(archive=home.home / "archive", batch=4, **days)


def task_rows(home: Settings) -> pd.DataFrame:
    with TaskStore(home.database_url, archive=home.home / "archive") as store:
        rows = store.task_rows(NOW - dt.timedelta(days=2000))
    return rows.sort_values("created_at").reset_index(drop=True)


def live_counts(home: Settings) -> tuple[int, int]:
    with TaskStore(home.database_url) as store, store.session() as session:
        return (session.scalar(select(func.count()).select_from(Task)),
                session.scalar(select(func.count()).select_from(TaskEvent)))


def test_closed_tasks_move_to_the_archive_and_reports_still_count_them(home) -> None:
    """Tasks closed 400+ days ago leave the store for Parquet files per month; task_rows and
    the department report give the same figures; a second run does nothing."""
    before = task_rows(home)
    with TaskStore(home.database_url) as store:
        report_before = department_report(store.roster_rows(), before, NOW,
                                          NOW - dt.timedelta(days=600)).as_dict()
    tasks_before, events_before = live_counts(home)
    old = sum(1 for d in DAYS if d and d - 2 > 400)  # closed more than 400 days ago
    assert old >= 5

    dry = housekeeping(home, NOW, dry_run=True, policy=policy(home))
    assert dry.store.tasks_archived == old and dry.store.events_archived == 3 * old
    assert live_counts(home) == (tasks_before, events_before)
    assert not (home.home / "archive").exists(), "a dry run writes nothing"

    done = housekeeping(home, NOW, policy=policy(home))
    assert done.store.tasks_archived == old and len(done.store.months) >= 5
    assert live_counts(home) == (tasks_before - old, events_before - 3 * old)
    files = sorted((home.home / "archive" / "tasks").glob("month=*/*.parquet"))
    assert len(files) >= 2 and all(f.parent.name[6:] in done.store.months for f in files)
    after = task_rows(home)
    pd.testing.assert_frame_equal(after, before)
    with TaskStore(home.database_url, archive=home.home / "archive") as store:
        report_after = department_report(store.roster_rows(), after, NOW,
                                         NOW - dt.timedelta(days=600)).as_dict()
        everything = store.all_tasks()
    assert report_after == report_before
    assert len(everything) == tasks_before and everything["id"].is_unique

    again = housekeeping(home, NOW, policy=policy(home))
    assert again.nothing(), again.lines()


@pytest.mark.parametrize("point", ["housekeeping.archived#2", "housekeeping.deleted#1"])
def test_a_kill_in_the_middle_loses_nothing_and_the_next_run_finishes(home, point) -> None:
    """`kamflow housekeeping` killed (os._exit, worklist/faults.py) after a batch's archive
    files are durable but before its rows are deleted, or between two batches: every task is
    still counted once, and the next run finishes the job."""
    before = task_rows(home)
    (home.home / "housekeeping.yaml").write_text("archive: {batch: 2}\n", encoding="utf-8")
    env = {**os.environ, "KAMFLOW_HOME": str(home.home), "KAMFLOW_CONF": str(conf(home)),
           "KAMFLOW_TEST_CRASH_AT": point}
    if home.database:
        env["KAMFLOW_DATABASE_URL"] = home.database
    killed = subprocess.run([sys.executable, "-m", "kamflow.cli", "housekeeping"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == CRASH_EXIT_CODE, killed.stderr
    assert list((home.home / "archive" / "tasks").glob("month=*/*.parquet"))
    pd.testing.assert_frame_equal(task_rows(home), before)  # nothing lost, nothing twice
    env.pop("KAMFLOW_TEST_CRASH_AT")
    done = subprocess.run([sys.executable, "-m", "kamflow.cli", "housekeeping", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["store"]["tasks_archived"] > 0
    pd.testing.assert_frame_equal(task_rows(home), before)
    again = subprocess.run([sys.executable, "-m", "kamflow.cli", "housekeeping", "--json"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout)["store"]["tasks_archived"] == 0


def conf(home: Settings) -> Path:
    """A configuration folder: the shipped files, and housekeeping.yaml from the home."""
    from kamflow.core.settings import DEFAULT_CONF_DIR

    folder = home.home / "conf"
    if not folder.exists():
        shutil.copytree(DEFAULT_CONF_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(home.home / "housekeeping.yaml", folder / "housekeeping.yaml")
    return folder


def test_an_archived_month_can_be_restored(home, monkeypatch, capsys) -> None:
    """`kamflow housekeeping --restore YYYY-MM` puts the month's tasks and history back and
    later housekeeping leaves it alone."""
    before = task_rows(home)
    done = housekeeping(home, NOW, policy=policy(home))
    month = done.store.months[0]
    tasks_after, _ = live_counts(home)
    monkeypatch.setenv("KAMFLOW_HOME", str(home.home))
    if home.database:
        monkeypatch.setenv("KAMFLOW_DATABASE_URL", home.database)
    assert main(["housekeeping", "--restore", month]) == 0
    expected = int((before["closed_at"].dt.strftime("%Y-%m") == month).sum())
    assert f"restored {expected} task(s)" in capsys.readouterr().out
    assert live_counts(home)[0] == tasks_after + expected
    assert not list((home.home / "archive" / "tasks").glob(f"month={month}/*.parquet"))
    pd.testing.assert_frame_equal(task_rows(home), before)
    with TaskStore(home.database_url) as store:
        restored = next(t for t in store.list_tasks() if f"{t.closed_at:%Y-%m}" == month)
        assert [e.event for e in store.history(restored.id)] == ["created", "acknowledged",
                                                                  "done"]
    assert housekeeping(home, NOW, policy=policy(home)).nothing()
    assert main(["housekeeping", "--restore", "2025-13"]) == 2


def test_old_email_bodies_are_cleared_and_their_outbox_rows_stay(home) -> None:
    kept = 30
    with TaskStore(home.database_url) as store:
        emails = {e.id: e for e in store.session().__enter__().scalars(select(OutboxEmail))}
    old = {i for i, e in emails.items() if e.sent_at and
           e.sent_at.replace(tzinfo=dt.UTC) < NOW - dt.timedelta(days=kept)}
    assert old and len(old) < len(emails)
    done = housekeeping(home, NOW, policy=policy(home, email_bodies_days=kept))
    assert done.store.email_bodies_cleared == len(old) and done.store.email_body_bytes > 0
    with TaskStore(home.database_url) as store, store.session() as session:
        for email in session.scalars(select(OutboxEmail)):
            assert (email.body_text == "" and email.body_html == "") == (email.id in old)
            assert email.recipient and email.task_ids and email.provider_id and email.sent_at
            assert email.subject == emails[email.id].subject
    assert housekeeping(home, NOW, policy=policy(home, email_bodies_days=kept)).nothing()


def test_revenue_history_is_compacted_to_what_the_report_reads(home) -> None:
    """Of each account's revenue rows before the horizon only the last stays: its revenue at
    any time after the horizon is unchanged."""
    with TaskStore(home.database_url) as store, store.session() as session:
        for days, revenue in ((700, 100.0), (600, 90.0), (500, 80.0), (10, 40.0)):
            session.add(AccountRevenue(account_id="KA1", at=NOW - dt.timedelta(days=days),
                                       monthly_revenue=revenue))
    done = housekeeping(home, NOW, policy=policy(home, revenue_history_days=400))
    assert done.store.revenue_rows_compacted == 2
    with TaskStore(home.database_url) as store:
        left = store.revenue_rows()
    assert left.loc[left["account_id"] == "KA1", "monthly_revenue"].tolist() == [80.0, 40.0]


def test_old_run_folders_and_eml_files_go_and_the_shared_static_files_stay(home) -> None:
    reports, old = home.reports, (NOW - dt.timedelta(days=100)).timestamp()
    for run, stamp in (("run-old", old), ("run-new", NOW.timestamp())):
        (reports / run / "data_docs").mkdir(parents=True)
        (reports / run / "validation.json").write_text("{}")
        (reports / run / "data_docs" / "index.html").write_text("<html></html>")
        (home.quarantine / run).mkdir(parents=True)
        (home.quarantine / run / "quarantine.csv").write_text("a\n1\n")
        for path in (*(reports / run).rglob("*"), *(home.quarantine / run).rglob("*")):
            os.utime(path, (stamp, stamp))
    (reports / "data_docs_static" / "great_expectations-1").mkdir(parents=True)
    (reports / "simulations").mkdir()
    home.outbox.mkdir(exist_ok=True)
    for name, stamp in (("old.eml", old), ("new.eml", NOW.timestamp())):
        (home.outbox / name).write_text("Subject: x\n\nbody")
        os.utime(home.outbox / name, (stamp, stamp))
    dry = housekeeping(home, NOW, dry_run=True, policy=policy(home))
    assert dry.report_folders == [str(reports / "run-old")] and dry.email_files == 1
    assert (reports / "run-old").exists() and dry.file_bytes > 0
    housekeeping(home, NOW, policy=policy(home))
    assert sorted(p.name for p in reports.iterdir()) == ["data_docs_static", "run-new",
                                                          "simulations"]
    assert sorted(p.name for p in home.quarantine.iterdir()) == ["run-new"]
    assert sorted(p.name for p in home.outbox.iterdir()) == ["new.eml"]


def test_dry_run_command_lists_and_changes_nothing(home, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KAMFLOW_HOME", str(home.home))
    if home.database:
        monkeypatch.setenv("KAMFLOW_DATABASE_URL", home.database)
    counts = live_counts(home)
    assert main(["housekeeping", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nothing was changed" in out and "would archive" in out and "free disk" in out
    assert live_counts(home) == counts
    assert main(["housekeeping", "--dry-run", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["dry_run"] is True and found["space"]["free_bytes"] > 0


def test_space_warns_when_the_disk_would_fill_within_30_days(tmp_path: Path) -> None:
    home = Settings.from_env({"KAMFLOW_HOME": str(tmp_path / "home")}).ensure_home()
    first = measure_space(home, NOW - dt.timedelta(days=10), free_bytes=10 ** 12)
    assert first.warning == "" and first.home_bytes > 0 and first.store_bytes > 0
    (home.home / "big.bin").write_bytes(b"x" * 5_000_000)  # 0.5 MB a day over 10 days
    roomy = measure_space(home, NOW, record=False, free_bytes=10 ** 12)
    assert roomy.growth_per_day == pytest.approx(500_000, rel=0.05) and not roomy.warning
    tight = measure_space(home, NOW, record=False, free_bytes=5 * 1024 ** 3,
                          policy=HousekeepingPolicy(min_free_bytes=0))
    assert tight.days_left and tight.days_left > 30 and not tight.warning
    tight = measure_space(home, NOW, record=False, free_bytes=10_000_000,
                          policy=HousekeepingPolicy(min_free_bytes=0))
    assert tight.days_left == pytest.approx(20, rel=0.05)
    assert "fills in about 20 days" in tight.warning and str(home.home) in tight.warning
    low = measure_space(home, NOW, record=False, free_bytes=100)
    assert "only 0.0 MB free" in low.warning


def test_shipped_policy_loads_with_the_issue_defaults(tmp_path: Path) -> None:
    from kamflow import config

    home = Settings.from_env({"KAMFLOW_HOME": str(tmp_path)})
    shipped = config.load_housekeeping(home)
    assert (shipped.reports_days, shipped.email_bodies_days, shipped.closed_tasks_days) == \
        (90, 30, 400)
    assert shipped.archive == tmp_path.resolve() / "archive"
    assert config.load_housekeeping(home, tmp_path / "absent.yaml") == shipped


@pytest.mark.parametrize(("text", "message"), [
    ("keep_days: {reports: 0}", "key 'keep_days.reports'"),
    ("keep_days: {report: 5}", "key 'keep_days.report' is unknown"),
    ("archive: {batch: '10'}", "key 'archive.batch'"),
])
def test_bad_policy_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    from kamflow import config
    from kamflow.core.errors import ConfigError

    path = tmp_path / "housekeeping.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as error:
        config.load_housekeeping(Settings.from_env({"KAMFLOW_HOME": str(tmp_path)}), path)
    assert str(path) in str(error.value)
