"""The ``kamflow`` command line. Every command has ``--help``; bad input exits non-zero with one
paragraph saying what is wrong (never a traceback)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kamflow.core.errors import BatchRejected, KamflowError
from kamflow.core.settings import configure_prefect_env, paths

if TYPE_CHECKING:  # imported when used: the CLI starts fast
    from kamflow.flows.history import HistorySource

EPILOG = """State lives in $KAMFLOW_HOME (default ~/.kamflow): kamflow.db (tasks), outbox/ (emails
as .eml when no email backend is configured), quarantine/, reports/, prefect/ (PREFECT_HOME).
Set PREFECT_API_URL to send runs to a running `prefect server start`; without it each command
starts a temporary local Prefect server."""


# Commands that live in their own modules: each module has ``register(commands, groups)`` that adds
# its subcommands to ``commands`` (top level) or to ``groups["tasks"]`` / ``groups["rules"]``,
# calling ``common(sub)`` on each leaf and setting ``handler``.
EXTENSIONS: tuple[str, ...] = ("kamflow.cli_ops", "kamflow.cli_rules", "kamflow.cli_tasks",
                               "kamflow.cli_validate", "kamflow.cli_backtest")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        # Prefect prints its own run logs; this adds kamflow's library loggers.
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except KamflowError as exc:
        print(f"kamflow: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kamflow: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "verbose", False):
            raise
        print(f"kamflow: unexpected error: {exc.__class__.__name__}: {exc}. This is a bug in "
              "kamflow, not in your input; run the command again with --verbose for the "
              "traceback and report it.", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kamflow", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Key-account retention for telecom operators: validate the customer "
                    "snapshot, score value and churn risk, apply the retention rules, and "
                    "dispatch tasks and emails to the staff who must act.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("generate", help="write a realistic sample snapshot (CSV files)",
                              description="Write a deterministic sample snapshot of key accounts "
                              "(accounts, billing, complaints, SLA incidents) as UTF-8 CSV files. "
                              "See docs/input-files.md.")
    gen.add_argument("--accounts", type=_positive_int, default=2000, help="number of accounts")
    gen.add_argument("--out", type=Path, required=True, help="directory to write the CSV files to")
    gen.add_argument("--as-of", type=_date, default=None,
                     help="snapshot date YYYY-MM-DD (default: today)")
    gen.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    gen.add_argument("--bad-share", type=float, default=0.005,
                     help="share of accounts given deliberately bad rows (default 0.005)")
    gen.set_defaults(handler=_generate)

    demo = commands.add_parser("demo", help="generate ~2,000 accounts and run the daily job once",
                               description="Generate a sample snapshot under $KAMFLOW_HOME/demo "
                               "and run the retention flow on it, then say where to look.")
    demo.add_argument("--accounts", type=_positive_int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="run the retention flow on a snapshot directory",
                              description="Run intake, validation, scoring, rules and dispatch "
                              "on the snapshot in SOURCE. Rerunning the same snapshot raises no "
                              "duplicate task and sends no email twice.")
    run.add_argument("--source", type=Path, required=True, help="snapshot directory (CSV files)")
    run.add_argument("--as-of", type=_date, default=None,
                     help="snapshot date YYYY-MM-DD (default: today)")
    run.add_argument("--rules", type=Path, default=None,
                     help="rule set directory (default: the rules/ shipped with kamflow)")
    run.add_argument("--mapping", type=Path, default=None,
                     help="mapping file (YAML) for an operator's own export (docs/mapping.md)")
    run.add_argument("--partitions", type=_positive_int, default=1,
                     help="score and decide in N parallel partitions on a Dask cluster "
                          "(default 1: in this process)")
    run.add_argument("--dask-address", default=None,
                     help="scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 "
                          "(default with --partitions: a local cluster)")
    run.add_argument("--dask-workers", type=_positive_int, default=2,
                     help="worker processes of the local Dask cluster (default 2)")
    history = run.add_argument_group(
        "labelled history", "learn churn risk from a past snapshot whose accounts' outcome is "
        "known (what is learnt: churn.learn in conf/scoring.yaml; docs/configuration.md)")
    history.add_argument("--history", type=Path, default=None, metavar="DIR",
                         help="past snapshot directory, read through --mapping like SOURCE")
    history.add_argument("--history-labels", type=Path, default=None, metavar="CSV",
                         help="known outcomes (default: DIR/ground_truth.csv)")
    history.add_argument("--history-id-column", default=None,
                         help="account id column of the labels (default: account_id)")
    history.add_argument("--history-label-column", default=None,
                         help="outcome column, 1 = churned (default: declining for "
                              "ground_truth.csv, else churned)")
    history.add_argument("--history-as-of", type=_date, default=None,
                         help="the date the history snapshot was taken (default: --as-of)")
    run.set_defaults(handler=_run)

    tasks = commands.add_parser("tasks", help="list the tasks in the task store")
    tasks_commands = tasks.add_subparsers(dest="tasks_command", required=True, metavar="COMMAND")
    listing = tasks_commands.add_parser("list", help="list tasks",
                                        description="List tasks, newest last.")
    listing.add_argument("--json", action="store_true", help="print a JSON array of tasks")
    listing.add_argument("--status", default=None, help="only tasks with this status (e.g. open)")
    listing.add_argument("--limit", type=_positive_int, default=None, help="at most N tasks")
    listing.set_defaults(handler=_tasks_list)

    rules = commands.add_parser("rules", help="check a rule set")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    check = rules_commands.add_parser("check", help="validate a rule set before it is used",
                                      description="Check every rule file in DIR (default: the "
                                      "shipped rules/) and report each problem with file, line "
                                      "and rule id.")
    check.add_argument("directory", nargs="?", type=Path, default=None)
    check.set_defaults(handler=_rules_check)

    for sub in (gen, demo, run, listing, check):
        common(sub)
    groups = {"tasks": tasks_commands, "rules": rules_commands}
    for module in EXTENSIONS:
        importlib.import_module(module).register(commands, groups)
    return parser


def common(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options every leaf command takes."""
    sub.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    return sub


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _generate(args: argparse.Namespace) -> int:
    from kamflow.generate import generate_snapshot

    as_of = args.as_of or dt.date.today()
    if not 0 <= args.bad_share <= 1:
        raise KamflowError("--bad-share must be between 0 and 1")
    rows = generate_snapshot(args.out, args.accounts, as_of, seed=args.seed,
                             bad_share=args.bad_share)
    print(f"wrote a snapshot of {args.accounts:,} accounts as of {as_of} to {args.out}: "
          + ", ".join(f"{name} {n:,} rows" for name, n in rows.items()))
    return 0


