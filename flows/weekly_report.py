"""``weekly_report``: every Monday morning, the department head's management email.

To the head of the key-account department (conf/owners.yaml ``department_head``), in their
language: churn against the ceiling (this month, trailing 12 months, the last 7 days), revenue
and partial churn, value at risk, the worst regions, industries and value classes, and the
managers' on-time rates; HTML with two inline charts (churn against the ceiling and value at risk
over the last 90 runs, PNG attached by cid) and a plain-text part with the same figures. Written
through the outbox under the week's key (``weekly-report-2026-W49``), so a rerun in the same
week sends no second one. Deployment ``weekly-report`` in conf/prefect.yaml (Monday 08:00
Asia/Shanghai).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from kamflow import config
from kamflow.core.settings import Settings, load_settings
from kamflow.flows.charts import trend_charts
from kamflow.flows.digest import send_stage  # the same send step as the daily digest's
from kamflow.flows.effects import read_effects, weekly_effects
from kamflow.notifications.weekly import CHART_CIDS, render_weekly_report
from kamflow.worklist import OwnerDirectory, TaskStore
from kamflow.worklist.effects import MeasuredEffects
from kamflow.worklist.measures import Ceilings, DepartmentReport, department_report
from kamflow.worklist.outbox import QueuedEmail

STAGE: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
KIND = "weekly_report"
WORST = 3  # groups shown per breakdown
MANAGERS = 10  # managers shown, lowest on-time rate first
MANAGER_DAYS = 28  # the managers' tasks are counted over the last four weeks
TREND_RUNS = 90

log = logging.getLogger(__name__)


def week_key(now: dt.datetime, timezone: str) -> str:
    """The ISO week of ``now`` in the business time zone, e.g. ``2026-W49``."""
    year, week, _ = now.astimezone(ZoneInfo(timezone)).isocalendar()
    return f"{year}-W{week:02d}"


def weekly_figures(year: DepartmentReport, managers: DepartmentReport,
                   week: DepartmentReport, timezone: str) -> dict[str, Any]:
    """The week's figures (notifications.weekly.render_weekly_report) from the department's
    measures: ``year`` over the trailing 12 months (its periods and breakdowns), ``managers``
    broken down by manager over the last four weeks, ``week`` over the last 7 days. Pure."""
    zone = ZoneInfo(timezone)
    periods = {p["period"]: p for p in year.periods}
    this_month = f"{year.now.astimezone(dt.UTC):%Y-%m}"
    trailing = periods["trailing 12 months"]
    month = periods.get(this_month) or {**trailing, **dict.fromkeys(
        ("churn rate", "churn ceiling", "accounts lost", "revenue lost", "revenue churn rate",
         "partial churn accounts", "partial churn rate"), 0)}
    worst = {}
    for dimension in ("region", "industry", "class"):
        rows = [r for r in year.breakdowns.get(dimension, ())
                if r["accounts lost"] or r["partial churn accounts"]]
        rows.sort(key=lambda r: (-r["churn rate"], -r["revenue lost"],
                                 -r["partial churn accounts"], str(r[dimension])))
        worst[dimension] = [{**r, "name": r[dimension]} for r in rows[:WORST]]
    handling = [r for r in managers.breakdowns.get("manager", ()) if r["tasks raised"]]
    handling.sort(key=lambda r: (r["on time share"], -r["overdue share"], str(r["manager"])))
    return {
        "week": week_key(year.now, timezone),
        "as_of": f"{year.now.astimezone(zone):%Y-%m-%d}",
        "managers_since": f"{managers.since.astimezone(zone):%Y-%m-%d}",
        "year": trailing, "month": month, "week_period": week.periods[-1],
        "worst": worst,
        "managers": [{**r, "name": r.get("manager name") or r["manager"], "email": r["manager"]}
                     for r in handling[:MANAGERS]],
    }


def queue_weekly_report(store: TaskStore, now: dt.datetime, owners: OwnerDirectory,
                        timezone: str, ceilings: Ceilings,
                        effects: MeasuredEffects | None = None) -> str | None:
    """Measure, render and queue the week's email to ``owners.department_head``; returns its
    outbox key, or None when nobody is the department head. Queued once per week key: a
    second call in the same week writes nothing."""
    head = owners.department_head
    if head is None:
        log.warning("weekly report: conf/owners.yaml names no department_head; nothing sent")
        return None
    roster = store.roster_rows()
    tasks = store.task_rows(now - dt.timedelta(days=400))
    revenue = store.revenue_rows()
    year = department_report(roster, tasks, now, None, ("region", "industry", "class"),
                             ceilings, revenue)
    managers = department_report(roster, tasks, now, now - dt.timedelta(days=MANAGER_DAYS),
                                 ("manager",), ceilings, revenue)
    week = department_report(roster, tasks, now, now - dt.timedelta(days=7), (), ceilings,
                             revenue)
    figures = weekly_figures(year, managers, week, timezone)
    trend = store.run_figures(TREND_RUNS)
    figures["runs"] = len(trend) or 1
    if effects is not None:  # each action's measured effect, in the head's language
        figures["effects"] = weekly_effects(effects, head.language)
    charts = trend_charts(trend, timezone, figures["year"])
    subject, text, html = render_weekly_report(figures, head.language, head.name)
    key = f"weekly-report-{figures['week']}"
    queued = store.queue_email(QueuedEmail(
        key, head.email.lower(), head.name, subject, text, html, KIND,
        images=tuple((CHART_CIDS[k], f"{k.replace('_', '-')}.png", png)
                     for k, png in charts.items())), now)
    log.info("weekly report %s to %s: %s", figures["week"], head.email,
             "queued" if queued else "queued before (one a week)")
    return key


@task(name="queue-weekly-report", **STAGE)
def queue_stage(store: TaskStore, now: dt.datetime, settings: Settings) -> str | None:
    ceilings = config.load_department(settings.conf_dir / "department.yaml")
    return queue_weekly_report(
        store, now, config.load_owners(settings.conf_dir / "owners.yaml"),
        config.load_calendar(settings.conf_dir / "calendar.yaml").timezone, ceilings,
        read_effects(store, settings.conf_dir))


@flow(name="weekly_report", log_prints=False)
def weekly_report(now: str | None = None) -> State:
    """Queue and send this week's management email to the department head (once a week)."""
    settings = load_settings()
    moment = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    with TaskStore(settings.database_url) as store:
        key = queue_stage(store, moment, settings)
        sent, failed = send_stage(store, settings)
    data = {"weekly_report": key, "emails_sent": sent, "emails_failed": failed}
    if failed:
        return Failed(message=f"{failed} email(s) could not be sent; they stay in the outbox",
                      data=data)
    return Completed(message=f"weekly report {key or '(no department head)'}; {sent} email(s) "
                             "sent", data=data)


if __name__ == "__main__":
    from prefect.schedules import Cron

    weekly_report.serve(name="weekly-report", schedules=[Cron("0 8 * * 1",
                                                              timezone="Asia/Shanghai")])
