"""The work behind the edge tasks that write and send: dispatch, escalation, digests, the drain.

Plain functions (no Prefect import) so the flows' tasks, the CLI and the crash tests all run the
same code. Each writes through the task store only, in one transaction per unit of work (all new
tasks with their emails; one escalation with its email; all of a day's digests), and email
leaves only through `drain_outbox`.

Delivery guarantees (docs/email-and-tasks.md):

- a task and the email announcing it are committed together or not at all;
- the drain marks each email (or SendGrid batch) sent right after the backend accepted it. The
  only window for a duplicate is between the provider's acceptance and that commit: an email
  still "in flight" when its drain's lease expires is sent again by a later drain (at least
  once, never lost) and a warning names it. Drains running at once claim disjoint rows. The
  file outbox is idempotent by key, so there it is exactly once; SMTP and SendGrid have no
  idempotency key, so there the window is one email (SMTP) or one batch (SendGrid), and
  `kamflow_key` / `X-Kamflow-Key` let a reader spot the duplicate.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kamflow import notifications
from kamflow.core.errors import ConfigError, DiskFullError, is_disk_full
from kamflow.core.links import LinkSigner
from kamflow.core.vocabulary import Wording
from kamflow.notifications.sendgrid_backend import MAX_PERSONALIZATIONS
from kamflow.notifications.workers import RenderPool
from kamflow.worklist import Owner, OwnerDirectory, RaiseResult, TaskStore, plan_tasks
from kamflow.worklist.calendar import BusinessCalendar, CalendarGap, add_business_time
from kamflow.worklist.capacity import DEFAULT_ORDER
from kamflow.worklist.faults import crash_point
from kamflow.worklist.models import OutboxEmail, Task
from kamflow.worklist.outbox import LEASE, decode_images
from kamflow.worklist.plan import owner_address
from kamflow.worklist.store import QueuedEmail
from kamflow.worklist.tasks import DISPATCH_SLICE, Escalation

__all__ = [
    "DrainResult",
    "EmailRenderer",
    "EscalationResult",
    "StormPolicy",
    "dispatch",
    "drain_outbox",
    "escalate_overdue",
    "queue_daily_digests",
    "reassign_task",
    "render_workers_for",
    "rung_with_room",
    "task_view",
]

log = logging.getLogger(__name__)

# (title in English, title in Chinese) per action name, from the run's rule set; a Wording
# (rules.wording) also carries the rules' descriptions the emails' reasons are made from.
Titles = Mapping[str, tuple[str, str]]
Now = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- new tasks -------------------------------------------------------------------------------
def dispatch(decisions: pd.DataFrame, titles: Titles, owners: OwnerDirectory, store: TaskStore,
             run_id: str, now: dt.datetime, calendar: BusinessCalendar | None = None,
             links: LinkSigner | None = None, render_workers: int | None = None,
             slice_size: int = DISPATCH_SLICE, order: str = DEFAULT_ORDER,
             seed: int = 0) -> RaiseResult:
    """Plan the decisions into tasks (owner, business-time deadline) and raise them with one
    email per owner, committed in slices of whole owners (``slice_size`` tasks or so), each
    owner receiving what their capacity (conf/owners.yaml) allows, best first by ``order``
    (worklist/capacity.py), the rest queued; queued tasks of earlier runs are re-ranked with
    today's and released as capacity frees up. "Today" is the business day of the
    ``calendar`` (UTC without one). Big runs render their emails in worker processes
    (``render_workers``; see `render_workers_for`)."""
    planned = plan_tasks(decisions, owners, {k: en for k, (en, _) in titles.items()}, now,
                         calendar)
    render = EmailRenderer("new_tasks", Wording.of(titles), owners,
                           calendar.timezone if calendar else None, now, links)
    day_start = None
    if calendar is not None:
        day_start = dt.datetime.combine(calendar.local_date(now), dt.time(0), calendar.zone)
    pool = _parallel(render, len(planned), render_workers)
    try:  # one set of render workers for every slice
        return store.raise_tasks(planned, run_id, render, now, render_many=pool,
                                 slice_size=slice_size, capacity=owners.capacity_of,
                                 day_start=day_start, order=order, seed=seed)
    finally:
        if pool is not None:
            pool.close()


@dataclass(frozen=True)
class EmailRenderer:
    """One owner's email listing tasks, in the owner's language with their one-click links:
    ``new_tasks`` (the tasks a run just raised; those marked ``urgent`` in an email of their
    own), ``open_tasks`` (the daily digest) or ``escalations`` (the tasks an sla_watch run
    escalated to them). A picklable value, so render workers can run it."""

    template: str
    titles: Titles
    owners: OwnerDirectory
    timezone: str | None
    now: dt.datetime
    links: LinkSigner | None = None

    def __call__(self, owner_name: str, owner_email: str,
                 tasks: list[dict[str, Any]]) -> tuple[str, str, str]:
        language = self.owners.language_of(owner_email)
        tasks = _localise(tasks, self.titles, language)
        if self.links is not None:
            tasks = [{**t, **self.links.links(t["task_id"], owner_email, self.now)}
                     for t in tasks]
        if self.template == "open_tasks":
            return notifications.render_open_tasks_digest(owner_name, tasks, language,
                                                          self.timezone, self.now, self.titles)
        if self.template == "escalations":
            return notifications.render_escalations(owner_name, tasks, language, self.timezone,
                                                    self.titles)
        if tasks and tasks[0].get("urgent"):
            return notifications.render_urgent_tasks(owner_name, tasks, language, self.timezone,
                                                     self.titles)
        return notifications.render_task_digest(owner_name, tasks, language, self.timezone,
                                                self.titles)


PARALLEL_RENDER_FROM = 20_000  # tasks; below this, starting workers costs more than it saves


def render_workers_for(tasks: int, configured: int | None = None) -> int:
    """How many processes render the emails of ``tasks`` tasks: ``configured``
    (``KAMFLOW_RENDER_WORKERS``, 0 = render in this process) if set, else one per CPU for
    20,000 tasks or more, else 0."""
    if configured is not None:
        if configured < 0:
            raise ConfigError("KAMFLOW_RENDER_WORKERS must be 0 or more")
        return configured
    cpus = os.cpu_count() or 1
    return cpus if tasks >= PARALLEL_RENDER_FROM and cpus > 1 else 0


def _parallel(render: EmailRenderer, tasks: int, workers: int | None) -> RenderPool | None:
    """Render workers for ``tasks`` tasks' emails, or None to render in this process; the
    caller closes the pool. The workers yield what ``render`` returns: (subject, text, html)."""
    workers = render_workers_for(tasks, workers)
    if workers <= 0:
        return None
    log.info("rendering the emails of %d task(s) in %d worker process(es)", tasks, workers)
    return RenderPool(render, workers)


def _localise(tasks: list[dict[str, Any]], titles: Titles, language: str) -> list[dict[str, Any]]:
    if language != "zh-CN":
        return tasks
    return [{**t, "action_title": titles.get(t["action"], (t["action_title"],) * 2)[1]}
            for t in tasks]


def task_view(task: Task, **changes: Any) -> dict[str, Any]:
    """A stored task as the email templates take it."""
    view = {"task_id": task.id, "account_id": task.account_id, "account_name": task.account_name,
            "action": task.action, "action_title": task.action_title,
            "priority": task.priority, "due_at": _aware(task.due_at), "reason": task.reason,
            "rule_id": task.rule_id, "status": task.status,
            "escalation_level": task.escalation_level, "value_at_risk": task.value_at_risk,
            "effort_hours": task.effort_hours,
            "expected_retained_cny_yearly": task.expected_retained_cny_yearly,
            "must_do": bool(task.must_do), "factors": task.factors}
    view.update(changes)
    return view


# -- SLA escalation --------------------------------------------------------------------------
@dataclass
class EscalationResult:
    overdue: int = 0
    escalated: list[dict[str, Any]] = field(default_factory=list)
    at_top: list[int] = field(default_factory=list)  # overdue with nobody left above
    skipped: int = 0  # changed by someone else while sla_watch ran
    storm: bool = False  # too many overdue at once: summaries instead of lists
    ops_alerted: bool = False  # this run raised the storm's one ops alert
    # rungs passed over because their open escalated tasks reached their open_max (one entry
    # per task and rung passed over)
    skipped_full: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StormPolicy:
    """When an escalation run is a storm: more than ``share`` of the open tasks overdue at once
    (and at least ``minimum`` of them), as after a holiday missing from the calendar, an outage
    or a first national run. Every overdue task still moves up one rung (the ladder's promise
    that someone above sees it holds), but each new owner gets one summary email of their
    ``summary_size`` most urgent tasks instead of the list, and ops get one alert (none again
    within ``alert_quiet``, so the next hourly runs of the same storm stay quiet)."""

    share: float = 0.25
    minimum: int = 100
    summary_size: int = 20
    alert_quiet: dt.timedelta = dt.timedelta(days=3)  # a storm can outlast a long weekend

    def is_storm(self, overdue: int, open_tasks: int) -> bool:
        return overdue >= self.minimum and overdue > self.share * open_tasks


def escalate_overdue(store: TaskStore, owners: OwnerDirectory, calendar: BusinessCalendar,
                     due_days: float, now: dt.datetime, titles: Titles | None = None,
                     links: LinkSigner | None = None,
                     emit: Callable[[dict[str, Any]], None] | None = None,
                     storm: StormPolicy | None = StormPolicy(),
                     ops_email: str | None = None) -> EscalationResult:
    """Move every overdue open task one rung up its ladder (owner -> supervisor -> ... ->
    department head): new owner, a new deadline of ``due_days`` working days, status
    ``escalated`` and a history row per task, and ONE email per new owner listing every task
    escalated to them (by priority, then the longest overdue; each with its ladder and links),
    all committed together; then ``emit(step)`` per step (the flow sends a Prefect event).
    In a ``storm`` each new owner gets a summary instead, and ``ops_email`` one alert."""
    result = EscalationResult()
    overdue = store.overdue_tasks(now)
    result.overdue = len(overdue)
    open_tasks = store.open_task_count() if storm is not None and overdue else 0
    result.storm = storm is not None and storm.is_storm(len(overdue), open_tasks)
    ladders = store.ladders([t.id for t in overdue])
    steps: list[Escalation] = []
    held_now = store.escalated_open_counts() if overdue else {}
    for task in overdue:
        rungs = owners.ladder(task.owner_email)
        if not rungs:
            result.at_top.append(task.id)
            continue
        rung, full = rung_with_room(rungs, owners, held_now)
        held_now[owner_address(rung.email)] = held_now.get(owner_address(rung.email), 0) + 1
        if task.escalation_level > 0:  # it leaves its present (escalated) owner
            mine = owner_address(task.owner_email)
            held_now[mine] = max(0, held_now.get(mine, 0) - 1)
        result.skipped_full.extend(full)
        level = task.escalation_level + 1
        due = add_business_time(now, due_days, calendar.with_hours(rung.working_hours))
        held = [*ladders.get(task.id, [(task.owner_email, _aware(task.created_at))]),
                (rung.email, now)]
        view = task_view(task, due_at=due, escalation_level=level, status="escalated",
                         overdue_since=_aware(task.due_at),
                         ladder=[(_who(owners, email), since) for email, since in held])
        detail = (f"step {level}: {task.owner_email} -> {rung.email}; overdue since "
                  f"{_aware(task.due_at):%Y-%m-%d %H:%M} UTC; new due {due:%Y-%m-%d %H:%M} UTC"
                  + (f"; skipped (at capacity): {', '.join(full)}" if full else ""))
        steps.append(Escalation(task, owner_address(rung.email), rung.name, due, detail, view))
    render = EmailRenderer("escalations", Wording.of(titles or {}), owners, calendar.timezone,
                           now, links)
    alert = None
    if result.storm and storm is not None:
        log.warning("escalation storm: %d of %d open task(s) overdue at once; each new owner "
                    "gets one summary email", len(overdue), open_tasks)
        if ops_email:
            alert = storm_alert(ops_email, len(overdue), open_tasks, now, storm)
    taken, result.ops_alerted = store.escalate_all(
        steps, now, render, summary_size=storm.summary_size if result.storm and storm else None,
        storm_alert=alert, alert_quiet=storm.alert_quiet if storm else dt.timedelta(0))
    result.skipped = len(steps) - len(taken)
    for step in taken:
        task = step.task
        level = task.escalation_level + 1
        event = {"task_id": task.id, "account_id": task.account_id, "action": task.action,
                 "level": level, "from": task.owner_email, "to": step.owner_email,
                 "overdue_since": _aware(task.due_at).isoformat(),
                 "due_at": step.due_at.isoformat()}
        result.escalated.append(event)
        log.info("escalated task %d (%s, %s) %s", task.id, task.account_id, task.action,
                 step.detail)
        if emit is not None:
            emit(event)
    if result.at_top:
        log.warning("%d overdue task(s) are already with the top of their ladder (no one left to "
                    "escalate to): %s", len(result.at_top),
                    ", ".join(map(str, result.at_top[:20])))
    return result


def rung_with_room(rungs: list[Owner], owners: OwnerDirectory,
                   held: Mapping[str, int]) -> tuple[Owner, list[str]]:
    """The rung an overdue task escalates to (issue 17): the first of ``rungs`` whose open
    escalated tasks (``held``, per address) are below their ``open_max`` (conf/owners.yaml,
    role ``supervisor`` unless set for the person); a rung at capacity is passed over. The
    last rung (the department head) always takes it. Returns it and the rungs passed over."""
    full: list[str] = []
    for rung in rungs[:-1]:
        limit = owners.capacity_of(rung.email, "supervisor").open_max
        if limit is None or held.get(owner_address(rung.email), 0) < limit:
            return rung, full
        full.append(rung.email)
    return rungs[-1], full


def storm_alert(ops_email: str, overdue: int, open_tasks: int, now: dt.datetime,
                storm: StormPolicy) -> QueuedEmail:
    """The one email telling ops that an escalation storm began."""
    share = 100 * overdue / max(open_tasks, 1)
    text = (f"sla_watch found {overdue} of {open_tasks} open tasks ({share:.0f} %) overdue at "
            f"once at {now.isoformat()}, more than the storm threshold of "
            f"{100 * storm.share:.0f} %.\n\nThey were escalated one rung each, and each new "
            "owner got one summary email instead of the full list.\n\nTypical causes: a "
            "holiday missing from conf/calendar.yaml, a system outage that stopped work, or a "
            "first national run. Check the calendar and the owners, then handle or reassign the "
            "tasks (`kamflow tasks list`).\n\nNo further storm alert is sent for "
            f"{storm.alert_quiet}.\n")
    return QueuedEmail(f"storm-{now.astimezone(dt.UTC):%Y%m%dT%H%M%S}", ops_email, "ops",
                       f"[kamflow] Escalation storm: {overdue} of {open_tasks} open tasks "
                       "overdue at once", text, "", "storm_alert")


def calendar_alert(ops_email: str, gap: CalendarGap, today: dt.date) -> QueuedEmail:
    """The email telling ops that the holiday data runs out within the horizon: once per gap
    (its missing years) and ISO week of the run's date; daily runs repeat it in their summary,
    not in ops' inbox, and a rerun's outbox key is the same (the outbox keeps one)."""
    year, week, _ = today.isocalendar()
    years = "-".join(str(y) for y in gap.years)
    return QueuedEmail(f"calendar-gap-{years}-{year}w{week:02d}", ops_email, "ops",
                       f"[kamflow] Business calendar: no holiday arrangement from "
                       f"{gap.first.isoformat()}",
                       f"The retention run of {today.isoformat()} found: {gap.message()}."
                       "\n\nUntil then the deadlines of tasks due on those days may fall on "
                       "days off, and make-up workdays are not counted as worked.\n", "",
                       "calendar_alert")


def _who(owners: OwnerDirectory, email: str) -> str:
    """A ladder rung as a reader knows it: the person's name when the directory has it."""
    person = owners.lookup(email) if email else None
    return f"{person.name} <{person.email}>" if person else email


