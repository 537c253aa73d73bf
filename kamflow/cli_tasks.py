"""Commands that close the loop on tasks, escalate overdue ones, send digests and serve links.

    kamflow tasks show ID [--json]          the task, its reason and its whole history
    kamflow tasks ack ID [--note TEXT]      acknowledge (I have it)
    kamflow tasks done ID [--note TEXT]     mark done (closes it; its cooldown starts)
    kamflow tasks reassign ID --to EMAIL    give it to someone else, who is emailed at once
    kamflow sla-watch [--now ISO]           run the sla_watch flow once
    kamflow digest [--force]                run the daily_digest flow once
    kamflow web [--host H] [--port P]       serve the one-click links of the emails
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
from typing import Any

from kamflow.core.errors import KamflowError
from kamflow.core.settings import configure_prefect_env, paths


def register(commands: Any, groups: dict[str, Any]) -> None:
    from kamflow.cli import common

    tasks = groups["tasks"]
    show = tasks.add_parser("show", help="show a task, its reason and its history",
                            description="Show one task: account, action, owner, deadline, "
                            "status, the rule and reason that raised it, and every change in its "
                            "history (created, acknowledged, escalated, reassigned, done).")
    show.add_argument("id", type=_positive_int, help="task id")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_show)

    leaves = [show]
    for name, verb, text in (("ack", "acknowledge", "Acknowledge a task: you have taken it on. "
                              "It stays open (and still escalates if its deadline passes)."),
                             ("done", "mark", "Mark a task done: it closes, and the same "
                              "action is not raised for the account again during its "
                              "cooldown.")):
        sub = tasks.add_parser(name, help=f"{verb} a task" + (" done" if name == "done" else ""),
                               description=text)
        sub.add_argument("id", type=_positive_int, help="task id")
        sub.add_argument("--note", default="", help="what was done (kept in the history)")
        sub.add_argument("--by", default=None, help="who acts (default: your login name)")
        sub.set_defaults(handler=_transition, action=name)
        leaves.append(sub)

    reassign = tasks.add_parser("reassign", help="give a task to someone else",
                                description="Give an open task to another owner. The new owner "
                                "gets an email at once (through the outbox), and the change is "
                                "kept in the history. The deadline stays unless --due-in-days "
                                "sets a new one (working days, conf/calendar.yaml).")
    reassign.add_argument("id", type=_positive_int, help="task id")
    reassign.add_argument("--to", required=True, help="email address of the new owner")
    reassign.add_argument("--name", default=None,
                          help="name of the new owner (default: from conf/owners.yaml)")
    reassign.add_argument("--due-in-days", type=float, default=None,
                          help="new deadline in working days from now")
    reassign.add_argument("--note", default="", help="why (kept in the history and the email)")
    reassign.add_argument("--by", default=None, help="who acts (default: your login name)")
    reassign.set_defaults(handler=_reassign)
    leaves.append(reassign)

    watch = commands.add_parser("sla-watch", help="escalate overdue tasks once (the hourly flow)",
                                description="Run the sla_watch flow once: every open task past "
                                "its deadline moves one rung up its ladder (owner, supervisor, "
                                "department head; conf/owners.yaml), gets a new deadline, a "
                                "history row, an email to the new owner and a Prefect event.")
    watch.add_argument("--now", default=None,
                       help="ISO date-time to treat as now (default: the current time)")
    watch.set_defaults(handler=_sla_watch)
    leaves.append(watch)

    digest = commands.add_parser("digest", help="email every owner their open tasks (daily)",
                                 description="Run the daily_digest flow once: one email per "
                                 "owner listing all their open tasks, overdue ones marked, with "
                                 "one-click links. At most one digest per owner and day.")
    digest.add_argument("--force", action="store_true",
                        help="send even on a day off in conf/calendar.yaml")
    digest.add_argument("--now", default=None, help="ISO date-time to treat as now")
    digest.set_defaults(handler=_digest)
    leaves.append(digest)

    web = commands.add_parser("web", help="serve the one-click task links of the emails",
                              description="Serve the links in task emails (acknowledge, mark "
                              "done): each shows the task and a confirm button. Links are signed "
                              "(KAMFLOW_LINK_SECRET, or a key kept in $KAMFLOW_HOME/link-secret) "
                              "and expire (KAMFLOW_LINK_TTL_DAYS, default 7). Set KAMFLOW_WEB_URL "
                              "to the address staff use to reach this server.")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on")
    web.add_argument("--port", type=_positive_int, default=8765, help="port to listen on")
    web.set_defaults(handler=_web)
    leaves.append(web)

    for leaf in leaves:
        common(leaf)


def _store() -> Any:
    from kamflow.worklist import TaskStore

    return TaskStore(paths().database_url)


def _actor(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "cli"


def _show(args: argparse.Namespace) -> int:
    store = _store()
    try:
        try:
            task = store.get_task(args.id)
        except LookupError as exc:
            raise KamflowError(str(exc)) from None
        history = store.history(args.id)
    finally:
        store.dispose()
    record = {**_task_record(task), "escalation_level": task.escalation_level,
              "history": [{"at": _iso(e.at), "event": e.event, "detail": e.detail}
                          for e in history]}
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    print(f"task {task.id}: {task.action_title} for {task.account_name} ({task.account_id})")
    for label, key in (("status", "status"), ("owner", "owner_email"), ("due", "due_at"),
                       ("priority", "priority"), ("rule", "rule_id"),
                       ("rule set", "ruleset_version"), ("created", "created_at"),
                       ("closed", "closed_at"), ("escalations", "escalation_level")):
        value = record.get(key)
        if key == "owner_email":
            value = f"{task.owner_name} <{task.owner_email}>"
        if value is not None:
            print(f"  {label + ':':<13}{value}")
    print(f"  {'reason:':<13}{task.reason}")
    print("history:")
    for event in record["history"]:
        print(f"  {event['at'][:19]}  {event['event']:<13}{event['detail']}")
    return 0


def _transition(args: argparse.Namespace) -> int:
    from kamflow.worklist.store import TaskClosedError

    store = _store()
    try:
        try:
            task, changed = store.transition(args.id, args.action, dt.datetime.now(dt.UTC),
                                             _actor(args), args.note)
        except (LookupError, TaskClosedError) as exc:
            raise KamflowError(str(exc)) from None
    finally:
        store.dispose()
    state = "acknowledged" if args.action == "ack" else "done"
    print(f"task {task.id} is {'now' if changed else 'already'} {state} "
          f"({task.account_id}, {task.action})")
    return 0


def _reassign(args: argparse.Namespace) -> int:
    from kamflow import config
    from kamflow.core.links import LinkSigner
    from kamflow.flows.delivery import reassign_task
    from kamflow.rules import load_ruleset
    from kamflow.worklist.calendar import add_business_time
    from kamflow.worklist.store import TaskClosedError

    if "@" not in args.to:
        raise KamflowError(f"--to must be an email address, not {args.to!r}")
    now = dt.datetime.now(dt.UTC)
    calendar = config.load_calendar()
    owners = config.load_owners()
    due = None
    if args.due_in_days is not None:
        if args.due_in_days <= 0:
            raise KamflowError("--due-in-days must be positive")
        person = owners.lookup(args.to)
        due = add_business_time(now, args.due_in_days,
                                calendar.with_hours(person.working_hours if person else None))
    titles = {k: (a.title_en, a.title_zh) for k, a in load_ruleset().actions.items()}
    store = _store()
    try:
        try:
            task = reassign_task(store, owners, args.id, args.to, _actor(args), now, args.note,
                                 args.name, due, titles, calendar.timezone,
                                 LinkSigner.from_env(paths().home))
        except (LookupError, TaskClosedError) as exc:
            raise KamflowError(str(exc)) from None
    finally:
        store.dispose()
    print(f"task {task.id} reassigned to {task.owner_name} <{task.owner_email}>; the email to "
          "them is in the outbox (the next run or `kamflow sla-watch` sends it)")
    return 0


def _run_flow_once(name: str, **kwargs: Any) -> Any:
    configure_prefect_env()
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


def _sla_watch(args: argparse.Namespace) -> int:
    _check_iso(args.now)
    state, data = _run_flow_once("sla_watch", now=args.now)
    print(f"sla-watch: {data.get('overdue', 0)} overdue, {data.get('escalated', 0)} escalated, "
          f"{data.get('at_top', 0)} already with the department head; "
          f"{data.get('emails_sent', 0)} email(s) sent")
    return 0


def _digest(args: argparse.Namespace) -> int:
    _check_iso(args.now)
    state, data = _run_flow_once("daily_digest", now=args.now, force=args.force)
    print(f"digest: {state.message}")
    return 0


def _web(args: argparse.Namespace) -> int:
    import logging

    from kamflow.core.links import LinkSigner
    from kamflow.web import WebApp, make_server

    store = _store()
    signer = LinkSigner.from_env(paths().home)
    from kamflow import config

    timezone = config.load_calendar().timezone
    server = make_server(WebApp(store, signer, timezone), args.host, args.port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(f"kamflow web: serving task links on http://{args.host}:{server.server_address[1]} "
          f"(links in emails point at {signer.base_url}); Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        store.dispose()
    return 0


TASK_FIELDS = ("id", "account_id", "account_name", "action", "action_title", "owner_role",
               "owner_name", "owner_email", "priority", "rule_id", "ruleset_version", "reason",
               "status", "created_at", "due_at", "closed_at", "run_id")


def _task_record(task: Any) -> dict[str, Any]:
    record = {name: getattr(task, name) for name in TASK_FIELDS}
    for name in ("created_at", "due_at", "closed_at"):
        if record[name] is not None:
            record[name] = _iso(record[name])
    return record


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
