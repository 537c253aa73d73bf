"""``kamflow validate``: check a snapshot (and a mapping file) without running the rest.

No Prefect, no task store, no email: the run's plan (flows/plan.py) without a rule set, read,
validated against the snapshot date and scored, so ops can try an export or a new mapping
before the nightly run takes it. Exit 0 when the batch would go on, 3 when it would
stop (2 when the files cannot be read at all). The quarantine and the reports are written where a
run writes them, under a run id starting with ``validate-``.
"""

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from kamflow.cli.app import AsOf, Verbose, app, business_today, command, settings
from kamflow.core.errors import BatchRejected, KamflowError
from kamflow.core.settings import Settings

# How `kamflow validate` names what it wrote (the --json keys stay the names on the left).
LABELS = {"offline_report": "offline report", "offline_report_zh": "offline report (中文)",
          "data_docs": "data docs (need internet access)"}


@command(app, "validate", help="validate a snapshot (and mapping) without running the rest",
         description="Read the snapshot in SOURCE (through --mapping if given), run every "
                     "expectation suite and print the counts per expectation, where the "
                     "quarantined rows and the reports (JSON, GX Data Docs) went. Creates no task "
                     "and sends no email. Exit 0: the batch would go on; 3: it would be stopped; "
                     "2: the files cannot be read.")
def validate(source: Annotated[Path, typer.Option(
                 help="snapshot directory (CSV or Parquet files)")],
             mapping: Annotated[Path | None, typer.Option(
                 help="mapping file (YAML) for an operator's own export "
                      "(docs/mapping.md)")] = None,
             as_of: AsOf = None,
             json_: Annotated[bool, typer.Option(
                 "--json", help="print one JSON object instead of the table")] = False,
             verbose: Verbose = False) -> int:
    from kamflow import config
    from kamflow.expectations import results_table, results_text
    from kamflow.flows.plan import PlanConfig, plan_snapshot
    from kamflow.flows.report import class_shares, class_shares_text
    from kamflow.intake import load_mapping
    from kamflow.scoring import VALUE_CLASSES

    if not source.is_dir():
        raise KamflowError(f"snapshot directory {source} does not exist")
    home = settings()
    as_of = as_of or business_today()
    # The plan without a rule set: validated and scored (the value classes), nothing decided.
    conf = PlanConfig(config.load_pipeline(home.conf_dir / "pipeline.yaml").validation,
                      config.load_scoring(home.conf_dir / "scoring.yaml"),
                      mapping=load_mapping(mapping) if mapping else None)
    found = plan_snapshot(source, as_of, conf)
    outcome = found.validation
    run_id = f"validate-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    written = write_reports(home, run_id, outcome)
    # each value class's share of the accepted accounts and their revenue, so an operator sees
    # whether the class cut-offs of conf/scoring.yaml fit the portfolio (none when stopped)
    shares = class_shares(found.scored, VALUE_CLASSES) \
        if found.scored is not None and len(found.scored) else {}
    if json_:
        print(json.dumps({
            "run_id": run_id, "stopped": outcome.stopped, "message": outcome.message,
            "accounts_in": outcome.accounts_in,
            "accounts_quarantined": outcome.accounts_quarantined,
            "quarantine_rows": len(outcome.quarantine), "notes": found.notes,
            "results": results_table(outcome), "value_class_shares": shares, **written},
            ensure_ascii=False, indent=2))
    else:
        for note in found.notes:
            print(f"note: {note}")
        print(results_text(outcome))
        print(f"\n{outcome.message if not outcome.stopped else 'the batch would be STOPPED'}")
        if shares:
            print(f"value classes: {class_shares_text(shares)}")
        for name, path in written.items():
            print(f"{LABELS.get(name, name.replace('_', ' '))}: {path}")
    if outcome.stopped:
        raise BatchRejected(outcome.message)
    return 0


def write_reports(home: Settings, run_id: str, outcome: Any) -> dict[str, str]:
    """The same files a run keeps (kamflow.expectations.write_validation_files)."""
    from kamflow.expectations import write_validation_files

    return write_validation_files(outcome, home.reports / run_id, home.quarantine / run_id,
                                  run_id).paths()
