"""`kamflow report --effects` at national scale: a task store of ``accounts`` accounts (roster
and revenue history) and 90 days of decisions, ``per_day`` a day (the issue's 55,000 tasks a
day), 5 % of them held out and 1 % of accounts lost; then the report's reads, fate join and
statistics are timed as the CLI runs them (TaskStore reads, worklist.effects.measure).

Building the store is not timed: rows are written straight through sqlite3 in SQLAlchemy's
stored text form.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

ACTIONS = ("care_call", "renewal_talk", "tailored_offer", "manager_visit", "sla_review")
CLASSES = ("high", "secondary", "potential", "low")


def _stamp(values: np.ndarray) -> list[str]:
    """datetime64 values as SQLAlchemy stores a DateTime on SQLite."""
    return [f"{str(v).replace('T', ' ')}.000000" for v in values.astype("datetime64[s]")]


def build(path: Path, accounts: int, days: int, per_day: int, seed: int = 3) -> dt.datetime:
    from kamflow.worklist import TaskStore

    url = f"sqlite:///{path}"
    with TaskStore(url):  # the schema, by the migrations
        pass
    rng = np.random.default_rng(seed)
    now = np.datetime64("2026-12-01T06:00:00")
    start = now - np.timedelta64(days + 100, "D")
    ids = np.array([f"A{i:07d}" for i in range(accounts)])
    revenue = rng.gamma(2.0, 5000.0, accounts).round(2)
    lost = rng.random(accounts) < 0.01
    lost_at = start + (rng.random(accounts) * (days + 100) * 86400).astype("timedelta64[s]")
    classes = np.array(CLASSES)[rng.integers(0, 4, accounts)]
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO accounts (account_id, manager_email, manager_name, first_seen, lost_at,"
            " monthly_revenue, region, industry, value_class, value_at_risk) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            zip(ids.tolist(), [f"m{i % 5000}@x.cn" for i in range(accounts)],
                ["M"] * accounts, _stamp(np.full(accounts, start)),
                [s if gone else None for s, gone in zip(_stamp(lost_at), lost, strict=True)],
                revenue.tolist(), [f"R{i % 31}" for i in range(accounts)], ["ICT"] * accounts,
                classes.tolist(), (revenue * 0.05).round(0).tolist(), strict=True))
        changed = rng.random(accounts) < 0.2  # a fifth of the accounts change revenue once
        db.executemany("INSERT INTO account_revenue (account_id, at, monthly_revenue) "
                       "VALUES (?, ?, ?)",
                       [*zip(ids.tolist(), _stamp(np.full(accounts, start)), revenue.tolist(),
                             strict=True),
                        *zip(ids[changed].tolist(),
                             _stamp(start + (rng.random(int(changed.sum())) * days * 86400)
                                    .astype("timedelta64[s]")),
                             (revenue[changed] * rng.uniform(0.2, 1.2, int(changed.sum())))
                             .tolist(), strict=True)])
        for day in range(days):
            who = rng.integers(0, accounts, per_day)
            when = _stamp(np.full(per_day, now - np.timedelta64(days - day, "D")))
            status = np.where(rng.random(per_day) < 0.05, "held_out",
                              np.where(rng.random(per_day) < 0.6, "done", "open"))
            action = np.array(ACTIONS)[rng.integers(0, len(ACTIONS), per_day)]
            db.executemany(
                "INSERT INTO tasks (account_id, account_name, action, action_title, owner_role,"
                " owner_name, owner_email, priority, rule_id, ruleset_version, reason, status,"
                " created_at, due_at, cooldown_days, run_id, escalation_level, value_at_risk)"
                " VALUES (?, '', ?, '', 'account_manager', 'M', 'm@x.cn', 3, ?, 'v', '', ?, ?,"
                " ?, 30, ?, 0, 100.0)",
                zip(ids[who].tolist(), action.tolist(), [f"rule_{a}" for a in action],
                    status.tolist(), when, when, [f"run{day}"] * per_day, strict=True))
        db.execute("INSERT INTO run_figures (run_id, at, accounts, accounts_lost, "
                   "churn_rate_12m, churn_ceiling_12m, revenue_churn_rate_12m, "
                   "revenue_lost_12m, top_value_share, tasks_created) VALUES "
                   "('last', ?, 0, 0, 0, 0, 0, 0, 0, 0)", _stamp(np.array([now])))
    return dt.datetime.fromisoformat(str(now)).replace(tzinfo=dt.UTC)


def run(accounts: int, days: int = 90, per_day: int = 55_000,
        horizons: tuple[int, ...] = (90, 30), path: Path | None = None) -> dict:
    """Build the store (or use ``path`` if it exists), then time the report for each horizon:
    90 days (the default: nearly every decision still pending) and 30 (two months of
    decisions, 3.3M, joined to their fate and counted)."""
    with tempfile.TemporaryDirectory(prefix="kamflow-effects-") as work:
        target = path or Path(work) / "kamflow.db"
        built = time.perf_counter()
        if not target.exists():
            build(target, accounts, days, per_day)
        result: dict = {"benchmark": "effects", "accounts": accounts, "days": days,
                        "decisions_per_day": per_day,
                        "build_seconds": round(time.perf_counter() - built, 1)}
        for horizon in horizons:
            result[f"horizon_{horizon}"] = _report(target, horizon)
    return result


def _report(path: Path, horizon: int) -> dict:
    """The reads and the measure exactly as `kamflow report --effects` runs them."""
    from kamflow.worklist import TaskStore
    from kamflow.worklist.effects import EffectsConfig, measure

    started = time.perf_counter()
    config = EffectsConfig(horizon_days=horizon)
    with TaskStore(f"sqlite:///{path}") as store:
        now = store.last_snapshot_at() or dt.datetime.now(dt.UTC)
        since = now - dt.timedelta(days=horizon + 365)
        matured = store.decision_rows(since, now - dt.timedelta(days=horizon))
        volume = store.decision_volume(since)
        roster, revenue = store.roster_rows(), store.revenue_rows()
    read = time.perf_counter() - started
    found = measure(matured, roster, revenue, now, config, volume)
    seconds = time.perf_counter() - started
    return {"decisions": found.decisions, "counted": found.decisions - found.pending,
            "rows": len(found.rows), "seconds": round(seconds, 2),
            "read_seconds": round(read, 2), "measure_seconds": round(seconds - read, 2)}
