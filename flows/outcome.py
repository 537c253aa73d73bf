"""What a month of capacity-limited work reaches: the outcome simulation behind ``kamflow outcome``.

The question a key-account department asks of a worklist is not how many tasks it raised but
how much of the revenue that was about to leave got somebody's attention in time. This plays
out ``days`` days of the daily run on one scored snapshot whose churn is known (the realistic
generator's ground truth, or an operator's labelled export), for each ordering of
``worklist.capacity.ORDERS``:

- every day each owner is released what their capacity allows (``allocate``: new tasks a day,
  open tasks at most; department escalations and urgent actions always), exactly as the task
  store releases queued tasks, the rest waits and is re-ranked the next day;
- every owner then finishes up to ``work_per_day`` of their open tasks;
- an account that leaves (its ``churn_date``) takes its waiting tasks with it: a task released
  after the account left reached nobody.

The measure is the share of the churning accounts' monthly revenue that had at least one task
released before they left and within the ``days``. The snapshot stays as it is over the days
(no new signals, no cadence repeats): the comparison is between orderings of the same work.
The simulation is pure: frames in, figures out (no task store, no Prefect); ``day_one``
reads the snapshot and plans its worklist as a run would, writing nothing.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kamflow.core.errors import BatchRejected, KamflowError
from kamflow.worklist.capacity import ORDERS, Capacity, allocate, urgent_tasks
from kamflow.worklist.worth import Beliefs, appraise

__all__ = ["OrderingOutcome", "OutcomeReport", "day_one", "leave_days", "play_out",
           "simulate_outcome"]

CapacityOf = Callable[[str, str], Capacity]


@dataclass(frozen=True)
class OrderingOutcome:
    """One ordering's month: tasks released, and the churning accounts and revenue reached."""

    order: str
    released: int
    decliners_reached: int
    revenue_reached: float   # monthly CNY of the churning accounts reached before they left
    revenue_share: float     # of all churning accounts' monthly revenue
    first_week_share: float  # the same, counting only tasks released in the first 7 days


@dataclass(frozen=True)
class OutcomeReport:
    days: int
    work_per_day: int
    accounts: int
    owners: int
    tasks: int                # candidate tasks on the first day (whole worklist, uncapped)
    decliners: int            # accounts that churn within the labels' horizon
    decliner_revenue: float   # their monthly revenue, CNY
    outcomes: list[OrderingOutcome] = field(default_factory=list)

    def of(self, order: str) -> OrderingOutcome:
        return next(o for o in self.outcomes if o.order == order)

    def ratio(self, order: str, baseline: str) -> float:
        """Revenue reached by ``order`` over that reached by ``baseline`` (inf over nothing)."""
        base = self.of(baseline).revenue_reached
        return self.of(order).revenue_reached / base if base else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "outcomes"},
                "outcomes": [asdict(o) for o in self.outcomes],
                "ratio_value_at_risk_to_priority": _finite(self.ratio("value_at_risk",
                                                                      "priority")),
                "ratio_value_at_risk_to_random": _finite(self.ratio("value_at_risk", "random"))}

    def text(self) -> str:
        lines = [f"{self.days} simulated days, {self.accounts:,} accounts, {self.owners:,} "
                 f"owners, {self.tasks:,} candidate tasks on day one; each owner finishes up to "
                 f"{self.work_per_day} task(s) a day.",
                 f"{self.decliners:,} accounts churn, bringing {self.decliner_revenue:,.0f} CNY "
                 "a month.", "",
                 f"{'ordering':<15} {'released':>9} {'churners reached':>17} "
                 f"{'revenue reached':>16} {'share':>7} {'in week 1':>10}"]
        for o in self.outcomes:
            lines.append(f"{o.order:<15} {o.released:>9,} {o.decliners_reached:>17,} "
                         f"{o.revenue_reached:>16,.0f} {o.revenue_share:>7.1%} "
                         f"{o.first_week_share:>10.1%}")
        lines += ["", f"value at risk reaches {self.ratio('value_at_risk', 'priority'):.2f}x the "
                      "revenue of priority-only ordering and "
                      f"{self.ratio('value_at_risk', 'random'):.2f}x that of random ordering."]
        return "\n".join(lines)


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def play_out(planned: pd.DataFrame, leave_day: np.ndarray, capacity_of: CapacityOf,
             days: int, work_per_day: int, order: str, seed: int = 0) -> np.ndarray:
    """The day (0-based) each planned task is released under ``order``, -1 if never.

    ``leave_day`` gives, per planned task, the day its account leaves (inf: it stays); from that
    day on its waiting task is gone. Each day's allocation starts from the owners' open counts
    left by the day before, with nothing released yet that day."""
    if days < 1 or work_per_day < 0:
        raise ValueError("days must be >= 1 and work_per_day >= 0")
    released_day = np.full(len(planned), -1, dtype=np.int64)
    owners = planned["owner_email"].astype(str).str.lower().to_numpy()
    open_now: Counter[str] = Counter()
    for day in range(days):
        waiting = np.flatnonzero((released_day < 0) & (leave_day > day))
        if len(waiting):
            chosen = allocate(planned.iloc[waiting], capacity_of, open_now, {}, order,
                              seed + day)
            released = waiting[chosen]
            released_day[released] = day
            open_now.update(Counter(owners[released].tolist()))
        for owner in list(open_now):  # a day's work: the oldest open tasks get done
            open_now[owner] = max(0, open_now[owner] - work_per_day)
    return released_day


