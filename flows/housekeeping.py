"""``housekeeping``: apply the retention policy of conf/housekeeping.yaml (issue 28), daily
after the retention run (deployment ``housekeeping-daily``), or ``kamflow housekeeping``.

- each run's ``reports/<run>/`` and ``quarantine/<run>/`` folders, and its quarantined rows in
  the store, removed after ``keep_days.reports``;
- email bodies (the store's outbox, the file outbox's ``.eml`` files) removed
  ``keep_days.email_bodies`` after sending; the outbox rows stay;
- closed tasks and their history moved to the Parquet archive after ``keep_days.closed_tasks``;
- the revenue history compacted to what `kamflow report` reads.

Every step is idempotent and can be killed: the next run finishes it (worklist/housekeeping.py
makes the archive durable before deleting rows). ``dry_run`` counts what would go and changes
nothing. ``measure_space`` is what each retention run reports of the home's size and free disk.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from kamflow import config
from kamflow.core.errors import KamflowError
from kamflow.core.settings import Settings, configure_prefect_env, load_settings
from kamflow.expectations.datadocs import unused_pages
from kamflow.expectations.files import STATIC
from kamflow.worklist import TaskStore
from kamflow.worklist.housekeeping import HousekeepingPolicy, StoreCleanup

__all__ = ["HousekeepingResult", "SpaceReport", "housekeeping", "housekeeping_run",
           "measure_space", "restore_month", "watch_space"]

DAY = dt.timedelta(days=1)
SIZES = "sizes.jsonl"  # under $KAMFLOW_HOME/housekeeping/: one line per run, for the projection
_SIZES_KEPT = 120


@dataclass
class HousekeepingResult:
    dry_run: bool
    report_folders: list[str] = field(default_factory=list)
    quarantine_folders: list[str] = field(default_factory=list)
    email_files: int = 0
    file_bytes: int = 0  # the folders' and .eml files' bytes
    store: StoreCleanup = field(default_factory=StoreCleanup)

    def nothing(self) -> bool:
        return not (self.report_folders or self.quarantine_folders or self.email_files) \
            and self.store.nothing()

    def freed_bytes(self) -> int:
        """Bytes freed in files, and the email bodies' bytes in the store (a database reuses
        the space it frees; its file does not shrink)."""
        return self.file_bytes + self.store.email_body_bytes

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        archive = "would archive" if self.dry_run else "archived"
        s = self.store
        return [
            f"reports: {verb} {len(self.report_folders)} run folder(s), "
            f"{len(self.quarantine_folders)} quarantine folder(s) and "
            f"{s.quarantine_rows_deleted} quarantined row(s)",
            f"emails: {verb} the bodies of {s.email_bodies_cleared} sent email(s) "
            f"({_mb(s.email_body_bytes)}) and {self.email_files} .eml file(s); their outbox "
            "rows stay",
            f"tasks: {archive} {s.tasks_archived} closed task(s) with {s.events_archived} "
            f"history row(s)" + (f" (months {', '.join(s.months)})" if s.months else ""),
            f"revenue history: {verb} {s.revenue_rows_compacted} superseded row(s)",
            f"space {'it would free' if self.dry_run else 'freed'}: {_mb(self.freed_bytes())}",
        ]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "freed_bytes": self.freed_bytes()}


def housekeeping(settings: Settings, now: dt.datetime | None = None, dry_run: bool = False,
                 policy: HousekeepingPolicy | None = None) -> HousekeepingResult:
    """Apply ``policy`` (default conf/housekeeping.yaml) at ``now``; with ``dry_run`` only
    count. Files first, then the store, each step complete or resumed by the next run."""
    now = now or dt.datetime.now(dt.UTC)
    policy = policy or config.load_housekeeping(settings)
    result = HousekeepingResult(dry_run)
    reports_before = (now - policy.reports_days * DAY).timestamp()
    for folder in _run_folders(settings.reports):
        if _newest(folder) < reports_before:
            result.report_folders.append(str(folder))
            result.file_bytes += _remove(folder, dry_run)
    if not dry_run:  # the shared suite pages no run folder links to any more
        for page in unused_pages(settings.reports / STATIC):
            page.unlink(missing_ok=True)
    if settings.quarantine.is_dir():
        for folder in sorted(p for p in settings.quarantine.iterdir() if p.is_dir()):
            if _newest(folder) < reports_before:
                result.quarantine_folders.append(str(folder))
                result.file_bytes += _remove(folder, dry_run)
    bodies_before = (now - policy.email_bodies_days * DAY).timestamp()
    if settings.outbox.is_dir():
        for eml in sorted(settings.outbox.glob("*.eml")):
            if eml.stat().st_mtime < bodies_before:
                result.email_files += 1
                result.file_bytes += _remove(eml, dry_run)
    with TaskStore(settings.database_url, archive=policy.archive) as store:
        cleanup = result.store
        store.delete_quarantine(now - policy.reports_days * DAY, dry_run, cleanup)
        store.clear_email_bodies(now - policy.email_bodies_days * DAY, policy.batch, dry_run,
                                 cleanup)
        store.archive_closed_tasks(now - policy.closed_tasks_days * DAY, policy.batch,
                                   dry_run, cleanup)
        store.compact_revenue_history(now - policy.revenue_history_days * DAY, dry_run,
                                      cleanup)
    return result


def restore_month(settings: Settings, month: str) -> int:
    """Put an archived month (YYYY-MM, of closing) back in the task store; the tasks put back."""
    policy = config.load_housekeeping(settings)
    with TaskStore(settings.database_url, archive=policy.archive) as store:
        return store.restore_month(month)


@flow(name="housekeeping")
def housekeeping_run(dry_run: bool = False) -> dict[str, Any]:
    """Apply conf/housekeeping.yaml to the home in $KAMFLOW_HOME (daily, after the run)."""
    settings = load_settings()  # here: a Prefect worker runs this function itself
    configure_prefect_env(settings)
    result = housekeeping(settings, dry_run=dry_run)
    space = measure_space(settings, record=False)
    for line in result.lines():
        get_run_logger().info("%s", line)
    create_markdown_artifact(
        "\n".join(["# Housekeeping" + (" (dry run)" if dry_run else ""), "",
                   *(f"- {line}" for line in result.lines()), "", *space.lines()]),
        key="housekeeping", description="What the retention policy removed and archived")
    return result.as_dict()


# -- size and space -----------------------------------------------------------------------
@dataclass
class SpaceReport:
    home_bytes: int
    store_bytes: int
    free_bytes: int
    growth_per_day: float | None = None  # bytes a day the home grew over the recorded runs
    days_left: float | None = None  # until the disk is full at that growth
    warning: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        growth = (f"{_mb(self.growth_per_day)} a day" if self.growth_per_day is not None
                  else "not known yet")
        lines = [f"- home: {_mb(self.home_bytes)}, of which the task store {_mb(self.store_bytes)}",
                 f"- free disk: {_mb(self.free_bytes)}; growth: {growth}"
                 + (f", full in {self.days_left:.0f} days" if self.days_left is not None else "")]
        return [*lines, f"- **warning:** {self.warning}"] if self.warning else lines


def measure_space(settings: Settings, now: dt.datetime | None = None, record: bool = True,
                  policy: HousekeepingPolicy | None = None,
                  free_bytes: int | None = None) -> SpaceReport:
    """The home's size, the store's and the free disk space, and a warning when the disk would
    be full within ``disk.warn_within_days`` at the growth of the recorded runs (or has less
    than ``disk.min_free_mb`` free). ``record`` keeps this measure for the next projection."""
    now = now or dt.datetime.now(dt.UTC)
    policy = policy or config.load_housekeeping(settings)
    with TaskStore(settings.database_url, archive=policy.archive) as store:
        store_bytes = store.store_bytes()
    home = disk_bytes(settings.home)
    if not settings.database_url.startswith("sqlite"):
        home += store_bytes  # the database is elsewhere but grows with the home
    free = shutil.disk_usage(settings.home).free if free_bytes is None else free_bytes
    log = settings.home / "housekeeping" / SIZES
    history = _read_sizes(log)
    report = SpaceReport(home, store_bytes, free)
    if history:
        first = history[0]
        days = (now.timestamp() - first["at"]) / 86400
        if days >= 0.5:
            report.growth_per_day = max(0.0, (home - first["home_bytes"]) / days)
            if report.growth_per_day > 0:
                report.days_left = free / report.growth_per_day
    if free < policy.min_free_bytes:
        report.warning = (f"only {_mb(free)} free on the disk of {settings.home} (below "
                          f"disk.min_free_mb in conf/housekeeping.yaml)")
    elif report.days_left is not None and report.days_left < policy.warn_within_days:
        report.warning = (f"the disk of {settings.home} fills in about {report.days_left:.0f} "
                          f"days at the recent growth of {_mb(report.growth_per_day or 0)} a "
                          "day: free space, or shorten keep_days in conf/housekeeping.yaml")
    if record:
        log.parent.mkdir(parents=True, exist_ok=True)
        lines = [*(json.dumps(h) for h in history[-(_SIZES_KEPT - 1):]),
                 json.dumps({"at": now.timestamp(), "home_bytes": home})]
        temp = log.with_suffix(".tmp")
        temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        temp.replace(log)
    return report


def watch_space(summary: Any, settings: Settings) -> None:
    """The run's measure of its home (``summary.space``, in summary.json), as an artifact
    ``disk-space``; when the disk would fill soon, a warning artifact ``disk-space-warning``
    and a warning in the run's log. Never fails the run: a measure that cannot be taken is
    logged."""
    logger = get_run_logger()
    try:
        space = measure_space(settings)
    except (OSError, KamflowError) as exc:
        logger.warning("could not measure the home's size and free disk space: %s", exc)
        return
    summary.space = space.as_dict()
    create_markdown_artifact("\n".join(["# Disk", "", *space.lines()]), key="disk-space",
                             description="The home's size, the task store's, free disk space")
    if space.warning:
        logger.warning("%s", space.warning)
        create_markdown_artifact(f"# Disk space warning\n\n{space.warning}\n",
                                 key="disk-space-warning",
                                 description="The disk of KAMFLOW_HOME fills soon")


# -- helpers ------------------------------------------------------------------------------
def _run_folders(reports: Path) -> list[Path]:
    """The run folders under reports/ (those a run or `kamflow validate` wrote), not the
    shared static files nor the simulations' and backtests' folders."""
    if not reports.is_dir():
        return []
    return sorted(p for p in reports.iterdir() if p.is_dir() and p.name != STATIC
                  and not p.name.startswith(".")
                  and ((p / "validation.json").exists() or (p / "summary.json").exists()))


def _newest(folder: Path) -> float:
    stamps = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
    return max(stamps, default=folder.stat().st_mtime)


def disk_bytes(path: Path) -> int:
    """The bytes of the files under ``path``, a hard-linked file counted once (as du does:
    the Data Docs' suite pages are shared between runs that way)."""
    if path.is_file():
        return path.stat().st_size
    seen: set[tuple[int, int]] = set()
    total = 0
    for item in path.rglob("*"):
        if item.is_symlink() or not item.is_file():
            continue
        stat = item.stat()
        if stat.st_nlink > 1:
            if (stat.st_dev, stat.st_ino) in seen:
                continue
            seen.add((stat.st_dev, stat.st_ino))
        total += stat.st_size
    return total





def _remove(path: Path, dry_run: bool) -> int:
    size = disk_bytes(path)
    if not dry_run:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return size


def _read_sizes(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    found = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line after a crash: skip it
            continue
    return found


def _mb(count: float) -> str:
    return f"{count / 1024 / 1024:.1f} MB"