# -- the daily digest ------------------------------------------------------------------------
def queue_daily_digests(store: TaskStore, owners: OwnerDirectory, calendar: BusinessCalendar,
                        now: dt.datetime, titles: Titles | None = None,
                        links: LinkSigner | None = None, render_workers: int | None = None) -> int:
    """One email per owner listing all their open tasks (overdue marked, with links), at most one
    per owner and business day (the day in the calendar's timezone)."""
    day = calendar.local_date(now)
    render = EmailRenderer("open_tasks", Wording.of(titles or {}), owners, calendar.timezone,
                           now, links)
    pool = _parallel(render, store.open_task_count(), render_workers)
    try:
        return store.queue_digests(day, render, now, render_many=pool)
    finally:
        if pool is not None:
            pool.close()


# -- reassignment ------------------------------------------------------------------------------
def reassign_task(store: TaskStore, owners: OwnerDirectory, task_id: int, to_email: str,
                  actor: str, now: dt.datetime, note: str = "", to_name: str | None = None,
                  due_at: dt.datetime | None = None, titles: Titles | None = None,
                  timezone: str | None = None, links: LinkSigner | None = None) -> Task:
    """Give a task to ``to_email`` and queue the email telling them (one transaction)."""
    to_email = owner_address(to_email)  # stored as new tasks' owners are: one digest each
    task = store.get_task(task_id)
    person = owners.lookup(to_email)
    name = to_name or (person.name if person else to_email)
    language = person.language if person else owners.manager_language
    view = task_view(task, **({"due_at": due_at} if due_at else {}))
    view = _localise([view], titles or {}, language)[0]
    if links is not None:
        view.update(links.links(task.id, to_email, now))
    previous = f"{task.owner_name} <{task.owner_email}>"
    subject, text, html = notifications.render_task_assignment(
        name, view, "reassignment", actor or previous, language, timezone, note,
        wording=Wording.of(titles or {}))
    email = QueuedEmail(f"reassign-{task_id}-{uuid.uuid4().hex[:12]}", to_email, name, subject,
                        text, html, "reassignment", (task_id,))
    return store.reassign(task_id, to_email, name, now, actor, note, due_at, email)


