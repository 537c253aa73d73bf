"""Benchmarks: time and peak memory of kamflow's stages on generated snapshots.

    python benchmarks/run.py e2e --accounts 100000 [--json] [--database-url URL] [--next-day]
    python benchmarks/run.py validate --accounts 1000000 [--json]
    python benchmarks/run.py dispatch --accounts 100000 [--json] [--database-url URL]
    python benchmarks/run.py score --accounts 1000000 [--json]
    python benchmarks/run.py backtest --accounts 100000 [--json]
    python benchmarks/run.py effects --accounts 1000000 [--json]

`e2e` runs the daily job's stages in process, exactly as the flow calls them (intake, validate,
score, decide, the account roster, dispatch into the task store, send to the file outbox);
Prefect's own overhead (server start, ~1 s per sync flow run) is not included. Snapshot
generation is not timed. `--next-day` then runs the job again a day later on the same snapshot
and task store, as a national operator's ordinary day (the tasks are open already).

`validate` times kamflow's validation (`seconds`: derived checks, every suite, the customer
view, quarantine) and then GX's own checkpoints on the same frames and suites
(`gx_checkpoint_seconds`), in the same process, so kamflow's overhead over bare GX is visible.
Reading the files is timed apart (`intake_seconds`).

`backtest` times the backtest's learning (benchmarks/backtest_bench.py) against a bare
scikit-learn logistic regression fit and predict on the same feature matrix, in the same run.

`effects` times `kamflow report --effects` (benchmarks/effects_bench.py): a task store of the
accounts and 90 days of decisions, 55,000 a day, 5 % held out; its reads, the fate join and the
statistics.

`peak_rss_mb` is the job's peak resident memory: the main process's, or, when higher, its resident
memory plus the private memory of its email render workers (sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.memory import TREE, main_peak_mb, peak_rss_mb

AS_OF = dt.date(2026, 11, 25)




def generate_apart(directory: Path, accounts: int) -> None:
    """Write a generated snapshot from another process: generating 1M accounts takes more
    memory than the job itself, and must not count in its peak."""
    code = ("import sys, datetime as dt; from kamflow.generate import generate_snapshot; "
            "generate_snapshot(sys.argv[1], int(sys.argv[2]), dt.date.fromisoformat(sys.argv[3]),"
            " seed=7)")
    subprocess.run([sys.executable, "-c", code, str(directory), str(accounts),
                    AS_OF.isoformat()], check=True, cwd=Path(__file__).resolve().parent.parent)


def disk_mb(work: Path, url: str) -> dict[str, float]:
    """What the job keeps on disk: the task store (SQLite file or PostgreSQL database) and
    the file outbox (issue 28: the README's projection of a year)."""
    from kamflow.flows.housekeeping import disk_bytes
    from kamflow.worklist import TaskStore

    with TaskStore(url) as store:
        store_bytes = store.store_bytes()
    outbox = [p for p in work.iterdir() if p.is_dir() and p.name != "snapshot"]
    return {"store": round(store_bytes / 2 ** 20, 1),
            "files": round(sum(disk_bytes(p) for p in outbox) / 2 ** 20, 1)}


def e2e(accounts: int, database_url: str | None, again: bool = False) -> dict:
    """The retention flow's stage functions, called as the flow calls them (no Prefect); with
    ``again``, the next day's run on the same snapshot and task store is timed too."""
    work = Path(tempfile.mkdtemp(prefix="kamflow-bench-"))
    try:  # a 1M run leaves 3 GB of email and database behind: removed at the end
        generate_apart(work / "snapshot", accounts)
        TREE.start()  # from here on: the job and its render workers
        url = database_url or f"sqlite:///{work / 'kamflow.db'}"
        first = daily_job(work, url, dt.datetime.now(dt.UTC))
        result = {"benchmark": "e2e", "accounts": accounts, "database": url.split(":")[0],
                  "seconds": first.pop("seconds"),
                  "accounts_per_s": round(accounts / first["stage_seconds"]["total"]), **first}
        result["disk_mb"] = disk_mb(work, url)
        if again:
            result["next_day"] = daily_job(work, url,
                                           dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
            result["next_day"]["disk_mb"] = disk_mb(work, url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["peak_rss_mb"] = round(peak_rss_mb())
    # the two counts behind it: the main process alone, and it with its render workers
    result["peak_main_rss_mb"] = round(main_peak_mb())
    result["peak_with_workers_mb"] = round(TREE.peak_mb)
    return result


def daily_job(work: Path, database_url: str, now: dt.datetime) -> dict:
    """One daily run: every stage, timed, in the flow's order and with its memory hand-offs.
    Read, validate, score and decide are the run's own plan (flows/plan.py, with the holdout
    and the appraisal), timed step by step."""
    from kamflow import config, notifications
    from kamflow.core.links import LinkSigner
    from kamflow.core.settings import Settings
    from kamflow.flows import delivery, plan
    from kamflow.flows.retention import roster_columns
    from kamflow.worklist import TaskStore

    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def lap(stage: str, t0: float) -> float:
        now = time.perf_counter()
        seconds[stage] = round(now - t0, 3)
        return now

    class Timed(plan.Stages):
        """The plan's steps, each timed under its name (intake, validate, score, decide)."""

        def run(self, name: str, step, *args):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            result = step(*args)
            lap(name, t0)
            return result

        def validated(self, found: plan.Plan) -> bool:
            found.validation.release_gx()  # as the flow does once the results are written
            return True

    conf = plan.PlanConfig.load(config.conf_dir())
    assert conf.ruleset is not None
    ruleset = conf.ruleset
    found = plan.plan_snapshot(work / "snapshot", AS_OF, conf, Timed())
    assert found.decisions is not None, found.validation.message
    outcome, decisions = found.validation, found.decisions
    roster_accounts = roster_columns(found.accounts)
    del found
    t = time.perf_counter()
    with TaskStore(database_url) as store:
        roster = store.record_accounts(roster_accounts, now)
        del roster_accounts
        t = lap("roster", t)
        titles = {name: (spec.title_en, spec.title_zh) for name, spec in ruleset.actions.items()}
        raised = delivery.dispatch(decisions, titles, config.load_owners(), store, "bench", now,
                                   config.load_calendar(),
                                   LinkSigner.from_settings(Settings.from_env(home=work)))
        t = lap("dispatch", t)
        drained = delivery.drain_outbox(store, notifications.FileOutbox(work / "outbox"),
                                        "kamflow@operator.example")
        lap("send", t)
    total = round(time.perf_counter() - started, 3)
    return {"seconds": total, "stage_seconds": {**seconds, "total": total},
            "accounts_quarantined": outcome.accounts_quarantined, "accounts_new": roster.new,
            "decisions": len(decisions), "tasks_created": raised.created,
            "tasks_already_open": raised.skipped_open, "emails_sent": drained.sent}


def validate(accounts: int) -> dict:
    """kamflow's validation of a snapshot against GX's own checkpoints on the same frames."""
    from kamflow import config
    from kamflow.expectations import load_suites, validate_snapshot
    from kamflow.expectations.validate import checkpoint_seconds
    from kamflow.generate import generate_snapshot
    from kamflow.intake import read_snapshot

    work = Path(tempfile.mkdtemp(prefix="kamflow-bench-validate-"))
    generate_apart(work / "snapshot", accounts)
    policy = config.load_pipeline().validation
    suites = load_suites()  # imports GX, untimed like the snapshot generation
    # GX's first run in a process loads its metrics: warm it up untimed on a tiny snapshot.
    generate_snapshot(work / "warm-up", 300, AS_OF, seed=7)
    warm_up = read_snapshot(work / "warm-up")
    validate_snapshot(warm_up.tables, warm_up.problems, policy, suites, as_of=AS_OF)
    started = time.perf_counter()
    snapshot = read_snapshot(work / "snapshot")
    intake_seconds = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)  # read: the files are not needed any more
    started = time.perf_counter()
    outcome = validate_snapshot(snapshot.tables, snapshot.problems, policy, suites, as_of=AS_OF)
    seconds = time.perf_counter() - started
    # The same suites on the same frames (the view as kamflow built it), GX alone.
    frames = {**snapshot.tables, "customer_view": outcome.view}
    gx_seconds = checkpoint_seconds(frames, suites, policy, AS_OF)
    return {"benchmark": "validate", "accounts": accounts,
            "rows": sum(len(f) for f in snapshot.tables.values()),
            "seconds": round(seconds, 3), "accounts_per_s": round(accounts / seconds),
            "gx_checkpoint_seconds": round(gx_seconds, 3),
            "overhead_ratio": round(seconds / gx_seconds, 2),
            "intake_seconds": round(intake_seconds, 3), "peak_rss_mb": round(peak_rss_mb()),
            "accounts_quarantined": outcome.accounts_quarantined,
            "quarantine_rows": len(outcome.quarantine), "stopped": outcome.stopped}


def score(accounts: int) -> dict:
    """Scoring alone (value, lifecycle, churn risk, top factors): the customer view is built
    before the clock starts, from generated tables in memory."""

    from kamflow import config
    from kamflow.generate import make_snapshot, typed_tables
    from kamflow.intake import build_customer_view
    from kamflow.scoring import score_accounts

    frames = make_snapshot(accounts, AS_OF, seed=7)
    tables = typed_tables(frames)
    view = build_customer_view(tables, AS_OF)
    scoring = config.load_scoring()
    del frames, tables
    started = time.perf_counter()
    scored = score_accounts(view, scoring)
    seconds = time.perf_counter() - started
    return {"benchmark": "score", "accounts": accounts, "seconds": round(seconds, 3),
            "accounts_per_s": round(accounts / seconds), "peak_rss_mb": round(peak_rss_mb()),
            "value_weights": scoring.value_weights,
            "churn_bands": scored["churn_band"].value_counts().to_dict()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["e2e", "validate", "rules", "dispatch", "score",
                                                       "backtest", "effects"])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--database-url", default=None,
                        help="task store URL (default: SQLite in a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--next-day", action="store_true",
                        help="e2e: also time the next day's run on the same snapshot and store")
    args = parser.parse_args()
    if args.benchmark == "rules":
        from benchmarks.rules_bench import run as rules_benchmark

        result = rules_benchmark(args.accounts)
    elif args.benchmark == "score":
        result = score(args.accounts)
    elif args.benchmark == "backtest":
        from benchmarks.backtest_bench import run as backtest_benchmark

        result = backtest_benchmark(args.accounts)
    elif args.benchmark == "effects":
        from benchmarks.effects_bench import run as effects_benchmark

        result = effects_benchmark(args.accounts)
    elif args.benchmark == "dispatch":
        from benchmarks.dispatch_bench import run as dispatch_benchmark

        result = dispatch_benchmark(args.accounts, args.database_url)
    else:
        result = (validate(args.accounts) if args.benchmark == "validate"
                  else e2e(args.accounts, args.database_url, args.next_day))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
