"""Capacity per owner: how many of the day's candidate tasks each owner receives. Pure.

Every run still decides everything; ``allocate`` then releases to each owner at most

    min(new_per_day - released today, open_max - open now)

tasks, best first (``ORDERS``), and no more hours of work (each task's ``effort_hours``,
worklist/worth.py) than ``hours_per_day`` less the hours released to them today; the rest wait
in the task store as ``queued``. An urgent
task (an escalation to the key-account department, an action with ``email: own`` or
``urgent: true`` in rules/actions.yaml) is always released, whatever either limit says (an
urgent task in a queue is no longer urgent), and still counts against both: the owner gets that
many fewer routine tasks. Cost: one sort of the candidates, O(n log n).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_ORDER", "ORDERS", "Capacity", "allocate", "ranked", "urgent_tasks"]

# "net_per_hour" (kamflow's): must-do work first (escalations, complaint follow-ups, SLA
# reviews, urgent actions: ``must_do``) by priority, then everything else by expected net
# revenue kept per manager-hour (worklist/worth.py), best first; without those columns it is
# "value_at_risk". "value_at_risk" (the previous order): priority, then risk-driven before
# proactive care, then the revenue at risk, largest first. "priority": rule priority alone
# (ties by account id). "random": a seeded shuffle. The simulation compares them.
ORDERS = ("net_per_hour", "value_at_risk", "priority", "random")
DEFAULT_ORDER = "net_per_hour"


@dataclass(frozen=True)
class Capacity:
    """An owner's capacity: new tasks released a day, open tasks at most, and hours of task
    work released a day (None: no limit)."""

    new_per_day: int | None = None
    open_max: int | None = None
    hours_per_day: float | None = None

    def hours_left(self, hours_today: float) -> float:
        """Hours of work this owner may still be released today (inf when unlimited)."""
        if self.hours_per_day is None:
            return float("inf")
        return max(0.0, float(self.hours_per_day) - float(hours_today))

    def allowance(self, released_today: int, open_now: int) -> float:
        """How many more tasks this owner may receive now (inf when unlimited, never < 0)."""
        limits = [np.inf]
        if self.new_per_day is not None:
            limits.append(self.new_per_day - released_today)
        if self.open_max is not None:
            limits.append(self.open_max - open_now)
        return max(0.0, float(min(limits)))


UNLIMITED = Capacity()


def urgent_tasks(planned: pd.DataFrame) -> np.ndarray:
    """The planned tasks capacity never holds back: escalations to the key-account department
    and actions whose email goes out on its own (``email: own``, which ``urgent: true`` sets)."""
    own = (planned["email"].astype(str) == "own").to_numpy() if "email" in planned \
        else np.zeros(len(planned), dtype=bool)
    return own | (planned["owner_role"].astype(str) == "key_account_department").to_numpy()


def ranked(candidates: pd.DataFrame, order: str = "value_at_risk", seed: int = 0) -> np.ndarray:
    """Positions of ``candidates`` best first by ``order`` (see ``ORDERS``); ``priority``
    ascending is more urgent, ``proactive`` and ``value_at_risk`` may be missing (False, 0)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    n = len(candidates)
    if order == "random":
        return np.random.default_rng(seed).permutation(n)
    if order == "net_per_hour":
        if "net_per_hour" not in candidates:
            order = "value_at_risk"  # decisions not appraised (worklist/worth.py)
        else:
            return _by_net_per_hour(candidates)
    keys = pd.DataFrame({
        "priority": candidates["priority"].astype("int64").to_numpy(),
        "account_id": candidates["account_id"].astype(str).to_numpy(),
        "position": np.arange(n)})
    columns = ["priority"]
    if order == "value_at_risk":
        proactive = candidates["proactive"] if "proactive" in candidates else None
        keys["proactive"] = (proactive.fillna(False).astype(bool).to_numpy()
                             if proactive is not None else False)
        risk = candidates["value_at_risk"] if "value_at_risk" in candidates else None
        keys["risk"] = (-pd.to_numeric(risk, errors="coerce").fillna(0.0).to_numpy()
                        if risk is not None else 0.0)
        columns += ["proactive", "risk"]
    columns += ["account_id", "position"]
    return keys.sort_values(columns, kind="stable")["position"].to_numpy()