# -- sending -----------------------------------------------------------------------------------
DEAD_LETTER_AFTER = 5  # permanent failures (KAMFLOW_DEAD_LETTER_AFTER)
DEAD_LETTER_KIND = "dead_letter_alert"


@dataclass
class DrainResult:
    sent: int = 0
    failed: int = 0
    held: int = 0
    resent_in_doubt: int = 0
    backend: str = ""
    errors: list[str] = field(default_factory=list)
    dead_lettered: int = 0  # failed permanently for the last allowed time: no longer retried
    ops_alerted: int = 0  # dead-letter alerts queued to ops (one per batch of dead letters)


def outbox_email(row: OutboxEmail, sender: str) -> notifications.Email:
    """An outbox row as the email a backend sends, tagged for SendGrid (category per kind,
    custom args with the task ids, the run and the kind)."""
    return notifications.Email(
        key=row.key, sender=sender, to=row.recipient, subject=row.subject, text=row.body_text,
        html=row.body_html or None, categories=("kamflow", row.kind.replace("_", "-")),
        custom_args={"task_ids": row.task_ids[:900], "run_id": row.run_id[:100],
                     "kind": row.kind},
        inline_images=tuple(notifications.InlineImage(cid, data, name) for cid, name, data
                            in decode_images(getattr(row, "inline_images", None))))


