"""``kamflow rules check`` and ``kamflow simulate``: check a rule set, and preview what a changed
rule set would do without dispatching anything."""

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from kamflow.cli.app import RequiredAsOf, Verbose, app, command, rules_app, settings
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
    policy = ruleset.holdout
    if policy.active:
        cap = (f", never above {policy.max_monthly_revenue:,.0f} CNY a month"
               if policy.max_monthly_revenue is not None else "")
        print("holdout: " + ", ".join(f"{a} {s:.1%}" for a, s in sorted(policy.shares.items()))
              + f" (period: {policy.period}{cap})")
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
             as_of: RequiredAsOf,
             against: Annotated[Path | None, typer.Option(
                 help="the current rule set (default: the shipped rules/)")] = None,
             mapping: Annotated[Path | None, typer.Option(
                 help="mapping file for an operator's own export (docs/mapping.md)")] = None,
             json_: Annotated[bool, typer.Option(
                 "--json", help="print the difference as JSON")] = False,
             decisions: Annotated[Path | None, typer.Option(
                 help="also write the proposed rule set's decisions to this CSV file (one row "
                      "per account and action: rule, priority, deadline, reason), exactly as "
                      "`kamflow run` would decide them")] = None,
             verbose: Verbose = False) -> int:
    from kamflow.flows.plan import PlanConfig, decide_accounts, plan_snapshot, set_apart_withheld
    from kamflow.rules import RULES_DIR, load_ruleset
    from kamflow.rules.simulate import compare

    home = settings()
    # the proposed rule set is refused before any data is read, as is a broken configuration
    conf = PlanConfig.load(home.conf_dir, rules, mapping)
    assert conf.ruleset is not None
    proposed = conf.ruleset
    current = load_ruleset(against or RULES_DIR, conf.mapping.signals if conf.mapping else ())
    found = plan_snapshot(source, as_of, conf)
    if found.scored is None or found.decisions is None:
        raise BatchRejected(found.validation.message)
    # the current rule set's decisions as the run would raise them (withheld ones set apart,
    # as plan_snapshot does for the proposed set's)
    decided, _ = set_apart_withheld(
        decide_accounts(found.scored, as_of, dataclasses.replace(conf, ruleset=current)))
    diff = compare(decided, found.decisions, len(found.scored), current.version,
                   proposed.version)
    if decisions is not None:
        from kamflow.core.spreadsheet import safe_frame

        # opened in a spreadsheet to review the change: formula-like text neutralised
        safe_frame(found.decisions).to_csv(decisions, index=False, encoding="utf-8")
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
