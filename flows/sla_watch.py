"""``sla_watch``: every hour, escalate overdue tasks one rung up their ladder.

An open task (open, acknowledged or escalated) past its deadline moves from its owner to the
owner's supervisor, then on up to the key-account department head (conf/owners.yaml), with a
new deadline of ``escalation_due_days`` working days (conf/calendar.yaml). A run's steps are one
transaction (tasks, history rows, and ONE email per new owner listing every task escalated to
them) followed by a Prefect event ``kamflow.task.escalated`` per step; then the outbox is
drained. Run it once with
``kamflow sla-watch``; serve it hourly with ``python -m flows.sla_watch``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.states import Completed, Failed, State

from kamflow import (
    config,
    notifications,
)
from kamflow.core.errors import KamflowError
from kamflow.core.links import LinkSigner
from kamflow.core.settings import Settings, load_settings
from kamflow.flows.alerts import ops_address
from kamflow.flows.delivery import (
    DrainResult,
    EscalationResult,
    StormPolicy,
    drain_outbox,
    escalate_overdue,
)
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar

# One Prefect task per stage; nothing cached or persisted (a rerun recomputes).
STAGE: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
EVENT = "kamflow.task.escalated"
_EVENT_NAMESPACE = uuid.UUID("6b616d66-6c6f-7700-8000-736c61776174")


def escalation_event_id(task_id: int, level: int) -> uuid.UUID:
    """The same escalation step always has the same event id, so a re-emitted event (after a
    crash between commit and emit) is the same event, not a second one."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"task-{task_id}-level-{level}")


def emit_escalation(step: dict[str, Any]) -> None:
    """A Prefect event per escalation step: resource = the task, related = the new owner."""
    emit_event(
        event=EVENT,
        resource={"prefect.resource.id": f"kamflow.task.{step['task_id']}",
                  "prefect.resource.name": f"task {step['task_id']} {step['account_id']} "
                                           f"{step['action']}"},
        related=[{"prefect.resource.id": f"kamflow.owner.{step['to']}",
                  "prefect.resource.role": "new-owner"},
                 {"prefect.resource.id": f"kamflow.owner.{step['from']}",
                  "prefect.resource.role": "previous-owner"}],
        payload={k: str(v) for k, v in step.items()},
        id=escalation_event_id(step["task_id"], step["level"]),
    )


def readable_step(step: dict[str, Any], calendar: BusinessCalendar) -> dict[str, Any]:
    """An escalation step as a person reads it in the artifact: its times in the business
    zone, the zone named (the Prefect event keeps ISO 8601 with its offset)."""
    return {**step, **{key: calendar.format_local(dt.datetime.fromisoformat(step[key]))
                       for key in ("overdue_since", "due_at")}}


def storm_policy(storm: config.StormSettings) -> StormPolicy:
    """The storm thresholds of conf/pipeline.yaml (``escalation_storm``) as sla_watch uses
    them."""
    return StormPolicy(storm.share, storm.minimum, storm.summary_size,
                       dt.timedelta(hours=storm.alert_quiet_hours))


@task(name="escalate", **STAGE)
def escalate_stage(store: TaskStore, now: dt.datetime, settings: Settings,
                   rules_dir: str | None = None) -> EscalationResult:
    from kamflow.rules import RULES_DIR, load_wording

    # The run's rule set (default: the shipped rules) names the actions and the rules.
    titles = load_wording(rules_dir or RULES_DIR)
    result = escalate_overdue(store, config.load_owners(), config.load_calendar(),
                              config.load_escalation_due_days(), now, titles,
                              LinkSigner.from_settings(settings), emit_escalation,
                              storm=storm_policy(config.load_pipeline().storm),
                              ops_email=ops_address(settings))
    logger = get_run_logger()
    logger.info("sla_watch: %d overdue task(s), %d escalated, %d already at the top of their "
                "ladder, %d changed meanwhile", result.overdue, len(result.escalated),
                len(result.at_top), result.skipped)
    if result.storm:
        logger.warning("sla_watch: escalation storm (%d overdue at once): each new owner got one "
                       "summary email; ops alerted %s", result.overdue,
                       "now" if result.ops_alerted else "already, earlier in this storm")
    if result.skipped_full:
        logger.warning("sla_watch: %d escalation step(s) passed over a supervisor at capacity "
                       "(open_max in conf/owners.yaml): %s", len(result.skipped_full),
                       ", ".join(sorted(set(result.skipped_full))[:20]))
    if result.at_top:
        logger.warning("sla_watch: overdue with no one left to escalate to (department head "
                       "holds them): tasks %s", ", ".join(map(str, result.at_top[:50])))
    return result


@task(name="send", **STAGE)
def send_stage(store: TaskStore, settings: Settings) -> DrainResult:
    backend = notifications.backend_from_env(settings.outbox, settings)
    result = drain_outbox(store, backend, notifications.sender_from_env(settings),
                          dead_after=settings.dead_letter_after, ops_email=settings.ops_email)
    get_run_logger().info("send: %d email(s) sent via %s, %d held, %d failed", result.sent,
                          result.backend, result.held, result.failed)
    return result


@flow(name="sla_watch", log_prints=False)
def sla_watch(now: str | None = None, rules_dir: str | None = None) -> State:
    """Escalate every overdue task one rung up its ladder and email the new owners, worded by
    the rule set in ``rules_dir`` (default: the shipped rules)."""
    moment = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        settings = load_settings()  # here: a Prefect worker runs this function itself
        store = TaskStore(settings.database_url)
    except KamflowError as exc:
        return Failed(message=str(exc))
    with store:
        result = escalate_stage(store, moment, settings, rules_dir)
        drained = send_stage(store, settings)
    if result.escalated:
        calendar = config.load_calendar()
        create_table_artifact([readable_step(s, calendar) for s in result.escalated],
                              key="sla-escalations",
                              description="Overdue tasks escalated in this sla_watch run")
    data = {"overdue": result.overdue, "escalated": len(result.escalated),
            "at_top": len(result.at_top), "storm": result.storm,
            "passed_over_at_capacity": len(result.skipped_full), "emails_sent": drained.sent,
            "emails_failed": drained.failed}
    if drained.failed:
        return Failed(message=f"{drained.failed} email(s) could not be sent; they stay in the "
                              "outbox and the next run sends them", data=data)
    return Completed(message=f"{len(result.escalated)} task(s) escalated", data=data)


if __name__ == "__main__":
    # Hourly, a few minutes past the hour; needs PREFECT_API_URL pointing at a running server.
    sla_watch.serve(name="sla-watch-hourly", cron="5 * * * *")