def _run_flow(source: Path, as_of: dt.date | None, rules: Path | None,
              mapping: Path | None = None, scale: argparse.Namespace | None = None,
              history: HistorySource | None = None) -> tuple[bool, str, dict[str, Any]]:
    if not source.is_dir():
        raise KamflowError(f"snapshot directory {source} does not exist")
    if mapping and not mapping.is_file():
        raise KamflowError(f"mapping file {mapping} does not exist")
    if history is not None and not Path(history.source).is_dir():
        raise KamflowError(f"history snapshot directory {history.source} does not exist")
    configure_prefect_env()
    from kamflow.flows.retention import retention_run, summary_path

    flow, partitions = retention_run, 1
    if scale is not None and (scale.partitions > 1 or scale.dask_address):
        from kamflow.flows.scaleout import retention_run_on_dask

        flow = retention_run_on_dask(scale.dask_address, scale.dask_workers)
        partitions = max(scale.partitions, 1)
    state = flow(source=str(source.resolve()), as_of=as_of.isoformat() if as_of else None,
                 rules_dir=str(rules.resolve()) if rules else None,
                 mapping=str(mapping.resolve()) if mapping else None, partitions=partitions,
                 history=history, return_state=True)
    summary = _read_summary(summary_path(str(state.state_details.flow_run_id)))
    return state.is_completed(), state.message or "", summary


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the summary is a nicety; the state says what happened


def _print_summary(summary: dict[str, Any]) -> None:
    if not summary:
        return
    print(f"accounts: {summary.get('accounts_in', 0):,} in, "
          f"{summary.get('accounts_quarantined', 0):,} quarantined")
    if summary.get("value_classes"):
        print("value classes: " + ", ".join(f"{k} {v:,}" for k, v in
                                            summary["value_classes"].items()))
        print("churn bands: " + ", ".join(f"{k} {v:,}" for k, v in
                                          summary["churn_bands"].items()))
        print(f"churn risk: {summary.get('churn_risk_from', '')}")
        print(f"decisions: {summary.get('decisions', 0):,}; tasks created: "
              f"{summary.get('tasks_created', 0):,} (already open: "
              f"{summary.get('tasks_already_open', 0):,}); emails sent: "
              f"{summary.get('emails_sent', 0):,} via {summary.get('email_backend')}")
    if summary.get("quarantine_file"):
        print(f"quarantine: {summary['quarantine_file']}")
    if summary.get("validation_report"):
        print(f"validation report: {summary['validation_report']}")
    if summary.get("data_docs"):
        print(f"data docs: {summary['data_docs']}")


