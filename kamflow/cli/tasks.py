"""Commands that close the loop on tasks, escalate overdue ones, send digests and serve links.

    kamflow tasks list [--json] [--status S]  the tasks, newest last
    kamflow tasks show ID [--json]          the task, its reason and its whole history
    kamflow tasks ack ID [--note TEXT]      acknowledge (I have it)
    kamflow tasks done ID [--note TEXT]     mark done (closes it; its cooldown starts)
    kamflow tasks done ID --outcome CODE --minutes N [--note TEXT] [--follow-up DATE]
                                            record what happened (conf/outcomes.yaml)
    kamflow tasks import FILE [--mapping M] outcomes logged in a CRM (CSV or Excel)
    kamflow tasks reassign ID --to EMAIL    give it to someone else, who is emailed at once
    kamflow sla-watch [--now ISO]           run the sla_watch flow once
    kamflow digest [--force]                run the daily_digest flow once
    kamflow web [--host H] [--port P]       serve the one-click links of the emails
"""

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kamflow.cli.app import Verbose, app, command, date, positive_int, settings, tasks_app
from kamflow.core import vocabulary
from kamflow.core.errors import KamflowError
from kamflow.core.settings import Settings, configure_prefect_env

TaskId = Annotated[int, typer.Argument(parser=positive_int, metavar="ID", help="task id")]
Note = Annotated[str, typer.Option(help="what was done (kept in the history)")]
By = Annotated[str | None, typer.Option(help="who acts (default: your login name)")]
Rules = Annotated[Path | None, typer.Option(
    help="rule set whose words (action titles, rule descriptions) the emails use "
         "(default: the rules/ shipped with kamflow)")]
Now = Annotated[str | None, typer.Option(
    help="ISO date-time to treat as now (default: the current time)")]

TASK_FIELDS = ("id", "account_id", "account_name", "action", "action_title", "owner_role",
               "owner_name", "owner_email", "priority", "rule_id", "ruleset_version", "reason",
               "status", "created_at", "due_at", "closed_at", "run_id", "value_at_risk",
               "released_at", "effort_hours", "expected_retained_cny_yearly", "effect_source",
               "must_do", "experiment_period", "outcome", "outcome_at", "minutes_spent",
               "retry_at", "follow_up_of")


def _store(home: Settings | None = None) -> Any:
    from kamflow.worklist import TaskStore

    return TaskStore((home or settings()).database_url)


@command(tasks_app, "list", help="list tasks",
         description="List tasks, newest last. The holdout's control group (decisions held out: "
                     "no task, no email) is listed only with --status held_out.")
def list_tasks(json_: Annotated[bool, typer.Option("--json", help="print a JSON array of tasks")]
               = False,
               status: Annotated[str | None, typer.Option(
                   help="only tasks with this status (e.g. open, queued, or held_out: the "
                        "holdout's control group)")] = None,
               limit: Annotated[int | None, typer.Option(
                   parser=positive_int, help="at most N tasks")] = None,
               verbose: Verbose = False) -> int:
    from kamflow.worklist.models import HELD_OUT

    with _store() as store:
        tasks = store.list_tasks(status=status, limit=limit,
                                 exclude=() if status else (HELD_OUT,))
    records = [task_record(t) for t in tasks]
    if json_:
        print(json.dumps(records, ensure_ascii=False, indent=2))
        return 0
    if not records:
        print("no tasks")
        return 0
    calendar = _calendar()
    # Due times as staff read them: in the business zone of conf/calendar.yaml, zone named.
    print(f"{'id':>6}  {'status':<9} {'due (' + calendar.zone_label() + ')':<22} {'pri':>3}  "
          f"{'account':<10} {'action':<24} owner")
    for task, r in zip(tasks, records, strict=True):
        due = calendar.format_local(task.due_at).rsplit(" ", 1)[0]
        print(f"{r['id']:>6}  {r['status']:<9} {due:<22} {r['priority']:>3}  "
              f"{r['account_id']:<10} {r['action']:<24} {r['owner_email']}")
    print(f"{len(records):,} task(s)")
    return 0


def _calendar() -> Any:
    from kamflow import config

    return config.load_calendar(settings().conf_dir / "calendar.yaml")


