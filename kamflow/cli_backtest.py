"""``kamflow backtest``: how well churn risk finds the accounts that did churn.

Reads a snapshot and the known outcome of its accounts (``kamflow.flows.history``: intake,
validation, the customer view, outcomes matched by account id, as ``kamflow run --history`` does),
then measures each way of rating churn risk (``scoring.backtest``)
on held-out accounts: AUC, precision and recall in the top k% riskiest, lift over random.

Outcomes come from a labels CSV: one row per account, an id column and a 0/1 (yes/no, true/false,
是/否) column. Without ``--labels``, the snapshot's own ``ground_truth.csv`` (what
``kamflow generate`` writes: ``account_id``, ``declining``) is used. For a flat export that
carries its label (IBM Telco: ``Churn``), name the export itself:
``--labels DIR/telco_churn.csv --id-column customerID --label-column Churn``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from kamflow.core.errors import KamflowError
from kamflow.core.settings import paths

MIN_ACCOUNTS = 10  # a backtest only measures: it can do with fewer accounts than learning


def register(commands: Any, groups: dict[str, Any]) -> None:
    from kamflow.cli import _date, common

    backtest = commands.add_parser(
        "backtest", help="measure churn risk against known outcomes (AUC, top-k, lift)",
        description="Read the snapshot in SOURCE (through --mapping if given) and the known "
                    "churn outcome of its accounts, then measure on held-out accounts how well "
                    "each method ranks the churners first: the configured (expert) weights, "
                    "weights by information gain, and a logistic regression trained on the "
                    "other accounts. Prints and saves AUC, precision and recall in the top k%% "
                    "and the lift over random under $KAMFLOW_HOME/reports/backtests/.")
    backtest.add_argument("--source", type=Path, required=True,
                          help="snapshot directory (CSV or Parquet files)")
    backtest.add_argument("--mapping", type=Path, default=None,
                          help="mapping file (YAML) for an operator's own export")
    backtest.add_argument("--labels", type=Path, default=None,
                          help="CSV of known outcomes (default: SOURCE/ground_truth.csv)")
    backtest.add_argument("--id-column", default=None,
                          help="account id column of the labels file (default: account_id)")
    backtest.add_argument("--label-column", default=None,
                          help="outcome column, 1 = churned (default: declining for "
                               "ground_truth.csv, else churned)")
    backtest.add_argument("--as-of", type=_date, default=None,
                          help="snapshot date YYYY-MM-DD (default: today)")
    backtest.add_argument("--json", action="store_true", help="print one JSON object")
    backtest.set_defaults(handler=_backtest)
    common(backtest)


def _backtest(args: argparse.Namespace) -> int:
    from functools import partial

    from kamflow import config
    from kamflow.flows.history import HistorySource, read_labelled_history
    from kamflow.intake import load_mapping
    from kamflow.scoring.backtest import run_backtest
    from kamflow.scoring.learn import history_problem

    if not args.source.is_dir():
        raise KamflowError(f"snapshot directory {args.source} does not exist")
    as_of = args.as_of or dt.date.today()
    scoring = config.load_scoring()
    spec = HistorySource(str(args.source), str(args.labels) if args.labels else None,
                         args.id_column, args.label_column)
    history = read_labelled_history(
        spec, load_mapping(args.mapping) if args.mapping else None,
        config.load_pipeline().validation, as_of,
        partial(history_problem, minimum=MIN_ACCOUNTS, per_outcome=1))
    result = run_backtest(history.view, history.churned, scoring)
    report = {"source": str(args.source), "labels": str(history.labels), "as_of": str(as_of),
              "accounts_in_snapshot": history.accounts_in_snapshot,
              "accounts_without_outcome": history.accounts_without_outcome, **result.as_dict()}
    saved = _save(report)
    if args.json:
        print(json.dumps({**report, "report": str(saved)}, ensure_ascii=False, indent=2))
    else:
        print(_text(report))
        print(f"\nreport: {saved}")
    return 0


def _save(report: dict[str, Any]) -> Path:
    folder = paths().reports / "backtests"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (f"backtest-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-"
                       f"{uuid.uuid4().hex[:6]}.json")
    target.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=_plain),
                      encoding="utf-8")
    return target


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


def _text(report: dict[str, Any]) -> str:
    lines = [f"backtest of {report['accounts']:,} accounts with a known outcome "
             f"({report['churned']:,} churned); measured on {report['test_accounts']:,} held-out "
             f"accounts ({report['test_churned']:,} churned)"]
    if report["accounts_without_outcome"]:
        lines.append(f"note: {report['accounts_without_outcome']:,} accepted accounts have no "
                     "known outcome and are left out")
    lines.append(f"\n{'method':<26} {'AUC':>6}  " + "  ".join(
        f"{'top ' + _share(k['share']):>8} {'prec':>5} {'recall':>6} {'lift':>5}"
        for k in report["methods"][0]["top_k"]))
    for method in report["methods"]:
        lines.append(f"{method['method']:<26} {method['auc']:>6.3f}  " + "  ".join(
            f"{k['accounts']:>8,} {k['precision']:>5.2f} {k['recall']:>6.2f} {k['lift']:>5.1f}"
            for k in method["top_k"]))
    weights = [m for m in report["methods"] if m["method"] == "information_gain_weights"]
    if weights:
        lines.append("\ninformation-gain factor weights: " + ", ".join(
            f"{name} {w:.2f}" for name, w in weights[0]["factor_weights"].items()))
    return "\n".join(lines)


def _share(share: float) -> str:
    return f"{share:.0%}" if share * 100 == round(share * 100) else f"{share:.1%}"