def _history(args: argparse.Namespace) -> HistorySource | None:
    """The --history options as the flow's ``history`` parameter (None without --history)."""
    if args.history is None:
        given = [name for name in ("history_labels", "history_id_column", "history_label_column",
                                   "history_as_of") if getattr(args, name) is not None]
        if given:
            raise KamflowError(f"--{given[0].replace('_', '-')} needs --history DIR")
        return None
    from kamflow.flows.history import HistorySource

    taken = args.history_as_of or args.as_of  # None: the flow's own date
    return HistorySource(
        str(args.history.resolve()),
        str(args.history_labels.resolve()) if args.history_labels else None,
        args.history_id_column, args.history_label_column,
        taken.isoformat() if taken else None)


def _run(args: argparse.Namespace) -> int:
    ok, message, summary = _run_flow(args.source, args.as_of, args.rules, args.mapping, args,
                                     _history(args))
    _print_summary(summary)
    _raise_unless(ok, message, summary)
    return 0


def _raise_unless(ok: bool, message: str, summary: dict[str, Any]) -> None:
    if ok:
        return
    if summary.get("status") == "stopped by validation":
        raise BatchRejected(message)
    raise KamflowError(message or "the retention run failed; see the log above")


def _demo(args: argparse.Namespace) -> int:
    from kamflow.generate import generate_snapshot

    home = paths()
    source = home.home / "demo"
    as_of = dt.date.today()
    generate_snapshot(source, args.accounts, as_of, seed=args.seed)
    print(f"generated {args.accounts:,} sample accounts in {source}")
    ok, message, summary = _run_flow(source, as_of, None)
    _print_summary(summary)
    _raise_unless(ok, message, summary)
    print(f"\nWhere to look:\n  emails:  {home.outbox} (.eml files, open with any mail client)\n"
          f"  tasks:   kamflow tasks list   (or --json)\n"
          f"  the UI:  prefect server start, then set PREFECT_API_URL=http://127.0.0.1:4200/api "
          "and run again; see README.md")
    return 0


def _tasks_list(args: argparse.Namespace) -> int:
    from kamflow.worklist import TaskStore

    store = TaskStore(paths().database_url)
    try:
        tasks = store.list_tasks(status=args.status, limit=args.limit)
    finally:
        store.dispose()
    records = [_task_record(t) for t in tasks]
    if args.json:
        print(json.dumps(records, ensure_ascii=False, indent=2))
        return 0
    if not records:
        print("no tasks")
        return 0
    print(f"{'id':>6}  {'status':<8} {'due':<16} {'pri':>3}  {'account':<10} {'action':<24} owner")
    for r in records:
        print(f"{r['id']:>6}  {r['status']:<8} {r['due_at'][:16]:<16} {r['priority']:>3}  "
              f"{r['account_id']:<10} {r['action']:<24} {r['owner_email']}")
    print(f"{len(records):,} task(s)")
    return 0


def _task_record(task: Any) -> dict[str, Any]:
    fields = ("id", "account_id", "account_name", "action", "action_title", "owner_role",
              "owner_name", "owner_email", "priority", "rule_id", "ruleset_version", "reason",
              "status", "created_at", "due_at", "closed_at", "run_id")
    record = {name: getattr(task, name) for name in fields}
    for name in ("created_at", "due_at", "closed_at"):
        if record[name] is not None:
            record[name] = record[name].isoformat()
    return record


def _rules_check(args: argparse.Namespace) -> int:
    from kamflow.rules import RULES_DIR, load_ruleset

    directory = args.directory or RULES_DIR
    ruleset = load_ruleset(directory)
    actions = sorted({c.action for r in ruleset.rules for c in r.then})
    print(f"rule set {directory} is valid: {len(ruleset.rules)} rules, version "
          f"{ruleset.version}, actions used: {', '.join(actions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