@command(tasks_app, "show", help="show a task, its reason and its history",
         description="Show one task: account, action, owner, deadline, status, the rule and "
                     "reason that raised it, and every change in its history (created, "
                     "acknowledged, escalated, reassigned, done).")
def show(task_id: TaskId,
         json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
         verbose: Verbose = False) -> int:
    with _store() as store:
        try:
            task = store.get_task(task_id)
        except LookupError as exc:
            raise KamflowError(str(exc)) from None
        history = store.history(task_id)
    record = {**task_record(task), "escalation_level": task.escalation_level,
              "history": [{"at": _iso(e.at), "event": e.event, "detail": e.detail,
                           "outcome": e.outcome, "minutes_spent": e.minutes_spent,
                           "note": e.note} for e in history]}
    if json_:
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    calendar = _calendar()  # times as staff read them: the business zone, named
    local = {key: calendar.format_local(getattr(task, key))
             for key in ("due_at", "created_at", "closed_at", "released_at", "outcome_at",
                         "retry_at")}
    print(f"task {task.id}: {task.action_title} for {task.account_name} ({task.account_id})")
    for label, key in (("status", "status"), ("owner", "owner_email"), ("due", "due_at"),
                       ("priority", "priority"), ("rule", "rule_id"),
                       ("rule set", "ruleset_version"), ("created", "created_at"),
                       ("released", "released_at"), ("closed", "closed_at"),
                       ("escalations", "escalation_level"), ("retry from", "retry_at"),
                       ("follow-up of", "follow_up_of")):
        value = local.get(key) or record.get(key)
        if key == "owner_email":
            value = f"{task.owner_name} <{task.owner_email}>"
        if value is not None:
            print(f"  {label + ':':<13}{value}")
    if task.value_at_risk is not None:  # CNY a month when decided; a year as in the emails
        print(f"  {'at risk:':<13}{task.value_at_risk:,.0f} CNY a month "
              f"({vocabulary.yearly_risk(task.value_at_risk, 'en')})")
    if task.expected_retained_cny_yearly is not None:  # worklist/worth.py
        worth = vocabulary.worth_line(task.expected_retained_cny_yearly, task.effort_hours, "en")
        print(f"  {'worth:':<13}{worth} (effect: {task.effect_source or 'prior'})")
    if task.outcome is not None:
        print(f"  {'outcome:':<13}{_outcome_words(task.outcome)} ({task.outcome}), "
              f"{task.minutes_spent or 0} min in all, {local['outcome_at']}")
    print(f"  {'reason:':<13}{task.reason}")
    print("history:")
    for event, stored in zip(record["history"], history, strict=True):
        line = f"  {calendar.format_local(stored.at):<28}{event['event']:<13}{event['detail']}"
        if stored.outcome is not None:
            line += (f"; outcome {_outcome_words(stored.outcome)} ({stored.outcome}), "
                     f"{stored.minutes_spent or 0} min")
            if stored.note:
                line += f"; note: {_one_line(stored.note)}"
        print(line)
    return 0


def _outcome_words(code: str) -> str:
    """An outcome code in the words of conf/outcomes.yaml (the code itself if no longer
    listed)."""
    from kamflow import config

    try:
        return config.load_outcomes(settings().conf_dir / "outcomes.yaml").words(code, "en")
    except (KamflowError, LookupError):
        return code