def drain_outbox(store: TaskStore, backend: notifications.EmailBackend, sender: str,
                 now: Now = _utcnow, batch_size: int | None = None,
                 dead_after: int = DEAD_LETTER_AFTER, ops_email: str | None = None,
                 lease: dt.timedelta = LEASE) -> DrainResult:
    """Send every unsent email (this run's and any a crash left behind), marking each one sent
    right after the backend accepted it. Batched (1,000 per request) when the backend can.
    An email refused permanently ``dead_after`` times becomes a dead letter: not retried,
    counted apart from the failures, and ``ops_email`` told once per batch of them.

    Each page is claimed with a token and a ``lease`` (`TaskStore.claim_unsent`): a drain
    running at the same time (an sla_watch during the digest's drain, a rerun) takes other
    rows, never these; rows of a drain that died are taken back once its lease expired."""
    result = DrainResult(backend=backend.name)
    size = batch_size or getattr(backend, "batch_size", None) or (
        MAX_PERSONALIZATIONS if hasattr(backend, "send_many") else 1)
    total = store.unsent_count()
    handled = last_id = 0
    token = uuid.uuid4().hex
    while chunk := store.claim_unsent(token, now(), lease, after_id=last_id, limit=size):
        last_id = chunk[-1].id
        for row in chunk:
            if row.in_flight_since is not None:
                result.resent_in_doubt += 1
                log.warning("email %s to %s was being sent when an earlier run stopped (%s); "
                            "sending it again, so it may arrive twice (at-least-once)", row.key,
                            row.recipient, row.in_flight_since)
        crash_point("send.claimed")
        outcomes = send_each(backend, chunk, sender)
        crash_point("send.accepted")
        accepted = [(row.id, outcome) for row, outcome in zip(chunk, outcomes, strict=True)
                    if isinstance(outcome, str)]
        store.mark_sent_many(accepted, backend.name, now())
        result.sent += sum(1 for _, o in accepted if o != notifications.HELD)
        result.held += sum(1 for _, o in accepted if o == notifications.HELD)
        dead: list[OutboxEmail] = []
        for row, outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, notifications.SendError):
                result.errors.append(str(outcome))
                if store.mark_failed(row.id, str(outcome), outcome.permanent, dead_after, now()):
                    dead.append(row)
                    log.error("email %s to %s failed permanently %d times (%s): a dead letter, "
                              "no longer retried", row.key, row.recipient, dead_after, outcome)
                    continue
                result.failed += 1
                log.warning("email %s to %s failed (%s); it stays in the outbox", row.key,
                            row.recipient, outcome)
        result.dead_lettered += len(dead)
        alerted = [row for row in dead if row.kind != DEAD_LETTER_KIND]  # no alert about alerts
        if alerted and ops_email:  # queued after this page: the drain sends it on a later one
            result.ops_alerted += store.queue_email(dead_letter_alert(ops_email, alerted,
                                                                      dead_after), now())
        crash_point("send.marked")
        full = next((o for o in outcomes if isinstance(o, notifications.SendError)
                     and is_disk_full(o)), None)
        if full is not None:  # every later write would fail too: stop, the next run goes on
            raise DiskFullError(getattr(backend, "directory", backend.name), full.reason)
        handled += len(chunk)
        if total > size:  # a long drain shows its progress
            log.info("outbox: %d of %d email(s) handled", handled, total)
    log.info("outbox: %d email(s) sent via %s, %d held by the sandbox, %d failed, %d dead "
             "letter(s)", result.sent, backend.name, result.held, result.failed,
             result.dead_lettered)
    return result


