"""The plan: one dated snapshot and the configuration in; the accepted accounts, the quarantine,
the scores and the decisions out. Nothing is dispatched and no task store is touched.

This is the one place where read → validate → score → decide is composed. The daily run
(flows/retention.py), ``kamflow simulate``, ``kamflow validate``, ``kamflow outcome`` and the
history a run learns from (flows/history.py) all go through it, so a dry run decides exactly as
the real run does on the same snapshot and configuration, and a new step is added once.

The decisions carry what each is worth (worklist/worth.py: effort, expected revenue kept, net
per manager-hour; the sleeping dogs withheld) and the randomised holdout (rules/holdout.py):
both are decided here, once, so the run, a dry run and a rerun rank, withhold and hold out
alike.

The snapshot date is never optional: freshness, future dates and the customer view are checked
against it on every path. The daily run times and logs each step as a Prefect task: it passes
``Stages`` of its own; everyone else runs the steps directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from kamflow import config
from kamflow.expectations import ValidationOutcome, ValidationPolicy, validate_snapshot
from kamflow.intake import Snapshot, SnapshotMapping, build_customer_view, load_mapping
from kamflow.intake import read_snapshot as read_tables
from kamflow.rules import RULES_DIR, RuleSet, decide, load_ruleset
from kamflow.rules.holdout import hold_out
from kamflow.scoring import Population, ScoringConfig, fit_population, score_accounts
from kamflow.scoring.model import ChurnModel
from kamflow.worklist.worth import Beliefs, appraise

R = TypeVar("R")


@dataclass(frozen=True)
class PlanConfig:
    """What the plan decides with. Without a rule set the plan scores but decides nothing
    (``kamflow validate`` shows the value classes)."""

    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    scoring: ScoringConfig | None = None
    ruleset: RuleSet | None = None
    mapping: SnapshotMapping | None = None
    model: ChurnModel | None = None  # a learnt churn model (scoring.learn), else the weights
    beliefs: Beliefs | None = None   # conf/effects.yaml: what each action achieves and costs

    @classmethod
    def load(cls, conf_dir: Path, rules_dir: Path | str | None = RULES_DIR,
             mapping: Path | str | None = None) -> PlanConfig:
        """conf/pipeline.yaml, conf/scoring.yaml, the rule set (None: no decisions) and the
        mapping, read and checked; the rules may test the mapping's operator signals."""
        loaded = load_mapping(mapping) if mapping else None
        ruleset = load_ruleset(rules_dir, loaded.signals if loaded else ()) \
            if rules_dir is not None else None
        return cls(config.load_pipeline(conf_dir / "pipeline.yaml").validation,
                   config.load_scoring(conf_dir / "scoring.yaml"), ruleset, loaded,
                   beliefs=config.load_effects(conf_dir / "effects.yaml"))


@dataclass
class Plan:
    """A snapshot's plan. ``scored`` and ``decisions`` stay None when validation stopped the
    batch (or the caller's ``Stages.validated`` did)."""

    as_of: dt.date
    validation: ValidationOutcome
    accounts: pd.DataFrame           # every account row of the snapshot, accepted or not
    notes: list[str] = field(default_factory=list)  # intake's notes (mapping, encodings)
    view: pd.DataFrame | None = None  # the accepted accounts' customer view (accept only)
    scored: pd.DataFrame | None = None
    decisions: pd.DataFrame | None = None
    # decisions not raised: their expected effect is negative (worklist/worth.py)
    withheld: pd.DataFrame | None = None

    @property
    def stopped(self) -> bool:
        return self.validation.stopped

    @property
    def withheld_by_action(self) -> dict[str, int]:
        if self.withheld is None or self.withheld.empty:
            return {}
        return {str(k): int(v) for k, v in self.withheld["action"].value_counts().items()}


class Stages:
    """How the plan's steps run: here, directly. The daily run overrides ``run`` and ``map``
    to make each step a timed Prefect task, and ``validated`` to keep the validation results
    and guard the store before anything is scored."""

    def run(self, name: str, step: Callable[..., R], *args: Any) -> R:
        return step(*args)

    def map(self, name: str, step: Callable[..., R], chunks: Sequence[pd.DataFrame],
            *args: Any) -> list[R]:
        return [step(chunk, *args) for chunk in chunks]

    def validated(self, plan: Plan) -> bool:
        """Called once validation is done, stopped or not; False stops the plan there."""
        return True


DIRECT = Stages()


# --------------------------------------------------------------------------- the steps

def read(source: Path | str, as_of: dt.date, mapping: SnapshotMapping | None) -> Snapshot:
    return read_tables(source, mapping, as_of)


def check(snapshot: Snapshot, as_of: dt.date, policy: ValidationPolicy) -> ValidationOutcome:
    """Validation with the snapshot date, always: freshness and the customer view apply."""
    return validate_snapshot(snapshot.tables, snapshot.problems, policy, as_of=as_of,
                             files=snapshot.files, signals=snapshot.signals)