def _one_line(text: str) -> str:
    """A stored note as one line of a terminal: control characters (escapes, new lines) shown,
    not obeyed."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@command(tasks_app, "ack", help="acknowledge a task",
         description="Acknowledge a task: you have taken it on. It stays open (and still "
                     "escalates if its deadline passes).")
def ack(task_id: TaskId, note: Note = "", by: By = None, verbose: Verbose = False) -> int:
    return _transition(task_id, "ack", note, by)


@command(tasks_app, "done", help="close a task, with its outcome",
         description="Close a task. With --outcome (a code of conf/outcomes.yaml) and --minutes, "
                     "record what happened, which decides what comes next: a real contact "
                     "(e.g. renewed) makes it done and starts the action's cooldown; "
                     "follow_up also raises a follow-up task (due --follow-up, or the "
                     "outcome's days on); not_reached keeps it open with a retry date; "
                     "not_relevant cancels it without counting as done. Without --outcome the "
                     "task is simply marked done.")
def done(task_id: TaskId, note: Note = "", by: By = None,
         outcome: Annotated[str | None, typer.Option(
             help="what happened: a code of conf/outcomes.yaml, e.g. renewed, not_reached")]
         = None,
         minutes: Annotated[int | None, typer.Option(
             min=0, help="minutes spent (with --outcome)")] = None,
         follow_up: Annotated[dt.date | None, typer.Option(
             "--follow-up", parser=date, metavar="YYYY-MM-DD",
             help="outcome follow_up: the day the follow-up task is due")] = None,
         verbose: Verbose = False) -> int:
    if outcome is None:
        if minutes is not None or follow_up is not None:
            raise KamflowError("--minutes and --follow-up go with --outcome CODE")
        return _transition(task_id, "done", note, by)
    return _record_outcome(task_id, outcome, minutes, note, follow_up, by)


def _record_outcome(task_id: int, code: str, minutes: int | None, note: str,
                    follow_up: dt.date | None, by: str | None) -> int:
    from kamflow import config
    from kamflow.worklist.outcomes import OutcomeRecord
    from kamflow.worklist.store import TaskClosedError

    home = settings()
    outcomes = config.load_outcomes(home.conf_dir / "outcomes.yaml")
    calendar = config.load_calendar(home.conf_dir / "calendar.yaml")
    try:
        chosen = outcomes.get(code)
        spent = outcomes.check_minutes(minutes if minutes is not None else "")
        text = outcomes.check_note(note)
    except LookupError as exc:
        raise KamflowError(f"--outcome: {exc.args[0]}") from None
    except ValueError as exc:
        raise KamflowError(f"--minutes or --note: {exc}" if minutes is not None else
                           "--minutes N is needed with --outcome (minutes spent)") from None
    if follow_up is not None and chosen.then != "follow_up":
        raising = ", ".join(o.code for o in outcomes.outcomes if o.then == "follow_up")
        raise KamflowError(f"--follow-up goes with an outcome that raises a follow-up task "
                           f"({raising}), not {code}")
    now = dt.datetime.now(dt.UTC)
    if follow_up is not None and follow_up <= calendar.today(now):
        raise KamflowError(f"--follow-up {follow_up} is not after today")
    with _store(home) as store:
        try:
            task, _ = store.record_outcome(
                OutcomeRecord(task_id, chosen, spent, text, follow_up), now, _actor(by),
                calendar)
        except (LookupError, TaskClosedError) as exc:
            raise KamflowError(str(exc)) from None
    print(f"task {task.id}: {outcomes.words(code, 'en')} ({code}), {spent} min; it is now "
          f"{task.status}" + (f", retry from {calendar.format_local(task.retry_at)}"
                              if chosen.then == "retry" else ""))
    return 0


def _actor(by: str | None) -> str:
    if by:
        return str(by)
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "cli"


def _transition(task_id: int, action: str, note: str, by: str | None) -> int:
    from kamflow.worklist.store import TaskClosedError

    with _store() as store:
        try:
            task, changed = store.transition(task_id, action, dt.datetime.now(dt.UTC),
                                             _actor(by), note)
        except (LookupError, TaskClosedError) as exc:
            raise KamflowError(str(exc)) from None
    state = "acknowledged" if action == "ack" else "done"
    print(f"task {task.id} is {'now' if changed else 'already'} {state} "
          f"({task.account_id}, {task.action})")
    return 0


@command(tasks_app, "import", help="record outcomes logged in a CRM (CSV or Excel)",
         description="Record the outcomes of tasks from a file (CSV or .xlsx): columns "
                     "task_id, outcome (a code of conf/outcomes.yaml or its words), minutes, "
                     "owner (the email of the task's owner, who logged it), and optionally note "
                     "and follow_up_date; a CRM's own columns are read through --mapping "
                     "(docs/mapping.md, 'Outcome files'). The whole file is checked first: every "
                     "bad row (unknown task, unknown outcome, bad number, a task of another "
                     "owner, a task already closed) is named with its row and field, and then "
                     "nothing is applied. Rows already imported are skipped, so importing a "
                     "file again applies nothing twice.")
def import_outcomes(file: Annotated[Path, typer.Argument(help="the outcome file (.csv, .xlsx)")],
                    mapping: Annotated[Path | None, typer.Option(
                        help="mapping of the CRM's columns to kamflow's")] = None,
                    check: Annotated[bool, typer.Option(
                        "--check", help="check the file only; apply nothing")] = False,
                    by: By = None, verbose: Verbose = False) -> int:
    from kamflow import config
    from kamflow.intake.mapping import load_outcome_mapping, read_outcome_file
    from kamflow.worklist.outcomes import OutcomeProblem, check_rows, import_key
    from kamflow.worklist.store import TaskClosedError

    home = settings()
    outcomes = config.load_outcomes(home.conf_dir / "outcomes.yaml")
    calendar = config.load_calendar(home.conf_dir / "calendar.yaml")
    rows, unmapped = read_outcome_file(file, load_outcome_mapping(mapping) if mapping else None,
                                       mapping)
    now = dt.datetime.now(dt.UTC)
    with _store(home) as store:
        ids = [int(float(r["task_id"])) for r in rows
               if r.get("task_id") and str(r["task_id"]).replace(".", "", 1).isdigit()]
        tasks = store.owners_and_statuses(ids)
        applied = store.applied_keys([import_key(r) for r in rows])
        checked = check_rows(rows, tasks, outcomes, applied, calendar.today(now))
        problems = sorted([OutcomeProblem(*p) for p in unmapped] + checked.problems,
                          key=lambda p: (p.row, p.field))
        if problems:
            shown = "\n".join(f"  {p}" for p in problems[:50])
            more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
            raise KamflowError(f"{file}: {len(problems)} bad row(s); nothing was applied:\n"
                               f"{shown}{more}")
        skipped = len(rows) - len(checked.records)
        if check:
            print(f"{file}: {len(rows):,} row(s) checked: {len(checked.records):,} to apply, "
                  f"{skipped:,} already imported; nothing applied (--check)")
            return 0
        actor = f"{_actor(by)} (import {file.name})"
        try:  # one transaction: a task changed since the check fails it all
            recorded = store.record_outcomes(checked.records, now, actor, calendar)
        except (LookupError, PermissionError, TaskClosedError) as exc:
            raise KamflowError(f"{file}: {exc}; nothing was applied") from None
    before = skipped + len(recorded) - sum(recorded)
    print(f"{file}: {sum(recorded):,} outcome(s) applied, {before:,} already imported before")
    return 0


@command(tasks_app, "reassign", help="give a task to someone else",
         description="Give an open task to another owner. The new owner gets an email at once "
                     "(through the outbox), and the change is kept in the history. The deadline "
                     "stays unless --due-in-days sets a new one (working days, "
                     "conf/calendar.yaml).")
def reassign(task_id: TaskId,
             to: Annotated[str, typer.Option(help="email address of the new owner")],
             name: Annotated[str | None, typer.Option(
                 help="name of the new owner (default: from conf/owners.yaml)")] = None,
             due_in_days: Annotated[float | None, typer.Option(
                 help="new deadline in working days from now")] = None,
             note: Annotated[str, typer.Option(
                 help="why (kept in the history and the email)")] = "",
             rules: Rules = None, by: By = None, verbose: Verbose = False) -> int:
    from kamflow import config
    from kamflow.core.links import LinkSigner
    from kamflow.flows.delivery import reassign_task
    from kamflow.rules import RULES_DIR, load_wording
    from kamflow.worklist.calendar import add_business_time
    from kamflow.worklist.store import TaskClosedError

    if "@" not in to:
        raise KamflowError(f"--to must be an email address, not {to!r}")
    home = settings()
    now = dt.datetime.now(dt.UTC)
    calendar = config.load_calendar(home.conf_dir / "calendar.yaml")
    owners = config.load_owners(home.conf_dir / "owners.yaml")
    due = None
    if due_in_days is not None:
        if due_in_days <= 0:
            raise KamflowError("--due-in-days must be positive")
        person = owners.lookup(to)
        due = add_business_time(now, due_in_days,
                                calendar.with_hours(person.working_hours if person else None))
    # The rule set's words (action titles, rule descriptions) for the new owner's email.
    titles = load_wording(rules or RULES_DIR)
    with _store(home) as store:
        try:
            task = reassign_task(store, owners, task_id, to, _actor(by), now, note, name, due,
                                 titles, calendar.timezone, LinkSigner.from_settings(home))
        except (LookupError, TaskClosedError) as exc:
            raise KamflowError(str(exc)) from None
    print(f"task {task.id} reassigned to {task.owner_name} <{task.owner_email}>; the email to "
          "them is in the outbox (the next run or `kamflow sla-watch` sends it)")
    return 0


def _run_flow_once(name: str, **kwargs: Any) -> Any:
    configure_prefect_env(settings())
    flow: Any
    if name == "sla_watch":
        from kamflow.flows.sla_watch import sla_watch as flow
    else:
        from kamflow.flows.digest import daily_digest as flow
    state = flow(**kwargs, return_state=True)
    data = getattr(state, "data", None)
    if not isinstance(data, dict):
        try:
            data = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - the summary is a nicety; the state says what happened
            data = {}
    data = data if isinstance(data, dict) else {}
    if not state.is_completed():
        raise KamflowError(state.message or f"the {name} run failed; see the log above")
    return state, data


@command(app, "sla-watch", help="escalate overdue tasks once (the hourly flow)",
         description="Run the sla_watch flow once: every open task past its deadline moves one "
                     "rung up its ladder (owner, supervisor, department head; conf/owners.yaml), "
                     "gets a new deadline, a history row, an email to the new owner and a "
                     "Prefect event.")
def sla_watch(now: Now = None, rules: Rules = None, verbose: Verbose = False) -> int:
    _check_iso(now)
    state, data = _run_flow_once("sla_watch", now=now, rules_dir=_rules_dir(rules))
    print(f"sla-watch: {data.get('overdue', 0)} overdue, {data.get('escalated', 0)} escalated, "
          f"{data.get('at_top', 0)} already with the department head; "
          f"{data.get('emails_sent', 0)} email(s) sent")
    return 0


@command(app, "digest", help="email every owner their open tasks (daily)",
         description="Run the daily_digest flow once: one email per owner listing all their "
                     "open tasks, overdue ones marked, with one-click links. At most one digest "
                     "per owner and day.")
def digest(force: Annotated[bool, typer.Option(
               help="send even on a day off in conf/calendar.yaml")] = False,
           now: Now = None, rules: Rules = None, verbose: Verbose = False) -> int:
    _check_iso(now)
    state, _ = _run_flow_once("daily_digest", now=now, force=force, rules_dir=_rules_dir(rules))
    print(f"digest: {state.message}")
    return 0


@command(app, "web", help="serve the one-click task links of the emails",
         description="Serve the links in task emails (acknowledge, mark done): each shows the "
                     "task and a confirm button. Links are signed (KAMFLOW_LINK_SECRET, or a key "
                     "kept in $KAMFLOW_HOME/link-secret) and expire (KAMFLOW_LINK_TTL_DAYS, "
                     "default 7). Set KAMFLOW_PUBLIC_URL to the address staff use to reach this "
                     "server (behind a TLS reverse proxy: docs/configuration.md).")
def web(host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(parser=positive_int, help="port to listen on")] = 8765,
        verbose: Verbose = False) -> int:
    from kamflow.web import run_server

    run_server(settings(), host, port, announce=lambda line: print(line, flush=True))
    return 0


def task_record(task: Any) -> dict[str, Any]:
    """The task as JSON-ready values: times as ISO 8601 with their offset (naive stored times
    are UTC)."""
    record = {name: getattr(task, name) for name in TASK_FIELDS}
    for name in ("created_at", "due_at", "closed_at", "released_at", "outcome_at", "retry_at"):
        if record[name] is not None:
            record[name] = _iso(record[name])
    return record


def _rules_dir(rules: Path | None) -> str | None:
    if rules is not None and not rules.is_dir():
        raise KamflowError(f"rule set directory {rules} does not exist")
    return str(rules.resolve()) if rules else None


def _check_iso(text: str | None) -> None:
    if text is None:
        return
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        raise KamflowError(f"--now {text!r} is not an ISO date-time such as "
                           "2026-11-27T10:00:00+08:00") from None


def _iso(stamp: dt.datetime) -> str:
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).isoformat()
