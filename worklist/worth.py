"""What a task is worth: its expected net revenue kept per manager-hour. Pure.

Each action has an effort in hours and a belief about what it achieves (conf/effects.yaml):
a relative reduction of the account's churn probability, with a range, and a cost (an offer's
discount, a visit's travel). For one decision

    expected kept (CNY a year) = value at risk (CNY a month) x 12 x effect - cost
    net per hour               = expected kept / effort hours

The belief starts as the operator's prior and moves toward what the randomised holdout measured
(``Beliefs.measured``) in proportion to the evidence (normal-normal shrinkage): the measured
relative effect weighs prior variance / (prior variance + its sampling variance). The prior's
variance is its stated range's (low..high as a 95 % interval), or, without a range, that of a
balanced experiment of ``prior_strength`` decisions. The sampling variance is that of the
difference of the two churn shares over the held-out churn squared: with churn of a few per
cent and a small control group it is large, and the prior barely moves. The evidence is shown
as n, the size of a balanced experiment as precise: 4 / (1/treated + 1/held out).
Every appraisal says where its effect came from: ``prior`` or ``measured n=…``.

A decision whose expected effect is negative (a "sleeping dog" a contact pushes away) is
withheld: no task is raised, and the run counts what was withheld and why. So is one whose
expected net revenue is negative (an offer whose discount costs more than the churn it is
believed to prevent: ``withhold_losses``, on by default). Must-do work never is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from kamflow.worklist.capacity import urgent_tasks

__all__ = ["ActionBelief", "Appraisal", "Beliefs", "Effect", "appraise", "shrink",
           "withheld_mask"]

# What an appraised decision carries (the task store keeps the first three on the task).
WORTH_COLUMNS = ("effort_hours", "expected_retained_cny_yearly", "effect_source",
                 "expected_effect", "net_per_hour", "must_do")


@dataclass(frozen=True)
class Effect:
    """A relative reduction of churn probability (0.2: a fifth fewer leave), with a range."""

    relative: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ActionBelief:
    """What one action costs and achieves; ``segments`` override the effect by
    ``value_class``, ``churn_band`` or ``rule`` (the most specific match wins: rule, then value
    class, then churn band). ``by_cause`` is for a *true* effects file (``kamflow outcome
    --effects``): the generator's latent cause of churn, which no decision carries, wins over
    all."""

    effort_hours: float
    effect: Effect
    cost_cny: float = 0.0        # per task, CNY
    cost_share: float = 0.0      # share of the account's yearly revenue (an offer's discount)
    by_rule: Mapping[str, Effect] = field(default_factory=dict)
    by_value_class: Mapping[str, Effect] = field(default_factory=dict)
    by_churn_band: Mapping[str, Effect] = field(default_factory=dict)
    by_cause: Mapping[str, Effect] = field(default_factory=dict)
    measured_n: Mapping[str, int] = field(default_factory=dict)  # segment key -> decisions


@dataclass(frozen=True)
class Beliefs:
    actions: Mapping[str, ActionBelief]
    must_do: frozenset[str] = frozenset()   # actions ranked first whatever they score
    default_effort_hours: float = 1.0       # an action the file does not name
    prior_strength: float = 2000.0          # decisions the prior counts as
    # withhold a decision expected to lose money (its cost above what it keeps), not only one
    # expected to push the account away
    withhold_losses: bool = True

    def measured(self, rows: Sequence[Mapping[str, object]]) -> Beliefs:
        """These beliefs moved toward measured effects: ``rows`` as ``kamflow report
        --effects --format json`` gives them (action, segment "all", "class:<value class>" or
        "reason:<rule id>", treated, held_out, churn_held_out, effect_pp). The relative effect
        measured is effect_pp / (100 x churn_held_out); an arm without held-out churn tells
        nothing."""
        actions = dict(self.actions)
        for row in rows:
            action = str(row.get("action"))
            belief = actions.get(action)
            base = float(str(row.get("churn_held_out") or 0.0))
            held, treated = int(str(row.get("held_out") or 0)), int(str(row.get("treated") or 0))
            if belief is None or base <= 0 or held <= 0 or treated <= 0:
                continue
            # the evidence: the decisions of a balanced experiment as precise as this one (a
            # difference's variance goes with 1/treated + 1/held out, so a small control group
            # is little evidence however many were treated)
            n = round(4 / (1 / treated + 1 / held))
            effect_pp = float(row["effect_pp"])  # type: ignore[arg-type]
            measured = effect_pp / 100.0 / base
            # the measured relative effect's variance: the difference's over the base squared
            treated_churn = min(max(base - effect_pp / 100.0, 0.0), 1.0)
            noise = (base * (1 - base) / held + treated_churn * (1 - treated_churn) / treated) \
                / base ** 2

            def moved(prior: Effect, noise: float = noise, measured: float = measured,
                      base: float = base) -> Effect:
                return _shrink(prior, measured, self._weight(prior, noise, base))

            segment = str(row.get("segment", "all"))
            if segment == "all":
                belief = replace(belief, effect=moved(belief.effect),
                                 measured_n={**belief.measured_n, "all": n})
            elif segment.removeprefix("class:") in _VALUE_CLASSES \
                    or segment in belief.by_value_class:
                segment = segment.removeprefix("class:")  # the effects report's "class:high"
                prior = belief.by_value_class.get(segment, belief.effect)
                belief = replace(belief, by_value_class={
                    **belief.by_value_class, segment: moved(prior)},
                    measured_n={**belief.measured_n, f"value_class:{segment}": n})
            elif segment.startswith("reason:"):  # the rule that fired
                rule = segment.removeprefix("reason:")
                prior = belief.by_rule.get(rule, belief.effect)
                belief = replace(belief, by_rule={**belief.by_rule, rule: moved(prior)},
                                 measured_n={**belief.measured_n, f"rule:{rule}": n})
            actions[action] = belief
        return replace(self, actions=actions)

    def _weight(self, prior: Effect, noise: float, base: float) -> float:
        """The measurement's weight against the prior (normal-normal): the prior's variance
        over both. The prior's variance is its stated range's (low..high read as a 95 %
        interval) or, without one, that of a balanced experiment of ``prior_strength``
        decisions at this churn."""
        if prior.low is not None and prior.high is not None and prior.high > prior.low:
            spread = ((prior.high - prior.low) / 3.92) ** 2
        else:
            spread = 4 * (1 - base) / (base * self.prior_strength) if self.prior_strength \
                else math.inf
        if not math.isfinite(spread):
            return 1.0
        return spread / (spread + noise) if spread + noise > 0 else 0.0


_VALUE_CLASSES = ("high", "secondary", "potential", "low")


def shrink(prior: Effect, measured: float, n: int, prior_strength: float) -> Effect:
    """The prior moved toward ``measured`` with weight n / (n + prior_strength); the range
    narrows by the same weight around the new mean."""
    return _shrink(prior, measured, n / (n + prior_strength) if n > 0 else 0.0)


def _shrink(prior: Effect, measured: float, w: float) -> Effect:
    mean = (1 - w) * prior.relative + w * measured
    low = None if prior.low is None else mean - (1 - w) * (prior.relative - prior.low)
    high = None if prior.high is None else mean + (1 - w) * (prior.high - prior.relative)
    return Effect(mean, low, high)


@dataclass
class Appraisal:
    """The appraised decisions (with WORTH_COLUMNS) and those withheld, with why."""

    kept: pd.DataFrame
    withheld: pd.DataFrame                    # the decisions not raised, column withheld_why
    withheld_by_action: dict[str, int]


def appraise(decisions: pd.DataFrame, beliefs: Beliefs | None,
             withhold: bool = True) -> Appraisal:
    """Each decision's effort, expected effect, expected kept revenue and net per hour;
    decisions with a negative expected effect are withheld. Must-do work (``must_do``
    actions, escalations to the department, urgent actions: ``urgent_tasks``) never is, and
    ranks first whatever it scores. Decisions expected to lose money are withheld too unless
    ``beliefs.withhold_losses`` is off. ``withhold=False`` keeps every row (a simulation's
    truth).

    Vectorised: one pass per action and segment, not per decision."""
    if beliefs is None or decisions.empty:
        return Appraisal(decisions, decisions.iloc[0:0], {})
    n = len(decisions)
    action = decisions["action"].astype(str).to_numpy()
    effort = np.full(n, beliefs.default_effort_hours, dtype=float)
    effect = np.zeros(n, dtype=float)
    cost = np.zeros(n, dtype=float)
    source = np.full(n, "prior", dtype=object)
    monthly = _numbers(decisions, "monthly_revenue", n)
    at_risk = _numbers(decisions, "value_at_risk", n)
    columns = {key: decisions[key].astype(str).to_numpy() if key in decisions else
               np.full(n, "", dtype=object)
               for key in ("rule_id", "value_class", "churn_band", "cause")}
    for name, belief in beliefs.actions.items():
        rows = action == name
        if not rows.any():
            continue
        effort[rows] = belief.effort_hours
        cost[rows] = belief.cost_cny + belief.cost_share * 12.0 * monthly[rows]
        effect[rows] = belief.effect.relative
        if "all" in belief.measured_n:
            source[rows] = f"measured n={belief.measured_n['all']}"
        # least specific first, so the most specific match is written last
        for key, table, label in (("churn_band", belief.by_churn_band, "churn_band"),
                                  ("value_class", belief.by_value_class, "value_class"),
                                  ("rule_id", belief.by_rule, "rule"),
                                  ("cause", belief.by_cause, "cause")):
            for value, segment_effect in table.items():
                hit = rows & (columns[key] == value)
                effect[hit] = segment_effect.relative
                measured = belief.measured_n.get(f"{label}:{value}")
                if measured:
                    source[hit] = f"measured n={measured}"
    must = np.isin(action, list(beliefs.must_do))
    if "owner_role" in decisions:
        must |= urgent_tasks(decisions)
    kept_yearly = at_risk * 12.0 * effect - cost
    appraised = decisions.assign(
        effort_hours=effort, expected_effect=effect,
        expected_retained_cny_yearly=np.round(kept_yearly, 2), effect_source=source,
        net_per_hour=kept_yearly / np.maximum(effort, 1e-6), must_do=must)
    pushes = effect < 0
    held = withheld_mask(effect, kept_yearly, must, beliefs) if withhold \
        else np.zeros(n, dtype=bool)
    why = np.where(pushes, "expected effect negative: contact is believed to push this account "
                           "away",
                   "expected net revenue negative: the action's cost is more than it is "
                   "expected to keep")
    withheld = appraised.loc[held].assign(withheld_why=why[held])
    return Appraisal(appraised.loc[~held].reset_index(drop=True), withheld,
                     {str(k): int(v) for k, v in withheld["action"].value_counts().items()})


def withheld_mask(effect: np.ndarray, kept_yearly: np.ndarray, must: np.ndarray,
                  beliefs: Beliefs) -> np.ndarray:
    """Which appraised decisions are not raised: a negative expected effect, or (with
    ``withhold_losses``) a negative expected net revenue kept; must-do work never."""
    loses = kept_yearly < 0 if beliefs.withhold_losses else np.zeros(len(effect), dtype=bool)
    return ((effect < 0) | loses) & ~must


def _numbers(frame: pd.DataFrame, column: str, n: int) -> np.ndarray:
    if column not in frame:
        return np.zeros(n)
    return pd.to_numeric(frame[column], errors="coerce").fillna(0.0).to_numpy(dtype=float)
