"""``kamflow outcome``: what a month of capacity-limited work reaches, by ordering.

Plays out the days after a snapshot whose churn is known (``flows/outcome.py``): each owner is
released what their capacity allows each day, ranked by value at risk (kamflow's ordering), by
rule priority alone, or at random, and the figure is the share of the churning accounts' revenue
that got a released task before they left.
"""

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from kamflow.cli.app import Verbose, app, business_today, command, date, settings
from kamflow.core.errors import KamflowError


@command(app, "outcome", help="simulate a month of capacity-limited work: revenue reached by "
                              "ordering",
         description="Plan the day-one worklist of a snapshot whose churn is known, then play out "
                     "--days days: every day each owner is released what their capacity "
                     "(conf/owners.yaml) allows and finishes up to --work-per-day tasks; an "
                     "account that leaves takes its waiting tasks with it. Prints, for kamflow's "
                     "value-at-risk ordering, rule priority alone and a random order, the share "
                     "of the churning accounts' monthly revenue that got a task before they "
                     "left. Without --source, a snapshot of --accounts accounts is generated in "
                     "the realistic mode (its churn comes from latent causes the scorer does not "
                     "know). Nothing is written to the task store and no email is sent.")
def outcome(source: Annotated[Path | None, typer.Option(
                help="snapshot directory with ground_truth.csv (default: generate one)")] = None,
            accounts: Annotated[int, typer.Option(
                min=100, help="accounts to generate when no --source is given")] = 20_000,
            churn_rate: Annotated[float, typer.Option(
                min=0.001, max=0.5, help="yearly churn rate of the generated snapshot")] = 0.10,
            seed: Annotated[int, typer.Option(help="generator and random-order seed")] = 7,
            days: Annotated[int, typer.Option(min=1, max=365, help="days to play out")] = 30,
            work_per_day: Annotated[int, typer.Option(
                min=0, help="tasks each owner finishes a day")] = 8,
            as_of: Annotated[dt.date | None, typer.Option(
                "--as-of", parser=date, metavar="YYYY-MM-DD",
                help="the snapshot's date YYYY-MM-DD: required with --source; the generated "
                     "snapshot's date otherwise (default: today)")] = None,
            mapping: Annotated[Path | None, typer.Option(
                help="mapping file for an operator's own export in --source "
                     "(docs/mapping.md)")] = None,
            json_: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
            verbose: Verbose = False) -> int:
    from kamflow import config
    from kamflow.flows.outcome import day_one, simulate_outcome
    from kamflow.generate import generate_snapshot

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
    report = simulate_outcome(planned, fate, owners.capacity_of, days, work_per_day, seed)
    if json_:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(report.text())
    return 0