def customer_view(validation: ValidationOutcome, as_of: dt.date) -> pd.DataFrame:
    """The view validation already built (and checked), or a new one from the accepted tables."""
    if validation.view is None:
        return build_customer_view(validation.accepted, as_of)
    return validation.view.drop(columns=["_row"], errors="ignore")


def score(view: pd.DataFrame, conf: PlanConfig,
          population: Population | None = None) -> pd.DataFrame:
    if conf.scoring is None:
        raise ValueError("the plan needs a scoring configuration to score")
    return score_accounts(view, conf.scoring, population, conf.model)


def decide_accounts(scored: pd.DataFrame, as_of: dt.date, conf: PlanConfig) -> pd.DataFrame:
    """The rule set's decisions on the scored accounts, appraised (worklist/worth.py: effort,
    expected revenue kept, net per hour) and each marked held out or not (the randomised
    control group of its action: rules/holdout.py, ``held_out`` and ``experiment_period``).
    Decisions withheld for a negative expected effect come last, marked ``_withheld``, and are
    never held out: they get nothing either way (``plan_snapshot`` sets them apart)."""
    if conf.ruleset is None:
        raise ValueError("the plan needs a rule set to decide")
    appraisal = appraise(decide(scored, conf.ruleset), conf.beliefs)
    decided = hold_out(appraisal.kept, as_of, conf.ruleset.holdout)
    if appraisal.withheld.empty:
        return decided
    return pd.concat([decided, appraisal.withheld.assign(_withheld=True)], ignore_index=True)


def set_apart_withheld(decisions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``decide_accounts``' decisions as (raised, withheld): what a run would see."""
    if "_withheld" not in decisions:
        return decisions, decisions.iloc[0:0]
    withheld = decisions["_withheld"].eq(True).to_numpy()
    kept = decisions.loc[~withheld].drop(columns="_withheld").reset_index(drop=True)
    if "held_out" in kept:  # the concatenation made it object
        kept["held_out"] = kept["held_out"].astype(bool)
    return (kept,
            decisions.loc[withheld].drop(columns=["_withheld", "held_out",
                                                  "experiment_period"], errors="ignore")
            .reset_index(drop=True))


def score_and_decide(view: pd.DataFrame, as_of: dt.date, conf: PlanConfig,
                     population: Population) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One partition of a scaled-out plan: scored against the whole population, then decided."""
    scored = score(view, conf, population)
    return scored, decide_accounts(scored, as_of, conf)


def partition(view: pd.DataFrame, pieces: int) -> list[pd.DataFrame]:
    bounds = np.linspace(0, len(view), pieces + 1).astype(int)
    return [view.iloc[a:b].reset_index(drop=True)
            for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


# --------------------------------------------------------------------------- the composition

def accept(source: Path | str, as_of: dt.date, policy: ValidationPolicy,
           mapping: SnapshotMapping | None = None, stages: Stages = DIRECT) -> Plan:
    """Read and validate the snapshot in ``source`` dated ``as_of``; the plan's ``view`` is
    the accepted accounts' customer view (None when validation stopped the batch)."""
    snapshot = stages.run("intake", read, source, as_of, mapping)
    validation = stages.run("validate", check, snapshot, as_of, policy)
    found = Plan(as_of, validation, snapshot.tables["accounts"], list(snapshot.notes))
    del snapshot  # what the later steps need is in the validation outcome
    if stages.validated(found) and not validation.stopped:
        found.view = customer_view(validation, as_of)
    return found


def plan_snapshot(source: Path | str, as_of: dt.date, conf: PlanConfig,
                  stages: Stages = DIRECT, partitions: int = 1) -> Plan:
    """The plan of the snapshot in ``source`` dated ``as_of``: accepted, scored and (with a
    rule set) decided. ``partitions`` > 1 scores and decides the accounts in that many pieces
    (``stages.map``: the daily run's task runner, a Dask cluster when scaled out); the result
    equals the one-piece plan."""
    found = accept(source, as_of, conf.validation, conf.mapping, stages)
    view, found.view = found.view, None
    if view is None:
        return found
    if partitions > 1 and conf.ruleset is not None:
        # a model's bands rank against everyone, not against each partition
        population = fit_population(view, _scoring(conf), conf.model)
        parts = stages.map("score+decide", score_and_decide, partition(view, partitions),
                           as_of, conf, population)
        del view
        found.scored = pd.concat([p[0] for p in parts], ignore_index=True)
        decisions = pd.concat([p[1] for p in parts], ignore_index=True)
        found.decisions = decisions.sort_values(["account_id", "action"], kind="stable") \
            .reset_index(drop=True)
    else:
        found.scored = stages.run("score", score, view, conf)
        del view
        if conf.ruleset is not None:
            found.decisions = stages.run("decide", decide_accounts, found.scored, as_of, conf)
    if found.decisions is not None:
        found.decisions, found.withheld = set_apart_withheld(found.decisions)
    # scored: everything later steps need; let the accepted tables go (1 GB at 1M accounts)
    found.validation.accepted, found.validation.view = {}, None
    return found


def _scoring(conf: PlanConfig) -> ScoringConfig:
    if conf.scoring is None:
        raise ValueError("the plan needs a scoring configuration to score")
    return conf.scoring
