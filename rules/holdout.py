"""The randomised holdout: a configured share of each action's decisions gets no task, so the
accounts given the task can be compared with like accounts given nothing (the control group).

Which decisions are held out is a hash of account, action and experiment period, not a random
draw: a rerun, a crashed run's rerun and another worker all hold out the same accounts, and an
account keeps its group for the whole period (it is held out again on every day its rule fires).
Pure: no I/O.

Never held out (the rule language refuses a share on them): escalations to the department,
complaint follow-ups, SLA reviews and urgent actions (a contractual or service promise, not a
retention bet), and accounts billing more a month than ``max_monthly_revenue``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Actions whose task is a promise to the customer or the department, never an experiment.
NEVER_HELD_OUT = ("escalate_to_key_account", "complaint_follow_up", "sla_review")
DEPARTMENT = "key_account_department"  # an action owned by it is an escalation
PERIODS = ("month", "quarter", "half", "year")
MAX_SHARE = 0.5  # more is not a control group but a withdrawal of the service
# the decisions' columns the holdout adds
COLUMNS = ("held_out", "experiment_period")


@dataclass(frozen=True)
class HoldoutPolicy:
    """Each action's held-out share (0..MAX_SHARE), the experiment period and the revenue
    above which an account is never held out (CNY a month; None: no cap)."""

    shares: Mapping[str, float] = field(default_factory=dict)  # a dict: pickled to workers
    period: str = "quarter"
    max_monthly_revenue: float | None = None

    def share(self, action: str) -> float:
        return float(self.shares.get(action, 0.0))

    @property
    def active(self) -> bool:
        return any(share > 0 for share in self.shares.values())


def may_hold_out(action: str, owner: str, email: str) -> bool:
    """Whether an action may have a control group at all (the rule language refuses a share
    otherwise): not a promise (NEVER_HELD_OUT), not the department's, not urgent."""
    return action not in NEVER_HELD_OUT and owner != DEPARTMENT and email != "own"


def experiment_period(as_of: dt.date, period: str = "quarter") -> str:
    """The experiment period a business date falls in: ``2026-11``, ``2026Q4``, ``2026H2`` or
    ``2026``. A group holds for the period; the next one draws again."""
    if period == "month":
        return f"{as_of:%Y-%m}"
    if period == "quarter":
        return f"{as_of.year}Q{(as_of.month - 1) // 3 + 1}"
    if period == "half":
        return f"{as_of.year}H{(as_of.month - 1) // 6 + 1}"
    if period == "year":
        return str(as_of.year)
    raise ValueError(f"unknown experiment period {period!r}; known: {', '.join(PERIODS)}")


def assignment_draw(account_ids: pd.Series, actions: pd.Series, period: str) -> np.ndarray:
    """A uniform number in [0, 1) per (account, action, period), the same on every machine and
    every run (BLAKE2b of the three, not Python's salted hash)."""
    keys = (account_ids.astype(str) + "|" + actions.astype(str) + "|" + period).to_numpy()
    digest = hashlib.blake2b
    draws = np.fromiter((int.from_bytes(digest(k.encode(), digest_size=8).digest(), "big")
                         for k in keys), dtype=np.uint64, count=len(keys))
    return draws / float(2 ** 64)


def hold_out(decisions: pd.DataFrame, as_of: dt.date, policy: HoldoutPolicy) -> pd.DataFrame:
    """``decisions`` with ``held_out`` (bool) and ``experiment_period`` (the period's label on
    every decision of an action under experiment, empty for the others)."""
    period = experiment_period(as_of, policy.period)
    actions = decisions["action"].astype(str)
    share = actions.map(lambda a: policy.share(a)).to_numpy(dtype=float) \
        if len(decisions) else np.zeros(0)
    eligible = share > 0
    if "email" in decisions:  # urgent (email: own) work is never held back, whatever the file
        eligible &= decisions["email"].astype(str).to_numpy() != "own"
    eligible &= ~actions.isin(NEVER_HELD_OUT).to_numpy()
    if "owner_role" in decisions:
        eligible &= decisions["owner_role"].astype(str).to_numpy() != DEPARTMENT
    experiment = eligible.copy()
    if policy.max_monthly_revenue is not None and "monthly_revenue" in decisions:
        revenue = decisions["monthly_revenue"].to_numpy(dtype=float)
        # above the cap (or unknown revenue): always treated, and outside the experiment
        experiment &= np.nan_to_num(revenue, nan=np.inf) <= policy.max_monthly_revenue
    held = np.zeros(len(decisions), dtype=bool)
    rows = np.flatnonzero(experiment)
    if len(rows):
        draw = assignment_draw(decisions["account_id"].iloc[rows],
                               actions.iloc[rows], period)
        held[rows] = draw < share[rows]
    return decisions.assign(held_out=held,
                            experiment_period=np.where(experiment, period, ""))