def simulate_outcome(planned: pd.DataFrame, accounts: pd.DataFrame, capacity_of: CapacityOf,
                     days: int = 30, work_per_day: int = 8, seed: int = 0,
                     orders: Sequence[str] = ORDERS) -> OutcomeReport:
    """Play out ``days`` days for each of ``orders``.

    ``planned`` is the day-one worklist (``worklist.plan_tasks``: owner_email, owner_role,
    priority, account_id, and value_at_risk and proactive where scoring gave them).
    ``accounts`` has one row per scored account: ``account_id``, ``monthly_revenue`` and
    ``leave_day`` (days after the snapshot the account left; NaN: it stayed)."""
    leave = pd.to_numeric(accounts["leave_day"], errors="coerce").to_numpy(dtype=float)
    churning = ~np.isnan(leave)
    revenue = accounts["monthly_revenue"].to_numpy(dtype=float)
    decliner_revenue = float(revenue[churning].sum())
    by_account = pd.Series(np.where(churning, leave, np.inf),
                           index=accounts["account_id"].astype(str))
    task_leave = planned["account_id"].astype(str).map(by_account).fillna(np.inf).to_numpy()
    candidates = planned.assign(urgent=urgent_tasks(planned))
    churner_index = pd.Index(accounts["account_id"].astype(str)[churning])
    churner_revenue = pd.Series(revenue[churning], index=churner_index)
    outcomes = []
    for order in orders:
        released_day = play_out(candidates, task_leave, capacity_of, days, work_per_day, order,
                                seed)
        outcomes.append(_reached(order, planned, released_day, task_leave, churner_revenue,
                                 decliner_revenue))
    return OutcomeReport(days, work_per_day, len(accounts),
                         int(planned["owner_email"].astype(str).str.lower().nunique()),
                         len(planned), int(churning.sum()), decliner_revenue, outcomes)


def _reached(order: str, planned: pd.DataFrame, released_day: np.ndarray,
             task_leave: np.ndarray, churner_revenue: pd.Series,
             decliner_revenue: float) -> OrderingOutcome:
    """Which churning accounts had a task released before they left: all days, first week."""
    in_time = (released_day >= 0) & (released_day < task_leave)
    ids = planned["account_id"].astype(str).to_numpy()

    def revenue_of(mask: np.ndarray) -> tuple[int, float]:
        reached = churner_revenue.index.intersection(pd.Index(np.unique(ids[mask])))
        return len(reached), float(churner_revenue.loc[reached].sum())

    count, revenue = revenue_of(in_time)
    _, week = revenue_of(in_time & (released_day < 7))
    share = revenue / decliner_revenue if decliner_revenue else 0.0
    return OrderingOutcome(order, int((released_day >= 0).sum()), count, round(revenue, 2),
                           round(share, 4),
                           round(week / decliner_revenue, 4) if decliner_revenue else 0.0)


