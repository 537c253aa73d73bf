"""``kamflow outcome``: what the managers' hours keep, by ordering of the work.

Plays out the days after a snapshot whose churn is known (``flows/outcome.py``): each owner is
released what their hours and task limits allow each day, ranked by kamflow's order (expected net
revenue kept per hour), the previous order, value at risk alone, at random, or by the oracle
that knows the true effects; the figure is the revenue the done tasks keep a year under the true
effects (``--effects``), net of the actions' costs. The share of the churning accounts'
revenue that a task reached before they left (the previous measure) follows it.
"""

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from kamflow.cli.app import AsOf, Verbose, app, business_today, command, settings
from kamflow.core.errors import KamflowError


@command(app, "outcome", help="simulate the managers' hours: revenue kept by ordering of the "
                              "work",
         description="Plan the day-one worklist of a snapshot whose churn is known, then play out "
                     "--days days: every day each owner is released what their hours and task "
                     "limits (conf/owners.yaml) allow, and does it; an account that leaves takes "
                     "its waiting tasks with it. Prints, for kamflow's order (net revenue kept "
                     "per hour), the previous order, value at risk alone, a random order and the "
                     "oracle (true effects known), the tasks and hours done and the revenue they "
                     "keep a year under the true effects (--effects), net of the actions' costs; "
                     "then the share of the churning accounts' revenue a task reached before "
                     "they left. Without --source, a snapshot of --accounts accounts is generated "
                     "in the realistic mode (its churn comes from latent causes the scorer does "
                     "not know). Nothing is written to the task store and no email is sent.")
def outcome(source: Annotated[Path | None, typer.Option(
                help="snapshot directory with ground_truth.csv (default: generate one)")] = None,
            accounts: Annotated[int, typer.Option(
                min=100, help="accounts to generate when no --source is given")] = 20_000,
            churn_rate: Annotated[float, typer.Option(
                min=0.001, max=0.5, help="yearly churn rate of the generated snapshot")] = 0.10,
            seed: Annotated[int, typer.Option(help="generator and random-order seed")] = 7,
            days: Annotated[int, typer.Option(min=1, max=365, help="days to play out")] = 60,
            work_per_day: Annotated[int, typer.Option(
                min=0, help="reach table: tasks each owner finishes a day")] = 8,
            effects: Annotated[Path | None, typer.Option(
                help="true effects file (YAML, the format of conf/effects.yaml plus by_cause; "
                     "default: kamflow's generated department, see --print-effects)")] = None,
            print_effects: Annotated[bool, typer.Option(
                "--print-effects", help="print the default true effects file and stop")] = False,
            as_of: AsOf = None,
            mapping: Annotated[Path | None, typer.Option(
                help="mapping file for an operator's own export in --source "
                     "(docs/mapping.md)")] = None,
            quarters: Annotated[int, typer.Option(
                min=0, max=12, help="learning mode: play this many quarters, each quarter's "
                                    "holdout moving the effects kamflow ranks by in the next "
                                    "(0: off)")] = 0,
            prior_scale: Annotated[float, typer.Option(
                min=0.0, max=10.0, help="learning mode: kamflow's priors (conf/effects.yaml) "
                                        "times this, to see how fast wrong priors are "
                                        "corrected")] = 1.0,
            json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
            verbose: Verbose = False) -> int:
    import numpy as np

    from kamflow import config
    from kamflow.flows.outcome import (
        TRUE_EFFECTS,
        day_one,
        simulate_kept,
        simulate_outcome,
        true_effects_of,
    )
    from kamflow.generate import generate_snapshot

    if print_effects:
        print(TRUE_EFFECTS.read_text(encoding="utf-8"), end="")
        return 0
    truth = config.load_effects(effects or TRUE_EFFECTS)
    if truth is None:
        raise KamflowError(f"true effects file {effects} does not exist")
    home = settings()
    if source is not None and as_of is None:
        raise KamflowError(f"give --as-of, the date of the snapshot in {source}: freshness and "
                           "every date-based signal are measured from it")
    as_of = as_of or business_today()
    owners = config.load_owners(home.conf_dir / "owners.yaml")
    with tempfile.TemporaryDirectory(prefix="kamflow-outcome-") as scratch:
        if source is None:
            source = Path(scratch)
            generate_snapshot(source, accounts, as_of, seed=seed, mode="realistic",
                              churn_rate=churn_rate)
        elif not source.is_dir():
            raise KamflowError(f"snapshot directory {source} does not exist")
        planned, fate = day_one(source, as_of, home.conf_dir, mapping=mapping)
    causes = fate.set_index("account_id")["cause"] if "cause" in fate else None
    kept = simulate_kept(planned, fate, owners.capacity_of, true_effects_of(planned, truth, causes),
                         days, seed, effects=str(effects) if effects else "kamflow's generated "
                         "department (kamflow outcome --print-effects)")
    # reach: the tasks the run raises (kamflow's withheld decisions are no one's task)
    nobodys = np.zeros(len(planned), dtype=bool)
    for column in ("withheld", "held_out"):
        if column in planned:
            nobodys |= planned[column].fillna(False).astype(bool).to_numpy()
    raised = planned.loc[~nobodys]
    report = simulate_outcome(raised, fate, owners.capacity_of, days, work_per_day, seed)
    learning = None
    if quarters:
        from kamflow.flows.outcome import simulate_learning
        from kamflow.rules import RULES_DIR, load_ruleset

        priors = config.load_effects(home.conf_dir / "effects.yaml")
        if priors is None:
            raise KamflowError(f"{home.conf_dir / 'effects.yaml'}: the learning mode needs "
                               "kamflow's beliefs to start from")
        learning = simulate_learning(planned, fate, owners.capacity_of,
                                     true_effects_of(planned, truth, causes), priors,
                                     load_ruleset(RULES_DIR).holdout, as_of, quarters, days,
                                     seed, prior_scale)
    if json_:
        print(json.dumps({**report.as_dict(), **kept.as_dict(),
                          **(learning.as_dict() if learning else {})},
                         ensure_ascii=False, indent=2))
    else:
        print(kept.text())
        if learning is not None:
            print("\n" + learning.text())
        print("\nreach (a task released before the account left; the previous measure):")
        print(report.text())
    return 0