def dead_letter_alert(ops_email: str, dead: list[OutboxEmail], dead_after: int) -> QueuedEmail:
    """The one email telling ops which emails were given up on, and why."""
    lines = "\n".join(f"- {row.key} ({row.kind}) to {row.recipient}: {row.last_error or ''}"
                       for row in dead[:50])
    more = f"\n... and {len(dead) - 50} more" if len(dead) > 50 else ""
    text = (f"{len(dead)} email(s) were refused permanently {dead_after} times and are now dead "
            f"letters: kamflow no longer retries them.\n\n{lines}{more}\n\nFix the cause (an "
            "owner's address in the snapshot or conf/owners.yaml, the sender's configuration), "
            "then reassign or handle the tasks: `kamflow tasks list`. Each is kept in the "
            "outbox table with its error (dead_at set).\n")
    return QueuedEmail(f"dead-letters-{dead[0].id}-{len(dead)}", ops_email, "ops",
                       f"[kamflow] {len(dead)} email(s) given up after {dead_after} permanent "
                       "failures", text, "", DEAD_LETTER_KIND)


def send_each(backend: notifications.EmailBackend, rows: list[OutboxEmail],
              sender: str) -> list[str | notifications.SendError]:
    """One outcome per row: what ``send_all`` returned, with an email that cannot even be
    built, or that makes the backend raise, failing alone (a permanent ``SendError``) while the
    rest go: a bad value must not leave the batch in flight for every later drain to trip on."""
    outcomes: list[str | notifications.SendError | None] = []
    emails: list[notifications.Email] = []
    for row in rows:
        try:
            emails.append(outbox_email(row, sender))
            outcomes.append(None)
        except (ValueError, TypeError) as exc:
            outcomes.append(_broken(backend, row.key, row.recipient, exc))
    sent = iter(_send_isolated(backend, emails))
    return [next(sent) if outcome is None else outcome for outcome in outcomes]


