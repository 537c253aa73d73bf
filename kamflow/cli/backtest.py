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

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from kamflow.cli.app import AsOf, Verbose, app, business_today, command, settings
from kamflow.core.errors import KamflowError

MIN_ACCOUNTS = 10  # a backtest only measures: it can do with fewer accounts than learning


@command(app, "backtest", help="measure churn risk against known outcomes (AUC, top-k, lift)",
         description="Read the snapshot in SOURCE (through --mapping if given) and the known "
                     "churn outcome of its accounts, then measure by k-fold cross-validation how "
                     "well each method ranks the churners first: the configured (expert) "
                     "weights, weights by information gain, a logistic regression and gradient "
                     "boosting, each learnt without the accounts it rates (AUC mean ± sd, "
                     "calibration of the models). Prints and saves AUC, precision and recall "
                     "in the top k% and the lift over random under "
                     "$KAMFLOW_HOME/reports/backtests/.")
def backtest(source: Annotated[Path, typer.Option(
                 help="snapshot directory (CSV or Parquet files)")],
             mapping: Annotated[Path | None, typer.Option(
                 help="mapping file (YAML) for an operator's own export")] = None,
             labels: Annotated[Path | None, typer.Option(
                 help="CSV of known outcomes (default: SOURCE/ground_truth.csv)")] = None,
             id_column: Annotated[str | None, typer.Option(
                 help="account id column of the labels file (default: account_id)")] = None,
             label_column: Annotated[str | None, typer.Option(
                 help="outcome column, 1 = churned (default: declining for ground_truth.csv, "
                      "else churned)")] = None,
             as_of: AsOf = None,
             json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
             verbose: Verbose = False) -> int:
    from functools import partial

    from kamflow import config
    from kamflow.flows.history import HistorySource, read_labelled_history
    from kamflow.intake import load_mapping
    from kamflow.scoring.backtest import run_backtest
    from kamflow.scoring.learn import history_problem

    if not source.is_dir():
        raise KamflowError(f"snapshot directory {source} does not exist")
    home = settings()
    as_of = as_of or business_today()
    scoring = config.load_scoring(home.conf_dir / "scoring.yaml")
    spec = HistorySource(str(source), str(labels) if labels else None, id_column, label_column)
    history = read_labelled_history(
        spec, load_mapping(mapping) if mapping else None,
        config.load_pipeline(home.conf_dir / "pipeline.yaml").validation, as_of,
        partial(history_problem, minimum=MIN_ACCOUNTS, per_outcome=1))
    result = run_backtest(history.view, history.churned, scoring, history.signals)
    report = {"source": str(source), "labels": str(history.labels), "as_of": str(as_of),
              "accounts_in_snapshot": history.accounts_in_snapshot,
              "accounts_without_outcome": history.accounts_without_outcome, **result.as_dict()}
    saved = _save(report, home.reports)
    chart = _lift_chart(report, saved)
    if json_:
        print(json.dumps({**report, "report": str(saved), "lift_chart": str(chart)},
                         ensure_ascii=False, indent=2))
    else:
        print(_text(report))
        print(f"\nreport: {saved}\nlift chart: {chart} (and {chart.with_suffix('.svg').name})")
    return 0


def _lift_chart(report: dict[str, Any], saved: Path) -> Path:
    """The lift chart beside the report, as PNG (returned) and SVG (same name): each method's
    lift over random in the riskiest share of accounts, out of fold."""
    from kamflow.flows.charts import lift_chart_png
    from kamflow.flows.picture import lift_chart_svg

    curves = {m["method"]: m["lift_curve"] for m in report["methods"] if m.get("lift_curve")}
    title = (f"Lift of churn risk, {report['accounts']:,} accounts ({report['churned']:,} "
             "churned), out of fold")
    target = saved.with_name(saved.stem + "-lift.png")
    target.write_bytes(lift_chart_png(curves, title))
    target.with_suffix(".svg").write_text(lift_chart_svg(curves, title), encoding="utf-8")
    return target


def _save(report: dict[str, Any], reports: Path) -> Path:
    folder = reports / "backtests"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (f"backtest-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-"
                       f"{uuid.uuid4().hex[:6]}.json")
    target.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=_plain),
                      encoding="utf-8")
    return target


def _plain(value: Any) -> Any:
    import numpy as np  # here: the CLI starts without numpy

    return value.item() if isinstance(value, np.generic) else str(value)


def _text(report: dict[str, Any]) -> str:
    folds = report.get("folds") or 0
    measured = (f"measured out of fold by {folds}-fold cross-validation (every account once, "
                "by a model that never saw it)" if folds else
                f"measured on {report['test_accounts']:,} accounts "
                f"({report['test_churned']:,} churned)")
    lines = [f"backtest of {report['accounts']:,} accounts with a known outcome "
             f"({report['churned']:,} churned); {measured}"]
    if report["accounts_without_outcome"]:
        lines.append(f"note: {report['accounts_without_outcome']:,} accepted accounts have no "
                     "known outcome and are left out")
    lines.append(f"\n{'method':<26} {'AUC':>13}  " + "  ".join(
        f"{'top ' + _share(k['share']):>8} {'prec':>5} {'recall':>6} {'lift':>5}"
        for k in report["methods"][0]["top_k"]))
    for method in report["methods"]:
        auc = f"{method['auc']:.3f}" + (f" ± {method['auc_sd']:.3f}"
                                         if method.get("auc_sd") is not None else "")
        lines.append(f"{method['method']:<26} {auc:>13}  " + "  ".join(
            f"{k['accounts']:>8,} {k['precision']:>5.2f} {k['recall']:>6.2f} {k['lift']:>5.1f}"
            for k in method["top_k"]))
    if report.get("chosen_model"):
        lines.append(f"\nchurn.learn: best_model would pick {report['chosen_model']} on this "
                     "history")
    for method in report["methods"]:
        if method.get("calibration"):
            lines.append(f"\ncalibration of {method['method']} (predicted churn probability "
                         "against the share that churned):")
            lines += [f"  {b['accounts']:>8,} accounts  predicted {b['predicted']:>6.1%}  "
                      f"observed {b['observed']:>6.1%}" for b in method["calibration"]]
    weights = [m for m in report["methods"] if m["method"] == "information_gain_weights"]
    if weights and weights[0].get("factor_weights"):
        lines.append("\ninformation-gain factor weights: " + ", ".join(
            f"{name} {w:.2f}" for name, w in weights[0]["factor_weights"].items()))
    return "\n".join(lines)


def _share(share: float) -> str:
    return f"{share:.0%}" if share * 100 == round(share * 100) else f"{share:.1%}"