def _by_net_per_hour(candidates: pd.DataFrame) -> np.ndarray:
    """Must-do first (by priority, then value at risk), then expected net revenue kept per
    hour, largest first; ties by account id."""
    n = len(candidates)
    must = (candidates["must_do"].fillna(False).astype(bool).to_numpy()
            if "must_do" in candidates else np.zeros(n, dtype=bool))
    risk = (pd.to_numeric(candidates["value_at_risk"], errors="coerce").fillna(0.0).to_numpy()
            if "value_at_risk" in candidates else np.zeros(n))
    worth = pd.to_numeric(candidates["net_per_hour"], errors="coerce").fillna(0.0).to_numpy()
    keys = pd.DataFrame({
        "routine": ~must,
        "priority": np.where(must, candidates["priority"].astype("int64").to_numpy(), 0),
        "first": np.where(must, -risk, -worth),
        "account_id": candidates["account_id"].astype(str).to_numpy(),
        "position": np.arange(n)})
    return keys.sort_values(["routine", "priority", "first", "account_id", "position"],
                            kind="stable")["position"].to_numpy()


def allocate(candidates: pd.DataFrame, capacity_of: Callable[[str, str], Capacity],
             open_now: Mapping[str, int], released_today: Mapping[str, int],
             order: str = DEFAULT_ORDER, seed: int = 0,
             hours_today: Mapping[str, float] | None = None) -> np.ndarray:
    """Which ``candidates`` are released now (a boolean array in their order).

    ``candidates`` has ``owner_email``, ``owner_role``, ``priority``, ``account_id`` and
    optionally ``urgent`` (bool), ``proactive`` and ``value_at_risk``. ``capacity_of(email,
    role)`` gives an owner's capacity; ``open_now`` and ``released_today`` count each owner's
    open tasks and the tasks released to them today (by lower-case address); ``hours_today``
    the hours of work (``effort_hours``) released to them today. A routine task is released
    only while the owner's hours, urgent work of this run included, still fit it."""
    n = len(candidates)
    if n == 0:
        return np.zeros(0, dtype=bool)
    owners = candidates["owner_email"].astype(str).str.lower().to_numpy()
    urgent = (candidates["urgent"].fillna(False).astype(bool).to_numpy()
              if "urgent" in candidates else np.zeros(n, dtype=bool))
    roles = candidates["owner_role"].astype(str).to_numpy()
    first_role: dict[str, str] = {}
    for owner, role in zip(owners, roles, strict=True):
        first_role.setdefault(owner, role)
    capacities = {owner: capacity_of(owner, role) for owner, role in first_role.items()}
    allowance = {owner: c.allowance(released_today.get(owner, 0), open_now.get(owner, 0))
                 for owner, c in capacities.items()}
    hours = {owner: c.hours_left((hours_today or {}).get(owner, 0.0))
             for owner, c in capacities.items()}
    effort = (pd.to_numeric(candidates["effort_hours"], errors="coerce").fillna(0.0)
              .to_numpy(dtype=float) if "effort_hours" in candidates else np.zeros(n))
    best = ranked(candidates, order, seed)
    # within each owner: the urgent ones first (they use the allowance up first), then best
    frame = pd.DataFrame({"owner": owners[best], "routine": ~urgent[best], "rank": np.arange(n),
                          "effort": effort[best]})
    frame = frame.sort_values(["owner", "routine", "rank"], kind="stable")
    place = frame.groupby("owner", sort=False).cumcount().to_numpy()
    limit = frame["owner"].map(allowance).to_numpy(dtype=float)
    released_sorted = ~frame["routine"].to_numpy() | (place < limit)
    _fit_hours(frame, released_sorted, allowance, hours)
    released = np.zeros(n, dtype=bool)
    released[best[frame["rank"].to_numpy()]] = released_sorted
    return released


def _fit_hours(frame: pd.DataFrame, released: np.ndarray, allowance: Mapping[str, float],
               hours: Mapping[str, float]) -> None:
    """Within the owners who have an hour budget, release routine tasks best first while their
    hours still fit (urgent work of this run counted first): a 3-hour visit that no longer
    fits is passed over for a half-hour call that does. ``released`` is changed in place."""
    limited = {owner for owner, left in hours.items() if np.isfinite(left)}
    if not limited:
        return
    owners = frame["owner"].to_numpy()
    routine = frame["routine"].to_numpy()
    effort = frame["effort"].to_numpy(dtype=float)
    rows = np.flatnonzero(np.isin(owners, list(limited)))
    starts = np.flatnonzero(np.r_[True, owners[rows][1:] != owners[rows][:-1]])
    for group in np.split(rows, starts[1:]):
        owner = owners[group[0]]
        booked = float(effort[group][~routine[group]].sum())
        count = int((~routine[group]).sum())
        budget, most = hours[owner] + 1e-9, allowance[owner]
        for i in group[routine[group]]:
            fits = count < most and booked + effort[i] <= budget
            released[i] = fits
            if fits:
                booked += effort[i]
                count += 1
