"""A year of nights, shortened (issue 28): daily runs of generated accounts, with housekeeping
after each, measuring what the home keeps.

    python benchmarks/housekeeping_bench.py --accounts 2000 --days 40 [--short] [--json]

Each day's snapshot (`kamflow generate --days`) goes through the real flow (Prefect's
temporary server, SQLite, the file outbox); then the owners finish the tasks opened three days
before, `housekeeping` applies the policy, and everything stored is made a day older (every
time in the task store, every file's mtime) so that the policy meets ages of days and months
in minutes. Measured after each day: reports/, outbox/, the task store, the archive, the
home. ``--short`` uses the issue's shortened policy (reports 5 days, email bodies 3, closed
tasks 20) and checks that `kamflow report`'s figures are the same before and after each
housekeeping; the default policy is conf/housekeeping.yaml's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DAY = dt.timedelta(days=1)


def size(path: Path) -> int:
    """Bytes on disk as du counts them: a hard-linked file once."""
    from kamflow.flows.housekeeping import disk_bytes

    return disk_bytes(path) if path.exists() else 0


def age_one_day(home: Path, url: str) -> None:
    """Everything stored a day older: the store's times and the files' mtimes."""
    from sqlalchemy import DateTime

    from kamflow.worklist import TaskStore
    from kamflow.worklist.models import Base

    with TaskStore(url) as store, store.engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, DateTime):
                    connection.exec_driver_sql(
                        f'UPDATE "{table.name}" SET "{column.name}" = strftime('
                        f"'%Y-%m-%d %H:%M:%f', \"{column.name}\", '-1 day') "
                        f'WHERE "{column.name}" IS NOT NULL')
    for folder in ("reports", "quarantine", "outbox"):
        for path in (home / folder).rglob("*") if (home / folder).exists() else []:
            stat = path.stat()
            os.utime(path, (stat.st_atime - 86400, stat.st_mtime - 86400))


def store_bytes(settings) -> int:
    from kamflow.worklist import TaskStore

    with TaskStore(settings.database_url) as store:
        return store.store_bytes()


def owners_finish(url: str, now: dt.datetime, after_days: int = 3) -> int:
    """The owners finish the tasks opened ``after_days`` ago or earlier."""
    from kamflow.worklist import TaskStore

    done = 0
    with TaskStore(url) as store:
        for task in store.list_tasks(status="open"):
            created = task.created_at if task.created_at.tzinfo else task.created_at.replace(
                tzinfo=dt.UTC)
            if created < now - after_days * DAY:
                store.set_status(task.id, "done", now, "benchmark: handled")
                done += 1
    return done


def report_figures(settings, archive: Path, now: dt.datetime) -> str:
    from kamflow import config
    from kamflow.worklist import TaskStore
    from kamflow.worklist.measures import department_report

    with TaskStore(settings.database_url, archive=archive) as store:
        found = department_report(store.roster_rows(), store.task_rows(now - 400 * DAY), now,
                                  ceilings=config.load_department(
                                      settings.conf_dir / "department.yaml"),
                                  revenue=store.revenue_rows())
    return json.dumps(found.as_dict(), sort_keys=True, default=str)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--short", action="store_true", help="the issue's shortened policy")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="kamflow-housekeeping-"))
    home = root / "home"
    os.environ["KAMFLOW_HOME"] = str(home)
    os.environ.setdefault("KAMFLOW_EMAIL_BACKEND", "file")
    from kamflow.core.settings import configure_prefect_env, load_settings

    settings = load_settings()
    configure_prefect_env(settings)
    start = dt.date.today() - dt.timedelta(days=args.days)
    subprocess.run([sys.executable, "-m", "kamflow.cli", "generate", "--out", str(root / "snap"),
                    "--accounts", str(args.accounts), "--days", str(args.days), "--as-of",
                    start.isoformat()], check=True, capture_output=True)
    from kamflow import config
    from kamflow.expectations.datadocs import static_references
    from kamflow.flows.housekeeping import housekeeping
    from kamflow.flows.retention import retention_run
    from kamflow.worklist.housekeeping import HousekeepingPolicy

    policy = config.load_housekeeping(settings)
    if args.short:
        policy = HousekeepingPolicy(reports_days=5, email_bodies_days=3, closed_tasks_days=20,
                                    archive=policy.archive, batch=policy.batch)
    days = sorted((root / "snap").glob("day-*"))
    rows, mismatches = [], 0
    for number, folder in enumerate(days, 1):
        as_of = start + dt.timedelta(days=number - 1)
        started = time.perf_counter()
        state = retention_run(source=str(folder), as_of=as_of.isoformat(), return_state=True)
        seconds = time.perf_counter() - started
        now = dt.datetime.now(dt.UTC)
        finished = owners_finish(settings.database_url, now)
        before = report_figures(settings, policy.archive, now)
        done = housekeeping(settings, now, policy=policy)
        mismatches += before != report_figures(settings, policy.archive, now)
        rows.append({"day": number, "state": state.type.value, "run_seconds": round(seconds, 1),
                     "tasks_finished": finished, "archived": done.store.tasks_archived,
                     "bodies_cleared": done.store.email_bodies_cleared,
                     "reports": size(settings.reports), "outbox": size(settings.outbox),
                     "store": store_bytes(settings),
                     "archive": size(policy.archive), "home": size(home) - size(home / "prefect"),
                     "prefect": size(home / "prefect")})
        if not args.json:
            print(json.dumps(rows[-1]), flush=True)
        if number == len(days):  # right after a complete pass, a second finds nothing to do
            again = housekeeping(settings, now, policy=policy)
        else:
            age_one_day(home, settings.database_url)
    index = max((settings.reports).glob("*/data_docs/index.html"), key=lambda p: p.stat().st_mtime)
    missing = [str(p) for p in static_references(index) if not p.is_file()]
    growth = [(b["reports"] - a["reports"]) for a, b in zip(rows, rows[1:], strict=False)]
    result = {
        "accounts": args.accounts, "days": len(rows), "policy": "short" if args.short
        else "default",
        "reports_growth_per_run_mb": round(sum(growth) / max(len(growth), 1) / 2 ** 20, 3),
        "reports_max_growth_per_run_mb": round(max(growth, default=0) / 2 ** 20, 3),
        "home_mb_day20": round(rows[min(19, len(rows) - 1)]["home"] / 2 ** 20, 2),
        "home_mb_last": round(rows[-1]["home"] / 2 ** 20, 2),
        "home_ratio_last_to_day20": round(rows[-1]["home"] / rows[min(19, len(rows) - 1)]["home"],
                                          3),
        "store_mb_last": round(rows[-1]["store"] / 2 ** 20, 2),
        "archive_mb_last": round(rows[-1]["archive"] / 2 ** 20, 3),
        "report_figures_changed_by_housekeeping": mismatches,
        "data_docs_missing_static_files": missing,
        "second_housekeeping_did_nothing": again.nothing(),
        "failed_runs": sum(r["state"] != "COMPLETED" for r in rows),
        "work": str(root)}
    print(json.dumps(result if args.json else result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
