"""``kamflow generate``, ``kamflow demo`` and ``kamflow run``: sample data and the daily job."""

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kamflow.cli.app import (
    AsOf,
    Verbose,
    app,
    business_today,
    command,
    date,
    positive_int,
    settings,
)
from kamflow.core.errors import BatchRejected, KamflowError
from kamflow.core.settings import Settings, configure_prefect_env

if TYPE_CHECKING:  # imported when used: the CLI starts fast
    from kamflow.flows.history import HistorySource

Accounts = Annotated[int, typer.Option(parser=positive_int, help="number of accounts")]
Seed = Annotated[int, typer.Option(help="random seed (same seed, same data)")]


@command(app, "generate", help="write a realistic sample snapshot (CSV files)",
         description="Write a deterministic sample snapshot of key accounts (accounts, billing, "
                     "complaints, SLA incidents) as UTF-8 CSV files. See docs/input-files.md.")
def generate(out: Annotated[Path, typer.Option(help="directory to write the CSV files to")],
             accounts: Accounts = 2000, as_of: AsOf = None, seed: Seed = 7,
             bad_share: Annotated[float, typer.Option(
                 help="share of accounts given deliberately bad rows (default 0.005)")] = 0.005,
             mode: Annotated[str, typer.Option(
                 help="easy: decliners show the scorer's own signals (functional tests); "
                      "realistic: churn from hidden causes with noise, signals only partly "
                      "informative (to judge scoring)")] = "easy",
             churn_rate: Annotated[float | None, typer.Option(
                 help="realistic mode: share of accounts that churn within the horizon "
                      "(default 0.10; 0.01-0.03 is a key-account year)")] = None,
             horizon_days: Annotated[int, typer.Option(
                 parser=positive_int, help="realistic mode: days after the snapshot in which "
                                           "churn is observed (default 365)")] = 365,
             days: Annotated[int, typer.Option(
                 parser=positive_int, help="play out this many days from --as-of: writes "
                                           "day-01/ ... folders and the ground truth "
                                           "departures.csv and revenue_drops.csv")] = 1,
             leave_rate: Annotated[float, typer.Option(
                 help="with --days: share of the accounts that leave each day (at most "
                      "0.04)")] = 0.002,
             revenue_drift: Annotated[float, typer.Option(
                 help="with --days: day-to-day drift of each bill (sd of its log)")] = 0.01,
             partial_rate: Annotated[float, typer.Option(
                 help="with --days: share of the retained accounts a day that lose 60-90 % "
                      "of their revenue (partial churn)")] = 0.002,
             verbose: Verbose = False) -> int:
    from kamflow.generate import generate_days, generate_snapshot

    as_of = as_of or business_today()
    if not 0 <= bad_share <= 1:
        raise KamflowError("--bad-share must be between 0 and 1")
    if days > 1:
        if churn_rate is not None:
            raise KamflowError("--churn-rate does not apply with --days: --leave-rate sets "
                               "how many accounts leave each day")
        try:
            play = generate_days(out, accounts, as_of, days, seed=seed, leave_rate=leave_rate,
                                 revenue_drift=revenue_drift, partial_rate=partial_rate,
                                 bad_share=bad_share, mode=mode)
        except ValueError as exc:
            raise KamflowError(str(exc)) from None
        print(f"wrote {days} daily snapshots of {accounts:,} accounts from {as_of} to "
              f"{play.dates[-1]} in {out}/day-01 ...: {len(play.departures):,} accounts left, "
              f"{len(play.revenue_drops):,} lost most of their revenue (ground truth: "
              f"{out / 'departures.csv'}, {out / 'revenue_drops.csv'})")
        return 0
    try:
        rows = generate_snapshot(out, accounts, as_of, seed=seed, bad_share=bad_share, mode=mode,
                                 churn_rate=churn_rate, horizon_days=horizon_days)
    except ValueError as exc:  # a bad mode, rate or horizon, said in one line
        raise KamflowError(str(exc)) from None
    print(f"wrote a snapshot of {accounts:,} accounts as of {as_of} to {out}: "
          + ", ".join(f"{name} {n:,} rows" for name, n in rows.items()))
    return 0


@command(app, "demo", help="generate ~2,000 accounts and run the daily job once",
         description="Generate a sample snapshot under $KAMFLOW_HOME/demo and run the retention "
                     "flow on it, then say where to look.")
