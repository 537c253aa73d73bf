"""``daily_digest``: every working morning, one email per owner listing all their open tasks.

Overdue tasks are marked, each task has its one-click links. At most one digest per owner and
business day (the outbox key is derived from both), so a rerun or a crash-and-rerun sends no
second one. On days off in the business calendar it sends nothing unless forced. Run it once
with ``kamflow digest``; serve it with ``python -m flows.digest`` (08:30 Asia/Shanghai, Mon-Fri).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from kamflow import (
    config,
    notifications,
)
from kamflow.core.links import LinkSigner
from kamflow.core.settings import paths
from kamflow.flows.delivery import drain_outbox, queue_daily_digests
from kamflow.worklist import TaskStore

STAGE = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="queue-digests", **STAGE)
def queue_stage(store: TaskStore, now: dt.datetime) -> int:
    from kamflow.rules import load_ruleset

    titles = {k: (a.title_en, a.title_zh) for k, a in load_ruleset().actions.items()}
    count = queue_daily_digests(store, config.load_owners(), config.load_calendar(), now, titles,
                                LinkSigner.from_env(paths().home))
    get_run_logger().info("daily digest: %d owner(s) get today's list of open tasks", count)
    return count


@task(name="send", **STAGE)
def send_stage(store: TaskStore) -> tuple[int, int]:
    backend = notifications.backend_from_env(paths().outbox)
    result = drain_outbox(store, backend, notifications.sender_from_env())
    get_run_logger().info("send: %d email(s) sent via %s, %d held, %d failed", result.sent,
                          result.backend, result.held, result.failed)
    return result.sent, result.failed


@flow(name="daily_digest", log_prints=False)
def daily_digest(now: str | None = None, force: bool = False) -> State:
    """Queue and send today's digest of open tasks for every owner (once per day)."""
    moment = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    calendar = config.load_calendar()
    day = calendar.local_date(moment)
    if not force and not calendar.is_workday(day):
        return Completed(message=f"{day} is not a working day: no digest",
                         data={"digests": 0, "emails_sent": 0})
    with TaskStore(paths().database_url) as store:
        queued = queue_stage(store, moment)
        sent, failed = send_stage(store)
    data = {"digests": queued, "emails_sent": sent, "emails_failed": failed}
    if failed:
        return Failed(message=f"{failed} email(s) could not be sent; they stay in the outbox",
                      data=data)
    return Completed(message=f"{queued} digest(s) queued, {sent} email(s) sent", data=data)


if __name__ == "__main__":
    from prefect.schedules import Cron

    daily_digest.serve(name="daily-digest", schedules=[Cron("30 8 * * 1-5",
                                                            timezone="Asia/Shanghai")])
