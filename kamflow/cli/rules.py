"""``kamflow rules check`` and ``kamflow simulate``: check a rule set, and preview what a changed
rule set would do without dispatching anything."""

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from kamflow.cli.app import AsOf, Verbose, app, business_today, command, rules_app, settings
from kamflow.core.errors import BatchRejected


@command(rules_app, "check", help="validate a rule set before it is used",
         description="Check every rule file in DIR (default: the shipped rules/) and report each "
                     "problem with file, line and rule id.")
def check(directory: Annotated[Path | None, typer.Argument(
              metavar="DIR", help="rule set directory (default: the shipped rules/)")] = None,
          mapping: Annotated[Path | None, typer.Option(
              help="mapping file whose operator signals the rules may test "
                   "(docs/mapping.md)")] = None,
          verbose: Verbose = False) -> int:
    from kamflow.intake import load_mapping
    from kamflow.rules import RULES_DIR, load_ruleset

    directory = directory or RULES_DIR
    ruleset = load_ruleset(directory, load_mapping(mapping).signals if mapping else ())
    actions = sorted({c.action for r in ruleset.rules for c in r.then})
    proactive = sum(rule.proactive for rule in ruleset.rules)
    print(f"rule set {directory} is valid: {len(ruleset.rules)} rules ({proactive} proactive), "
          f"version {ruleset.version}, actions used: {', '.join(actions)}")
    return 0


@command(app, "simulate", help="compare two rule sets on the same snapshot (nothing is "
                               "dispatched)",
         description="Validate and score the snapshot in SOURCE, decide with the rule set in "
                     "--rules and with the current one (--against, default: the shipped rules/), "
                     "and print the difference: decisions added and removed by rule, action and "
                     "owner, with example accounts. No task is created and no email is sent. "
                     "The report is saved under $KAMFLOW_HOME/reports/simulations/.")
def simulate(source: Annotated[Path, typer.Option(help="snapshot directory")],
             rules: Annotated[Path, typer.Option(help="the proposed rule set")],
             against: Annotated[Path | None, typer.Option(
                 help="the current rule set (default: the shipped rules/)")] = None,
             as_of: AsOf = None,
             mapping: Annotated[Path | None, typer.Option(
                 help="mapping file for an operator's own export (docs/mapping.md)")] = None,
             json_: Annotated[bool, typer.Option(
                 "--json", help="print the difference as JSON")] = False,
             verbose: Verbose = False) -> int:
    from kamflow import config
    from kamflow.expectations import validate_snapshot
    from kamflow.intake import build_customer_view, load_mapping, read_snapshot
    from kamflow.rules import RULES_DIR, decide, load_ruleset
    from kamflow.rules.simulate import compare
    from kamflow.scoring import score_accounts

    home = settings()
    loaded_mapping = load_mapping(mapping) if mapping else None
    signals = loaded_mapping.signals if loaded_mapping else ()
    proposed = load_ruleset(rules, signals)  # refuse a broken rule set before reading data
    current = load_ruleset(against or RULES_DIR, signals)
    as_of = as_of or business_today()
    snapshot = read_snapshot(source, loaded_mapping, as_of)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems,
                                config.load_pipeline(home.conf_dir / "pipeline.yaml").validation,
                                signals=snapshot.signals)
    if outcome.stopped:
        raise BatchRejected(outcome.message)
    scored = score_accounts(build_customer_view(outcome.accepted, as_of),
                            config.load_scoring(home.conf_dir / "scoring.yaml"))
    diff = compare(decide(scored, current), decide(scored, proposed), len(scored),
                   current.version, proposed.version)
    target = home.reports / "simulations" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    (target / "simulation.md").write_text(diff.markdown(), encoding="utf-8")
    (target / "simulation.json").write_text(json.dumps(diff.as_dict(), ensure_ascii=False,
                                                       indent=2), encoding="utf-8")
    if json_:
        print(json.dumps(diff.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(diff.markdown())
        print(f"saved: {target / 'simulation.md'}")
    return 0