def demo(accounts: Accounts = 2000, seed: Seed = 7, verbose: Verbose = False) -> int:
    from kamflow.generate import generate_snapshot

    home = settings()
    source = home.home / "demo"
    as_of = business_today()
    generate_snapshot(source, accounts, as_of, seed=seed)
    print(f"generated {accounts:,} sample accounts in {source}")
    ok, message, summary = run_flow(home, source, as_of, None)
    print_summary(summary)
    raise_unless(ok, message, summary)
    print(f"\nWhere to look:\n  emails:  {home.outbox} (.eml files, open with any mail client)\n"
          f"  tasks:   kamflow tasks list   (or --json)\n"
          f"  the UI:  prefect server start, then set PREFECT_API_URL=http://127.0.0.1:4200/api "
          "and run again; see README.md")
    return 0


_HISTORY = ("labelled history: learn churn risk from a past snapshot whose accounts' outcome is "
            "known (what is learnt: churn.learn in conf/scoring.yaml; docs/configuration.md)")


@command(app, "run", help="run the retention flow on a snapshot directory",
         description="Run intake, validation, scoring, rules and dispatch on the snapshot in "
                     "SOURCE. Rerunning the same snapshot raises no duplicate task and sends no "
                     "email twice.")
def run(source: Annotated[Path, typer.Option(help="snapshot directory (CSV files)")],
        as_of: AsOf = None,
        rules: Annotated[Path | None, typer.Option(
            help="rule set directory (default: the rules/ shipped with kamflow)")] = None,
        mapping: Annotated[Path | None, typer.Option(
            help="mapping file (YAML) for an operator's own export (docs/mapping.md)")] = None,
        partitions: Annotated[int, typer.Option(
            parser=positive_int, help="score and decide in N parallel partitions on a Dask "
                                      "cluster (default 1: in this process)")] = 1,
        dask_address: Annotated[str | None, typer.Option(
            help="scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (default "
                 "with --partitions: a local cluster)")] = None,
        dask_workers: Annotated[int, typer.Option(
            parser=positive_int, help="worker processes of the local Dask cluster "
                                      "(default 2)")] = 2,
        history: Annotated[Path | None, typer.Option(
            metavar="DIR", rich_help_panel=_HISTORY,
            help="past snapshot directory, read through --mapping like SOURCE")] = None,
        history_labels: Annotated[Path | None, typer.Option(
            metavar="CSV", help="known outcomes (default: DIR/ground_truth.csv)")] = None,
        history_id_column: Annotated[str | None, typer.Option(
            help="account id column of the labels (default: account_id)")] = None,
        history_label_column: Annotated[str | None, typer.Option(
            help="outcome column, 1 = churned (default: declining for ground_truth.csv, else "
                 "churned)")] = None,
        history_as_of: Annotated[dt.date | None, typer.Option(
            parser=date, metavar="YYYY-MM-DD",
            help="the date the history snapshot was taken (default: --as-of)")] = None,
        verbose: Verbose = False) -> int:
    spec = history_source(history, history_labels, history_id_column, history_label_column,
                          history_as_of, as_of)
    scale = (dask_address, dask_workers, partitions) \
        if partitions > 1 or dask_address else None
    ok, message, summary = run_flow(settings(), source, as_of, rules, mapping, scale, spec)
    print_summary(summary)
    raise_unless(ok, message, summary)
    return 0


def history_source(history: Path | None, labels: Path | None, id_column: str | None,
                   label_column: str | None, taken: dt.date | None,
                   as_of: dt.date | None) -> "HistorySource | None":
    """The --history options as the flow's ``history`` parameter (None without --history)."""
    if history is None:
        given = [name for name, value in (("history-labels", labels),
                                          ("history-id-column", id_column),
                                          ("history-label-column", label_column),
                                          ("history-as-of", taken)) if value is not None]
        if given:
            raise KamflowError(f"--{given[0]} needs --history DIR")
        return None
    from kamflow.flows.history import HistorySource

    taken = taken or as_of  # None: the flow's own date
    return HistorySource(str(history.resolve()), str(labels.resolve()) if labels else None,
                         id_column, label_column, taken.isoformat() if taken else None)


