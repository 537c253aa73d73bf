"""``kamflow backtest``: how well churn risk finds the accounts that did churn.

Reads a snapshot (as ``kamflow validate`` does: intake, validation, the customer view) and the
known outcome of its accounts, then measures each way of rating churn risk (``scoring.backtest``)
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

from kamflow.errors import BatchRejected, InputError, KamflowError
from kamflow.settings import paths

GROUND_TRUTH = ("ground_truth.csv", "account_id", "declining")
_OUTCOMES = {"1": 1, "0": 0, "1.0": 1, "0.0": 0, "true": 1, "false": 0, "yes": 1, "no": 0,
             "y": 1, "n": 0, "是": 1, "否": 0, "churned": 1, "retained": 0}


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
    from expectations import validate_snapshot
    from intake import build_customer_view, load_mapping, read_snapshot
    from kamflow import config
    from scoring.backtest import run_backtest

    if not args.source.is_dir():
        raise KamflowError(f"snapshot directory {args.source} does not exist")
    labels_path = args.labels or args.source / GROUND_TRUTH[0]
    id_column = args.id_column or GROUND_TRUTH[1]
    label_column = args.label_column or (GROUND_TRUTH[2] if args.labels is None else "churned")
    as_of = args.as_of or dt.date.today()
    scoring = config.load_scoring()
    outcomes = read_outcomes(labels_path, id_column, label_column)
    mapping = load_mapping(args.mapping) if args.mapping else None
    snapshot = read_snapshot(args.source, mapping, as_of)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems,
                                config.load_pipeline().validation, as_of=as_of,
                                files=snapshot.files)
    if outcome.stopped:
        raise BatchRejected(outcome.message)
    view = outcome.view.drop(columns=["_row"], errors="ignore") if outcome.view is not None \
        else build_customer_view(outcome.accepted, as_of)
    known = view["account_id"].astype(str).map(outcomes)
    labelled = known.notna().to_numpy()
    if labelled.sum() < 10:
        raise InputError(f"only {int(labelled.sum())} accepted accounts have a known outcome "
                         "here (matched by account id); a backtest needs at least 10",
                         file=str(labels_path))
    churned = known[labelled].astype(int).to_numpy()
    if churned.min() == churned.max():
        raise InputError("every labelled account has the same outcome: a backtest needs "
                         "churned and retained accounts", file=str(labels_path))
    result = run_backtest(view[labelled].reset_index(drop=True), churned, scoring)
    report = {"source": str(args.source), "labels": str(labels_path), "as_of": str(as_of),
              "accounts_in_snapshot": len(view), "accounts_without_outcome":
              int((~labelled).sum()), **result.as_dict()}
    saved = _save(report)
    if args.json:
        print(json.dumps({**report, "report": str(saved)}, ensure_ascii=False, indent=2))
    else:
        print(_text(report))
        print(f"\nreport: {saved}")
    return 0


def read_outcomes(path: Path, id_column: str, label_column: str) -> dict[str, int]:
    """account id -> 1 (churned) or 0 from a labels CSV; a blank outcome is unknown, any other
    unknown value is refused with its line (never guessed)."""
    from intake.files import ROW, read_table_file

    if not path.is_file():
        raise InputError("the labels file does not exist (give --labels)", file=str(path))
    frame = read_table_file(path)
    missing = [c for c in (id_column, label_column) if c not in frame]
    if missing:
        raise InputError(f"the labels file has no column {missing[0]!r} (it has: "
                         f"{', '.join(c for c in frame.columns if c != ROW)}); use --id-column "
                         "and --label-column", file=str(path))
    text = frame[label_column].fillna("").astype(str).str.strip().str.lower()
    values = text.map(_OUTCOMES)
    bad = values.isna() & (text != "")
    if bad.any():
        row = frame.loc[bad, ROW].iloc[0]
        raise InputError(f"line {row}: {label_column}="
                         f"{frame.loc[bad, label_column].iloc[0]!r} is not an outcome (use 1/0, "
                         "yes/no, true/false, 是/否)", file=str(path))
    ids = frame[id_column].astype(str).str.strip()
    known = values.notna()
    return dict(zip(ids[known], values[known].astype(int), strict=True))


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