def leave_days(truth: pd.DataFrame, as_of: Any, label: str = "declining") -> pd.Series:
    """Days after ``as_of`` each account left, from a ground truth with ``churn_date`` (NaN for
    those who stayed; a churner without a date counts as leaving after the simulated days)."""
    churned = truth[label].astype(bool).to_numpy()
    if "churn_date" in truth:
        when = (pd.to_datetime(truth["churn_date"], errors="coerce")
                - pd.Timestamp(as_of)).dt.days.to_numpy(dtype=float)
    else:
        when = np.full(len(truth), np.nan)
    when = np.where(churned, np.where(np.isnan(when), 1e9, when), np.nan)
    return pd.Series(when, index=truth["account_id"].astype(str))



def day_one(source: Path, as_of: dt.date, conf_dir: Path, rules_dir: Path | None = None,
            labels: Path | None = None,
            mapping: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The day-one worklist of the snapshot in ``source`` and its accounts' fate: what
    ``kamflow run`` would plan (the same plan: flows/plan.py, then owners), nothing written.

    The fate comes from ``labels`` (default ``source/ground_truth.csv``: ``account_id``,
    ``declining`` and, from the realistic generator, ``churn_date``)."""
    from kamflow import config
    from kamflow.flows.plan import PlanConfig, plan_snapshot
    from kamflow.rules import RULES_DIR
    from kamflow.worklist import plan_tasks

    labels = labels or source / "ground_truth.csv"
    if not labels.is_file():
        raise KamflowError(f"{labels}: no known outcome to simulate against (a snapshot from "
                           "`kamflow generate --mode realistic` has ground_truth.csv)")
    conf = PlanConfig.load(conf_dir, rules_dir or RULES_DIR, mapping)
    found = plan_snapshot(source, as_of, conf)
    if found.scored is None or found.decisions is None or conf.ruleset is None:
        raise BatchRejected(found.validation.message)
    scored, ruleset = found.scored, conf.ruleset
    owners = config.load_owners(conf_dir / "owners.yaml")
    now = dt.datetime.combine(as_of, dt.time(9), dt.UTC)
    # the holdout's control group (held_out) gets no task in the run, so none here either, and
    # the decisions kamflow withholds (worklist/worth.py) none from kamflow: both come along,
    # marked, for the orderings that never withheld and for the learning mode's own holdout
    raised = found.decisions.assign(held_out=found.decisions["held_out"].astype(bool),
                                    withheld=False)
    if found.withheld is not None and not found.withheld.empty:
        raised = pd.concat([raised, found.withheld.assign(withheld=True, held_out=False)],
                           ignore_index=True)
    planned = plan_tasks(raised, owners, {a: a for a in ruleset.actions}, now)
    truth = pd.read_csv(labels, dtype={"account_id": str})
    missing = {"account_id", "declining"} - set(truth.columns)
    if missing:
        raise KamflowError(f"{labels}: missing column(s) {', '.join(sorted(missing))}")
    leave = leave_days(truth, as_of)
    accounts = pd.DataFrame({
        "account_id": scored["account_id"].astype(str).to_numpy(),
        "monthly_revenue": scored["monthly_revenue"].to_numpy(dtype=float),
        "leave_day": scored["account_id"].astype(str).map(leave).to_numpy(dtype=float)})
    if "cause" in truth:  # the realistic generator's latent cause (true effects by cause)
        causes = pd.Series(truth["cause"].astype(str).to_numpy(),
                           index=truth["account_id"].astype(str))
        accounts["cause"] = accounts["account_id"].map(causes).fillna("").to_numpy()
    return planned, accounts


# -- revenue kept under true effects (issue 24) --------------------------------------------
# The orderings `kamflow outcome` compares, each as the capacity order it plays and the column
# it ranks by: kamflow's (must-do first, then expected net revenue kept per hour under its
# priors), the previous order (priority, risk first, value at risk), value at risk alone,
# random, and the oracle (net per hour under the TRUE effects: the ceiling).
KEPT_ORDERINGS = ("kamflow", "previous", "value_at_risk", "random", "oracle")
# the generated department's true effects (kamflow outcome --print-effects)
TRUE_EFFECTS = Path(str(importlib.resources.files("kamflow") / "true_effects.yaml"))


@dataclass(frozen=True)
class KeptOutcome:
    """One ordering's days: tasks and hours done, and the revenue they kept (CNY a year)."""

    ordering: str
    tasks_done: int
    hours_done: float
    retained_cny_yearly: float       # churners' revenue kept (expected) + stayers' lost
    cost_cny_yearly: float           # the actions' costs (an offer's discount, a visit's travel)
    retained_net_cny_yearly: float


@dataclass(frozen=True)
class KeptReport:
    days: int
    accounts: int
    owners: int
    tasks: int
    churners: int
    churner_revenue_cny_yearly: float
    effects: str                     # where the true effects came from
    orderings: list[KeptOutcome] = field(default_factory=list)

    def of(self, ordering: str) -> KeptOutcome:
        return next(o for o in self.orderings if o.ordering == ordering)

    def ratio(self, ordering: str, baseline: str) -> float | None:
        base = self.of(baseline).retained_net_cny_yearly
        return self.of(ordering).retained_net_cny_yearly / base if base > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {"parameters": {k: v for k, v in asdict(self).items() if k != "orderings"},
                "orderings": {o.ordering: {k: v for k, v in asdict(o).items()
                                           if k != "ordering"} for o in self.orderings},
                "ratio_kamflow_to_previous": self.ratio("kamflow", "previous"),
                "ratio_kamflow_to_oracle": self.ratio("kamflow", "oracle")}

    def text(self) -> str:
        lines = [f"{self.days} simulated days, {self.accounts:,} accounts, {self.owners:,} owners, "
                 f"{self.tasks:,} candidate tasks; each owner is released what their hours and "
                 "task limits (conf/owners.yaml) allow, and does it that day.",
                 f"{self.churners:,} accounts would leave, bringing "
                 f"{self.churner_revenue_cny_yearly:,.0f} CNY a year. True effects: "
                 f"{self.effects}.", "",
                 f"{'ordering':<14} {'tasks done':>10} {'hours':>9} {'kept CNY/yr':>14} "
                 f"{'cost CNY/yr':>12} {'net CNY/yr':>14}"]
        for o in self.orderings:
            lines.append(f"{o.ordering:<14} {o.tasks_done:>10,} {o.hours_done:>9,.1f} "
                         f"{o.retained_cny_yearly:>14,.0f} {o.cost_cny_yearly:>12,.0f} "
                         f"{o.retained_net_cny_yearly:>14,.0f}")
        previous, oracle = self.ratio("kamflow", "previous"), self.ratio("kamflow", "oracle")
        lines += ["", "kamflow keeps " + (f"{previous:.2f}x" if previous is not None else "n/a")
                  + " the net revenue of the previous order and "
                  + (f"{oracle:.2f}x" if oracle is not None else "n/a")
                  + " of the oracle's (true effects known)."]
        return "\n".join(lines)


def simulate_kept(planned: pd.DataFrame, accounts: pd.DataFrame, capacity_of: CapacityOf,
                  truth: pd.DataFrame, days: int = 60, seed: int = 0,
                  orderings: Sequence[str] = KEPT_ORDERINGS, effects: str = "") -> KeptReport:
    """Play ``days`` days for each ordering and count the revenue the done tasks keep.

    ``planned`` is the day-one worklist appraised under kamflow's priors (worklist/worth.py:
    effort_hours, net_per_hour, must_do); ``truth`` has, per planned task, ``true_effect``
    (relative reduction of churn) and ``true_cost`` (CNY); ``accounts`` has ``account_id``,
    ``monthly_revenue`` and ``leave_day`` (NaN: it stays). Every day each owner is released
    what their capacity allows and does it that day; an account that left takes its waiting
    tasks with it. A task done on day d before its account leaves keeps, in expectation,
    12 x monthly revenue x its true effect (an account's effects combine as 1 - prod(1 - e));
    a negative effect done on an account that stays loses 12 x monthly revenue x |e|. Costs
    count for every task done."""
    candidates, ids, task_leave, monthly, churner = _department(planned, accounts)
    effect = truth["true_effect"].to_numpy(dtype=float)
    cost = truth["true_cost"].to_numpy(dtype=float)
    hours = pd.to_numeric(candidates.get("effort_hours", pd.Series(0.0, index=candidates.index)),
                          errors="coerce").fillna(0.0).to_numpy(dtype=float)
    withheld, held_out = _flag(candidates, "withheld"), _flag(candidates, "held_out")
    outcomes = []
    for ordering in orderings:
        frame, order = _ranked_as(ordering, candidates, effect, cost, hours)
        # the control group gets no task whatever the order
        playable = _playable(ordering, frame, withheld, effect, cost) & ~held_out
        done_day = np.full(len(frame), -1, dtype=np.int64)
        done_day[playable] = play_hours(frame.loc[playable].reset_index(drop=True),
                                        task_leave[playable], capacity_of, days, order, seed)
        outcomes.append(_kept(ordering, ids.to_numpy(), done_day, task_leave, effect, cost, hours,
                              monthly, churner))
    churn_revenue = float(monthly[churner.to_numpy()].sum() * 12)
    return KeptReport(days, len(accounts), int(candidates["owner_email"].astype(str).str.lower()
                                               .nunique()), len(candidates),
                      int(churner.sum()), round(churn_revenue, 2), effects, outcomes)


def _department(planned: pd.DataFrame, accounts: pd.DataFrame
                ) -> tuple[pd.DataFrame, pd.Series, np.ndarray, pd.Series, pd.Series]:
    """What every play of ``planned`` reads: the candidates (with ``urgent``), their account
    ids, the day each one's account leaves (inf: it stays), and per account its monthly
    revenue and whether it churns."""
    leave = pd.to_numeric(accounts["leave_day"], errors="coerce").to_numpy(dtype=float)
    monthly = pd.Series(accounts["monthly_revenue"].to_numpy(dtype=float),
                        index=accounts["account_id"].astype(str))
    churner = pd.Series(~np.isnan(leave), index=monthly.index)
    candidates = planned.assign(urgent=urgent_tasks(planned)).reset_index(drop=True)
    ids = candidates["account_id"].astype(str)
    by_account = pd.Series(np.where(np.isnan(leave), np.inf, leave), index=monthly.index)
    return candidates, ids, ids.map(by_account).fillna(np.inf).to_numpy(), monthly, churner


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    return (frame[column].fillna(False).astype(bool).to_numpy() if column in frame
            else np.zeros(len(frame), dtype=bool))


def _playable(ordering: str, frame: pd.DataFrame, withheld: np.ndarray, effect: np.ndarray,
              cost: np.ndarray) -> np.ndarray:
    """Which candidates an ordering may do: kamflow not the decisions it withholds (expected to
    push the account away or to lose money); the oracle not those whose TRUE net is negative
    (it knows; must-do work aside); the others every one (they never withheld)."""
    if ordering == "kamflow":
        return ~withheld
    if ordering == "oracle":
        risk = pd.to_numeric(frame["value_at_risk"], errors="coerce").fillna(0.0).to_numpy()
        must = (frame["must_do"].fillna(False).astype(bool).to_numpy()
                if "must_do" in frame else np.zeros(len(frame), dtype=bool))
        return must | frame["urgent"].astype(bool).to_numpy() | (risk * 12.0 * effect - cost >= 0)
    return np.ones(len(frame), dtype=bool)


def _ranked_as(ordering: str, candidates: pd.DataFrame, effect: np.ndarray, cost: np.ndarray,
               hours: np.ndarray) -> tuple[pd.DataFrame, str]:
    """The candidates as ``ordering`` ranks them, and the capacity order that does it."""
    if ordering == "kamflow":
        return candidates, "net_per_hour"
    if ordering == "previous":
        return candidates, "value_at_risk"
    if ordering == "random":
        return candidates, "random"
    risk = pd.to_numeric(candidates["value_at_risk"], errors="coerce").fillna(0.0).to_numpy()
    if ordering == "value_at_risk":  # the revenue at risk alone, must-do work still first
        return candidates.assign(net_per_hour=risk), "net_per_hour"
    if ordering == "oracle":
        worth = (risk * 12.0 * effect - cost) / np.maximum(hours, 1e-6)
        return candidates.assign(net_per_hour=worth), "net_per_hour"
    raise ValueError(f"unknown ordering {ordering!r}; use one of {', '.join(KEPT_ORDERINGS)}")


def play_hours(planned: pd.DataFrame, leave_day: np.ndarray, capacity_of: CapacityOf,
               days: int, order: str, seed: int = 0) -> np.ndarray:
    """The day (0-based) each planned task is released and done under ``order``, -1 if
    never: each day every owner gets a fresh day of hours and tasks (conf/owners.yaml) and does
    what they are released that day."""
    if days < 1:
        raise ValueError("days must be >= 1")
    done_day = np.full(len(planned), -1, dtype=np.int64)
    for day in range(days):
        waiting = np.flatnonzero((done_day < 0) & (leave_day > day))
        if not len(waiting):
            break
        chosen = allocate(planned.iloc[waiting], capacity_of, {}, {}, order, seed + day)
        if not chosen.any():
            break  # nobody has capacity for anything that is left
        done_day[waiting[chosen]] = day
    return done_day


def _kept(ordering: str, ids: np.ndarray, done_day: np.ndarray, task_leave: np.ndarray,
          effect: np.ndarray, cost: np.ndarray, hours: np.ndarray, monthly: pd.Series,
          churner: pd.Series) -> KeptOutcome:
    done = (done_day >= 0) & (done_day < task_leave)
    frame = pd.DataFrame({"account": ids[done], "effect": effect[done]})
    frame["keep"] = np.log1p(-np.clip(frame["effect"].clip(lower=0.0), 0.0, 0.999999))
    frame["push"] = frame["effect"].clip(upper=0.0).abs()
    per = frame.groupby("account").agg(keep=("keep", "sum"), push=("push", "max"))
    combined = 1.0 - np.exp(per["keep"].to_numpy())
    revenue = monthly.reindex(per.index).fillna(0.0).to_numpy() * 12.0
    leaves = churner.reindex(per.index).fillna(False).to_numpy(dtype=bool)
    kept = float((revenue * combined)[leaves].sum() - (revenue * per["push"].to_numpy())[~leaves]
                 .sum())
    spent = float(cost[done].sum())
    return KeptOutcome(ordering, int(done.sum()), round(float(hours[done].sum()), 2),
                       round(kept, 2), round(spent, 2), round(kept - spent, 2))


def true_effects_of(planned: pd.DataFrame, truth: Beliefs,
                    causes: pd.Series | None) -> pd.DataFrame:
    """Per planned task (in its order), its true relative effect and cost under ``truth`` (a
    true effects file), with each account's latent ``cause`` where the ground truth has it.
    Nothing is withheld: the truth's sleeping dogs are played, not hidden."""
    frame = planned.drop(columns=["cause"], errors="ignore")
    if causes is not None:
        frame = frame.assign(cause=frame["account_id"].astype(str).map(causes).fillna(""))
    appraised = appraise(frame, truth, withhold=False).kept
    monthly = pd.to_numeric(frame["monthly_revenue"], errors="coerce").fillna(0.0).to_numpy() \
        if "monthly_revenue" in frame else np.zeros(len(frame))
    cost = np.zeros(len(frame))
    action = frame["action"].astype(str).to_numpy()
    for name, belief in truth.actions.items():
        rows = action == name
        cost[rows] = belief.cost_cny + belief.cost_share * 12.0 * monthly[rows]
    return pd.DataFrame({"true_effect": appraised["expected_effect"].to_numpy(dtype=float),
                         "true_cost": cost})


# -- the learning mode (issue 24.4) ----------------------------------------------------------
# Several quarters of the same department: each quarter the randomised holdout (rules/holdout.py,
# drawn again for the quarter's period) keeps its control group from the plan, the fates of the
# quarter's decisions are drawn under the TRUE effects, and what the holdout measured so far moves
# kamflow's priors (Beliefs.measured, weighed by the evidence) for the next quarter. "learning"
# ranks by the learnt beliefs, "prior" by the priors throughout; "previous" and "oracle" as above.
LEARNING_ORDERINGS = ("learning", "prior", "previous", "oracle")
DAYS_PER_QUARTER = 91


@dataclass(frozen=True)
class LearningQuarter:
    quarter: int
    held_out: int                                  # decisions in the control group
    measured: dict[str, int]                       # action -> decisions behind its learnt effect
    learnt_effect: dict[str, float]                # action -> relative effect ranked by next
    retained_net_cny_yearly: dict[str, float]      # per ordering


@dataclass(frozen=True)
class LearningReport:
    prior_scale: float
    days: int
    accounts: int
    quarters: list[LearningQuarter] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"learning": {"prior_scale": self.prior_scale, "days": self.days,
                             "accounts": self.accounts,
                             "quarters": [asdict(q) for q in self.quarters]}}

    def text(self) -> str:
        lines = [f"Learning mode: {len(self.quarters)} quarters of {self.days} days, "
                 f"{self.accounts:,} accounts, kamflow's priors x {self.prior_scale:g}; net "
                 "revenue kept, million CNY a year:", "",
                 f"{'quarter':>7} {'held out':>9} " + " ".join(f"{o:>10}"
                                                            for o in LEARNING_ORDERINGS)
                 + "  actions measured (decisions)"]
        for q in self.quarters:
            kept = " ".join(f"{q.retained_net_cny_yearly[o] / 1e6:>10,.1f}"
                            for o in LEARNING_ORDERINGS)
            measured = ", ".join(f"{a} {n:,}" for a, n in sorted(q.measured.items())) or "none"
            lines.append(f"{q.quarter:>7} {q.held_out:>9,} {kept}  {measured}")
        return "\n".join(lines)