def run_flow(home: Settings, source: Path, as_of: dt.date | None, rules: Path | None,
             mapping: Path | None = None, scale: tuple[str | None, int, int] | None = None,
             history: "HistorySource | None" = None) -> tuple[bool, str, dict[str, Any]]:
    if not source.is_dir():
        raise KamflowError(f"snapshot directory {source} does not exist")
    if mapping and not mapping.is_file():
        raise KamflowError(f"mapping file {mapping} does not exist")
    if history is not None and not Path(history.source).is_dir():
        raise KamflowError(f"history snapshot directory {history.source} does not exist")
    configure_prefect_env(home)
    from kamflow.flows.retention import retention_run, summary_path

    flow, partitions = retention_run, 1
    if scale is not None:
        from kamflow.flows.scaleout import retention_run_on_dask

        address, workers, partitions = scale
        flow = retention_run_on_dask(address, workers)
    state = flow(source=str(source.resolve()), as_of=as_of.isoformat() if as_of else None,
                 rules_dir=str(rules.resolve()) if rules else None,
                 mapping=str(mapping.resolve()) if mapping else None, partitions=partitions,
                 history=history, return_state=True)
    summary = _read_summary(summary_path(str(state.state_details.flow_run_id), home))
    return state.is_completed(), state.message or "", summary


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the summary is a nicety; the state says what happened


def print_summary(summary: dict[str, Any]) -> None:
    if not summary:
        return
    print(f"accounts: {summary.get('accounts_in', 0):,} in, "
          f"{summary.get('accounts_quarantined', 0):,} quarantined")
    if summary.get("value_classes"):
        print("value classes: " + ", ".join(f"{k} {v:,}" for k, v in
                                            summary["value_classes"].items()))
        if summary.get("value_class_shares"):
            from kamflow.flows.report import class_shares_text

            print(f"class shares: {class_shares_text(summary['value_class_shares'])}")
        print("churn bands: " + ", ".join(f"{k} {v:,}" for k, v in
                                          summary["churn_bands"].items()))
        print(f"churn risk: {summary.get('churn_risk_from', '')}")
        if summary.get("value_at_risk"):
            at_risk = summary["value_at_risk"]
            print(f"value at risk: {at_risk['monthly_cny']:,.0f} CNY/month, "
                  f"{at_risk['yearly_cny']:,.0f} CNY/year; per value class (CNY/year): "
                  + ", ".join(f"{k} {v['yearly_cny']:,.0f}"
                              for k, v in at_risk["by_value_class"].items()))
        print(f"decisions: {summary.get('decisions', 0):,}; tasks created: "
              f"{summary.get('tasks_created', 0):,} (already open: "
              f"{summary.get('tasks_already_open', 0):,}); emails sent: "
              f"{summary.get('emails_sent', 0):,} via {summary.get('email_backend')}")
        print(f"capacity: {summary.get('tasks_released', 0):,} released to their owners "
              f"({summary.get('tasks_released_from_queue', 0):,} from the queue), "
              f"{summary.get('tasks_queued', 0):,} queued, "
              f"{summary.get('tasks_withdrawn', 0):,} withdrawn "
              "(kamflow tasks list --status queued)")
        if summary.get("tasks_withheld"):
            withheld = summary["tasks_withheld"]
            print(f"withheld: {sum(withheld.values()):,} decision(s) not raised, their expected "
                  "effect is negative (conf/effects.yaml): "
                  + ", ".join(f"{a} {n:,}" for a, n in withheld.items()))
        if summary.get("decisions_held_out"):
            print(f"held out (control group, no task): {summary['decisions_held_out']:,} "
                  f"decisions ({summary.get('tasks_held_out', 0):,} recorded now): "
                  + ", ".join(f"{k} {v:,}" for k, v in summary.get("held_out_by_action",
                                                                  {}).items())
                  + " (kamflow tasks list --status held_out)")
        for row in summary.get("capacity_by_owner", [])[:10]:
            print(f"  {row['owner']:<40} released {row['released']:>5,}  "
                  f"queued {row['queued']:>6,}")
    if summary.get("offline_report"):
        print(f"validation report (opens offline): {summary['offline_report']} "
              f"(中文: {summary.get('offline_report_zh', '')})")
    if summary.get("quarantine_file"):
        print(f"quarantine: {summary['quarantine_file']}")
    if summary.get("validation_report"):
        print(f"validation results (JSON): {summary['validation_report']}")
    if summary.get("data_docs"):
        print(f"data docs (need internet access): {summary['data_docs']}")


def raise_unless(ok: bool, message: str, summary: dict[str, Any]) -> None:
    if ok:
        return
    if summary.get("status") == "stopped by validation":
        raise BatchRejected(message)
    raise KamflowError(message or "the retention run failed; see the log above")
