"""``TaskStore``: the one object the flows, the CLI and the web use to read and write the
worklist database. It is the sum of small per-responsibility stores that share its engine:

- ``TaskLifecycle`` (worklist/tasks.py): raise, acknowledge, finish, reassign, escalate;
- ``OutboxStore`` (worklist/outbox.py): the email outbox the drain sends from;
- ``DigestStore`` (worklist/grouping.py): the daily digest, one email per owner and day;
- ``RosterStore`` (worklist/roster.py): the account roster and lost accounts;
- ``QuarantineStore`` (worklist/quarantine.py): the rows validation rejected;
- ``KpiStore`` (worklist/kpis.py): per-owner KPIs and row counts;
- ``HousekeepingStore`` (worklist/housekeeping.py): the retention policy's archive, purges and
  compaction, and the reads that union the archive with the live rows (``all_tasks``).

Engine, SQLite settings and migrations (once per process and URL) are in worklist/db.py, the
dialect-specific bulk writes in worklist/bulk.py. Use it as a context manager::

    with TaskStore(url) as store:
        store.raise_tasks(...)
"""

from __future__ import annotations

from pathlib import Path

from kamflow.worklist.archive import TaskArchive
from kamflow.worklist.db import MIGRATIONS, alembic_config, migrate
from kamflow.worklist.grouping import (
    DIGEST_FIELDS,
    MAX_TASKS_PER_EMAIL,
    DigestRenderer,
    DigestStore,
    ManyRenderer,
    Renderer,
    digest_key,
    email_parts,
)
from kamflow.worklist.housekeeping import HousekeepingStore, StoreCleanup, default_archive
from kamflow.worklist.kpis import LOST_KPI_DAYS, KpiStore
from kamflow.worklist.outbox import OutboxStore, QueuedEmail
from kamflow.worklist.quarantine import QuarantineStore
from kamflow.worklist.roster import MAX_LOST_SHARE, RosterChange, RosterStore
from kamflow.worklist.tasks import TASK_FIELDS, RaiseResult, TaskClosedError, TaskLifecycle

__all__ = ["DIGEST_FIELDS", "LOST_KPI_DAYS", "MAX_LOST_SHARE", "MAX_TASKS_PER_EMAIL",
           "MIGRATIONS", "TASK_FIELDS", "DigestRenderer", "ManyRenderer", "QueuedEmail",
           "RaiseResult", "Renderer", "RosterChange", "StoreCleanup", "TaskClosedError",
           "TaskStore",
           "alembic_config", "digest_key", "email_parts", "migrate"]


class TaskStore(TaskLifecycle, OutboxStore, DigestStore, RosterStore, QuarantineStore,
                KpiStore, HousekeepingStore):
    """Every part of the task store on one engine (see the module doc). ``archive``: the
    folder of archived tasks (conf/housekeeping.yaml); default ``archive/`` beside a SQLite
    file store, none for another database unless given."""

    def __init__(self, url: str, echo: bool = False, archive: Path | None = None,
                 busy_timeout: float | None = None) -> None:
        super().__init__(url, echo, busy_timeout)
        folder = archive if archive is not None else default_archive(url)
        self.archive = TaskArchive(Path(folder)) if folder is not None else None