def scaled_beliefs(beliefs: Beliefs, factor: float) -> Beliefs:
    """``beliefs`` with every effect (and its range, every segment's) times ``factor``: priors
    deliberately wrong, for the learning mode."""
    from dataclasses import replace

    from kamflow.worklist.worth import Effect

    def times(e: Effect) -> Effect:
        return Effect(e.relative * factor, None if e.low is None else e.low * factor,
                      None if e.high is None else e.high * factor)

    return replace(beliefs, actions={
        name: replace(a, effect=times(a.effect),
                      by_rule={k: times(v) for k, v in a.by_rule.items()},
                      by_value_class={k: times(v) for k, v in a.by_value_class.items()},
                      by_churn_band={k: times(v) for k, v in a.by_churn_band.items()})
        for name, a in beliefs.actions.items()})


def simulate_learning(planned: pd.DataFrame, accounts: pd.DataFrame, capacity_of: CapacityOf,
                      truth: pd.DataFrame, beliefs: Beliefs, policy: Any, as_of: dt.date,
                      quarters: int = 4, days: int = 60, seed: int = 0,
                      prior_scale: float = 1.0) -> LearningReport:
    """Play ``quarters`` quarters of ``days`` days on the same candidates (a stationary
    department): see LEARNING_ORDERINGS. ``truth`` is ``true_effects_of(planned, ...)``;
    ``policy`` the rule set's HoldoutPolicy. The measurement is intent to treat, as the effects
    report's: churn of the decisions given the task (done or not) against the held-out ones', so
    it learns the effect of raising the task, diluted by the tasks not done in time."""
    from kamflow.rules.holdout import hold_out
    from kamflow.worklist.worth import withheld_mask

    if quarters < 1:
        raise ValueError("quarters must be >= 1")
    rng = np.random.default_rng(seed)
    candidates, ids, task_leave, monthly, churner = _department(planned, accounts)
    account_of = pd.Index(monthly.index).get_indexer(ids)
    if (account_of < 0).any():
        raise KamflowError("a planned task's account is not among the snapshot's accounts")
    effect = truth["true_effect"].to_numpy(dtype=float)
    cost = truth["true_cost"].to_numpy(dtype=float)
    prior = scaled_beliefs(beliefs, prior_scale)
    learnt = prior
    value_class = candidates["value_class"].astype(str).to_numpy() \
        if "value_class" in candidates else np.full(len(candidates), "")
    action = candidates["action"].astype(str).to_numpy()
    counts: dict[tuple[str, str], np.ndarray] = {}  # (action, segment) -> t, t_left, h, h_left
    report = LearningReport(prior_scale, days, len(accounts))
    for quarter in range(quarters):
        when = as_of + dt.timedelta(days=DAYS_PER_QUARTER * quarter)
        held = hold_out(candidates.drop(columns=["held_out", "experiment_period"],
                                        errors="ignore"), when, policy)["held_out"].to_numpy()
        kept: dict[str, float] = {}
        learning_rows = None
        for name, now in (("learning", learnt), ("prior", prior)):
            frame = appraise(candidates, now, withhold=False).kept
            withheld = withheld_mask(frame["expected_effect"].to_numpy(dtype=float),
                                     frame["expected_retained_cny_yearly"].to_numpy(dtype=float),
                                     frame["must_do"].to_numpy(dtype=bool), now)
            control = held & ~withheld  # outside the experiment when withheld
            done_day = _play(frame, ~withheld & ~control, task_leave, capacity_of, days,
                             "net_per_hour", seed + quarter)
            hours = frame["effort_hours"].to_numpy(dtype=float)
            kept[name] = _kept(name, ids.to_numpy(), done_day, task_leave, effect, cost, hours,
                               monthly, churner).retained_net_cny_yearly
            if name == "learning":
                learning_rows = (withheld, control, done_day)
        hours = pd.to_numeric(candidates["effort_hours"], errors="coerce").fillna(0.0) \
            .to_numpy(dtype=float)
        for name in ("previous", "oracle"):
            frame, order = _ranked_as(name, candidates, effect, cost, hours)
            playable = _playable(name, frame, np.zeros(len(frame), dtype=bool), effect,
                                 cost) & ~held
            done_day = _play(frame, playable, task_leave, capacity_of, days, order,
                             seed + quarter)
            kept[name] = _kept(name, ids.to_numpy(), done_day, task_leave, effect, cost, hours,
                               monthly, churner).retained_net_cny_yearly
        assert learning_rows is not None
        withheld, control, done_day = learning_rows
        left = _fates(done_day, task_leave, effect, account_of, churner.to_numpy(), rng)
        treated = ~withheld & ~control
        for labels in (np.full(len(candidates), "all"),
                       np.char.add("class:", value_class.astype(str))):
            frame = pd.DataFrame({"action": action, "segment": labels, "t": treated,
                                  "tl": treated & left, "h": control, "hl": control & left})
            for (a, s), row in frame.groupby(["action", "segment"])[["t", "tl", "h", "hl"]] \
                    .sum().iterrows():
                counts[(a, s)] = counts.get((a, s), np.zeros(4)) + row.to_numpy(dtype=float)
        rows = [{"action": a, "segment": s, "treated": int(c[0]), "held_out": int(c[2]),
                 "churn_held_out": c[3] / c[2] if c[2] else None,
                 "effect_pp": 100 * (c[3] / c[2] - c[1] / c[0]) if c[0] and c[2] else 0.0}
                for (a, s), c in counts.items() if c[0] and c[2] and c[3]]
        learnt = prior.measured(rows)  # always from the prior, with all the evidence so far
        report.quarters.append(LearningQuarter(
            quarter + 1, int(control.sum()),
            {a: b.measured_n["all"] for a, b in learnt.actions.items() if "all" in b.measured_n},
            {a: round(b.effect.relative, 4) for a, b in learnt.actions.items()},
            {k: round(v, 2) for k, v in kept.items()}))
    return report


