"""``kamflow simulate``: preview what a changed rule set would do, without dispatching anything."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from kamflow.core.errors import BatchRejected


def register(commands: Any, groups: dict[str, Any]) -> None:
    from kamflow.cli import common

    simulate = commands.add_parser(
        "simulate", help="compare two rule sets on the same snapshot (nothing is dispatched)",
        description="Validate and score the snapshot in SOURCE, decide with the rule set in "
                    "--rules and with the current one (--against, default: the shipped rules/), "
                    "and print the difference: decisions added and removed by rule, action and "
                    "owner, with example accounts. No task is created and no email is sent. "
                    "The report is saved under $KAMFLOW_HOME/reports/simulations/.")
    simulate.add_argument("--source", type=Path, required=True, help="snapshot directory")
    simulate.add_argument("--rules", type=Path, required=True, help="the proposed rule set")
    simulate.add_argument("--against", type=Path, default=None,
                          help="the current rule set (default: the shipped rules/)")
    simulate.add_argument("--as-of", type=dt.date.fromisoformat, default=None,
                          help="snapshot date YYYY-MM-DD (default: today)")
    simulate.add_argument("--mapping", type=Path, default=None,
                          help="mapping file for an operator's own export (docs/mapping.md)")
    simulate.add_argument("--json", action="store_true", help="print the difference as JSON")
    simulate.set_defaults(handler=_simulate)
    common(simulate)


def _simulate(args: argparse.Namespace) -> int:
    from kamflow import config
    from kamflow.core.settings import paths
    from kamflow.expectations import validate_snapshot
    from kamflow.intake import build_customer_view, load_mapping, read_snapshot
    from kamflow.rules import RULES_DIR, decide, load_ruleset
    from kamflow.rules.simulate import compare
    from kamflow.scoring import score_accounts

    proposed = load_ruleset(args.rules)  # refuse a broken rule set before reading any data
    current = load_ruleset(args.against or RULES_DIR)
    as_of = args.as_of or dt.date.today()
    mapping = load_mapping(args.mapping) if args.mapping else None
    snapshot = read_snapshot(args.source, mapping, as_of)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems,
                                config.load_pipeline().validation)
    if outcome.stopped:
        raise BatchRejected(outcome.message)
    scored = score_accounts(build_customer_view(outcome.accepted, as_of), config.load_scoring())
    diff = compare(decide(scored, current), decide(scored, proposed), len(scored),
                   current.version, proposed.version)
    target = paths().reports / "simulations" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    (target / "simulation.md").write_text(diff.markdown(), encoding="utf-8")
    (target / "simulation.json").write_text(json.dumps(diff.as_dict(), ensure_ascii=False,
                                                       indent=2), encoding="utf-8")
    if args.json:
        print(json.dumps(diff.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(diff.markdown())
        print(f"saved: {target / 'simulation.md'}")
    return 0
