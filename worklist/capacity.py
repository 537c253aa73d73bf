"""Capacity per owner: how many of the day's candidate tasks each owner receives. Pure.

Every run still decides everything; ``allocate`` then releases to each owner at most

    min(new_per_day - released today, open_max - open now)

tasks, best first (``ORDERS``), and the rest wait in the task store as ``queued``. An urgent
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

__all__ = ["ORDERS", "Capacity", "allocate", "ranked", "urgent_tasks"]

# "value_at_risk" (kamflow's): priority, then risk-driven before proactive care, then the
# revenue at risk, largest first. "priority": rule priority alone (ties by account id).
# "random": a seeded shuffle. The simulation compares the three.
ORDERS = ("value_at_risk", "priority", "random")


@dataclass(frozen=True)
class Capacity:
    """An owner's capacity: new tasks released a day and open tasks at most (None: no limit)."""

    new_per_day: int | None = None
    open_max: int | None = None

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


def allocate(candidates: pd.DataFrame, capacity_of: Callable[[str, str], Capacity],
             open_now: Mapping[str, int], released_today: Mapping[str, int],
             order: str = "value_at_risk", seed: int = 0) -> np.ndarray:
    """Which ``candidates`` are released now (a boolean array in their order).

    ``candidates`` has ``owner_email``, ``owner_role``, ``priority``, ``account_id`` and
    optionally ``urgent`` (bool), ``proactive`` and ``value_at_risk``. ``capacity_of(email,
    role)`` gives an owner's capacity; ``open_now`` and ``released_today`` count each owner's
    open tasks and the tasks released to them today (by lower-case address)."""
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
    allowance = {owner: capacity_of(owner, role).allowance(released_today.get(owner, 0),
                                                           open_now.get(owner, 0))
                 for owner, role in first_role.items()}
    best = ranked(candidates, order, seed)
    # within each owner: the urgent ones first (they use the allowance up first), then best
    frame = pd.DataFrame({"owner": owners[best], "routine": ~urgent[best], "rank": np.arange(n)})
    frame = frame.sort_values(["owner", "routine", "rank"], kind="stable")
    place = frame.groupby("owner", sort=False).cumcount().to_numpy()
    limit = frame["owner"].map(allowance).to_numpy(dtype=float)
    released_sorted = ~frame["routine"].to_numpy() | (place < limit)
    released = np.zeros(n, dtype=bool)
    released[best[frame["rank"].to_numpy()]] = released_sorted
    return released