def _play(frame: pd.DataFrame, playable: np.ndarray, task_leave: np.ndarray,
          capacity_of: CapacityOf, days: int, order: str, seed: int) -> np.ndarray:
    done_day = np.full(len(frame), -1, dtype=np.int64)
    done_day[playable] = play_hours(frame.loc[playable].reset_index(drop=True),
                                    task_leave[playable], capacity_of, days, order, seed)
    return done_day


def _fates(done_day: np.ndarray, task_leave: np.ndarray, effect: np.ndarray,
           account_of: np.ndarray, churner: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per decision, whether its account left this quarter, drawn under the true effects: a
    churner leaves unless the tasks done before it left keep it (1 - prod(1 - e)); an account
    that would stay leaves with the largest push of a task done to it (a negative effect)."""
    done = (done_day >= 0) & (done_day < task_leave)
    n = len(churner)
    keep_log = np.zeros(n)
    np.add.at(keep_log, account_of[done], np.log1p(-np.clip(effect[done], 0.0, 0.999999)))
    push = np.zeros(n)
    np.maximum.at(push, account_of[done], np.clip(-effect[done], 0.0, 1.0))
    draw = rng.random(n)
    left = np.where(churner, draw >= 1.0 - np.exp(keep_log), draw < push)
    return left[account_of]