def _send_isolated(backend: notifications.EmailBackend, emails: list[notifications.Email],
                   ) -> list[str | notifications.SendError]:
    if not emails:
        return []
    if not hasattr(backend, "send_many"):  # one at a time: each email's own outcome
        outcomes: list[str | notifications.SendError] = []
        for email in emails:
            try:
                outcomes.append(backend.send(email))
            except notifications.SendError as exc:
                outcomes.append(exc)
            except Exception as exc:  # noqa: BLE001 - a backend's bug fails this email alone
                outcomes.append(_broken(backend, email.key, email.to, exc))
        return outcomes
    try:
        return notifications.send_all(backend, emails)
    except Exception as exc:  # noqa: BLE001 - the backends return errors; this is a last resort
        if len(emails) == 1:
            return [_broken(backend, emails[0].key, emails[0].to, exc)]
        log.warning("%s raised on a batch of %d email(s) (%s: %s); sending them one by one",
                    backend.name, len(emails), type(exc).__name__, exc)
        return [_send_isolated(backend, [email])[0] for email in emails]


def _broken(backend: notifications.EmailBackend, key: str, recipient: str,
            exc: Exception) -> notifications.SendError:
    return notifications.SendError(backend=backend.name, recipient=recipient, key=key,
                                   reason=f"cannot send this email ({type(exc).__name__}: {exc})",
                                   permanent=True)


def _aware(stamp: dt.datetime) -> dt.datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
