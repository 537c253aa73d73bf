"""``daily_digest``: every working morning, one email per owner listing all their open tasks.

Overdue tasks are marked, each task has its one-click links. At most one digest per owner and
business day (the outbox key is derived from both), so a rerun or a crash-and-rerun sends no
second one. On days off in the business calendar it sends nothing unless forced. Run it once
with ``kamflow digest``; serve it with ``python -m flows.digest`` (08:30 Asia/Shanghai, Mon-Fri).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from kamflow import (
    config,
    notifications,
)
from kamflow.core.links import LinkSigner
from kamflow.core.settings import Settings, load_settings
from kamflow.flows.delivery import drain_outbox, queue_daily_digests
from kamflow.worklist import TaskStore

# One Prefect task per stage; nothing cached or persisted (a rerun recomputes).
STAGE: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="queue-digests", **STAGE)
def queue_stage(store: TaskStore, now: dt.datetime, settings: Settings,
                rules_dir: str | None = None) -> int:
    from kamflow.rules import RULES_DIR, load_wording

    # The run's rule set (default: the shipped rules) names the actions and the rules.
    titles = load_wording(rules_dir or RULES_DIR)
    count = queue_daily_digests(store, config.load_owners(), config.load_calendar(), now, titles,
                                LinkSigner.from_settings(settings), settings.render_workers)
    get_run_logger().info("daily digest: %d owner(s) get today's list of open tasks", count)
    return count


@task(name="send", **STAGE)
def send_stage(store: TaskStore, settings: Settings) -> tuple[int, int]:
    backend = notifications.backend_from_env(settings.outbox, settings)
    result = drain_outbox(store, backend, notifications.sender_from_env(settings),
                          dead_after=settings.dead_letter_after, ops_email=settings.ops_email)
    get_run_logger().info("send: %d email(s) sent via %s, %d held, %d failed", result.sent,
                          result.backend, result.held, result.failed)
    return result.sent, result.failed


@flow(name="daily_digest", log_prints=False)
def daily_digest(now: str | None = None, force: bool = False,
                 rules_dir: str | None = None) -> State:
    """Queue and send today's digest of open tasks for every owner (once per day), worded by
    the rule set in ``rules_dir`` (default: the shipped rules)."""
    settings = load_settings()  # here: a Prefect worker runs this function itself
    moment = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    calendar = config.load_calendar()
    day = calendar.local_date(moment)
    if not force and not calendar.is_workday(day):
        return Completed(message=f"{day} is not a working day: no digest",
                         data={"digests": 0, "emails_sent": 0})
    with TaskStore(settings.database_url) as store:
        queued = queue_stage(store, moment, settings, rules_dir)
        sent, failed = send_stage(store, settings)
    data = {"digests": queued, "emails_sent": sent, "emails_failed": failed}
    if failed:
        return Failed(message=f"{failed} email(s) could not be sent; they stay in the outbox",
                      data=data)
    return Completed(message=f"{queued} digest(s) queued, {sent} email(s) sent", data=data)


if __name__ == "__main__":
    from prefect.schedules import Cron

    daily_digest.serve(name="daily-digest", schedules=[Cron("30 8 * * 1-5",
                                                            timezone="Asia/Shanghai")])
