"""The department's churn measures, from the account roster and the tasks. Pure: no database.

What the head of the key-account department asks (DOMAIN.md, "What management measures"): are
we under the churn ceiling, where are we losing accounts and revenue, and who is doing well.

- account churn rate: accounts lost in a period ÷ accounts on the roster at its start;
- revenue churn: the monthly revenue of the accounts lost (as last seen) ÷ the monthly revenue
  of the accounts at the start;
- each compared with a yearly ceiling taken pro rata for the period's length (1 % a year over a
  30-day month is 0.082 %);
- per region, industry segment, value class or manager: accounts and monthly revenue now, the
  churn over the period, tasks raised, and the shares of them handled on time and overdue (the
  task KPIs of worklist/kpis.py). Tasks count for the account's region, industry and class, and
  for their owner under "manager"; churn counts for the account's last manager.

A period cannot start before the roster does (its first snapshot): before that nobody was
counted, so the start is moved up to it. The roster keeps an account's attributes as last seen,
so an account that moved region counts for the new one throughout.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kamflow.core.errors import ConfigError
from kamflow.worklist.models import OPEN_STATUSES, QUEUED, WITHDRAWN

__all__ = ["DIMENSIONS", "Ceilings", "DepartmentReport", "department_report", "headline"]

YEAR = dt.timedelta(days=365)
# `kamflow report --by` names: the roster column each groups by.
DIMENSIONS = {"region": "region", "industry": "industry", "class": "value_class",
              "manager": "manager_email"}
UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class Ceilings:
    """The most churn the department accepts in a year, as shares (0..1)."""

    accounts_per_year: float = 0.01  # DOMAIN.md: key-account churn at most 1 % a year
    revenue_per_year: float = 0.01

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], source: str = "department config") -> Ceilings:
        """``ceilings: {accounts_per_year, revenue_per_year}`` (each optional, 0..1)."""
        unknown = sorted(set(doc) - {"ceilings"}, key=str)
        if unknown:
            raise ConfigError(f"{source}: key {unknown[0]!r} is unknown; allowed: ceilings")
        spec = doc.get("ceilings") or {}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: key 'ceilings' must be a mapping, not {spec!r}")
        allowed = ("accounts_per_year", "revenue_per_year")
        unknown = sorted(set(spec) - set(allowed), key=str)
        if unknown:
            raise ConfigError(f"{source}: key 'ceilings.{unknown[0]}' is unknown; allowed: "
                              + ", ".join(allowed))
        values = {}
        for key in allowed:
            value = spec.get(key, getattr(cls(), key))
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or not 0 <= value <= 1:
                raise ConfigError(f"{source}: key 'ceilings.{key}' must be a share between 0 "
                                  f"and 1 (0.01 is 1 % a year), not {value!r}")
            values[key] = float(value)
        return cls(**values)


@dataclass(frozen=True)
class DepartmentReport:
    now: dt.datetime
    since: dt.datetime  # the breakdowns' period start (after moving up to the roster's start)
    ceilings: Ceilings
    periods: list[dict[str, Any]]  # each calendar month, the trailing 12 months, the period
    breakdowns: dict[str, list[dict[str, Any]]]  # dimension -> one row per group

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "since": self.since.isoformat(),
                "ceilings": {"accounts_per_year": self.ceilings.accounts_per_year,
                             "revenue_per_year": self.ceilings.revenue_per_year},
                "periods": self.periods, "breakdowns": self.breakdowns}


def department_report(roster: pd.DataFrame, tasks: pd.DataFrame, now: dt.datetime,
                      since: dt.datetime | None = None, by: tuple[str, ...] = tuple(DIMENSIONS),
                      ceilings: Ceilings | None = None) -> DepartmentReport:
    """The measures over ``roster`` (RosterStore.roster_rows) and ``tasks``
    (KpiStore.task_rows) at ``now``: per calendar month of the last year, the trailing 12
    months and the period from ``since`` (default: the trailing 12 months), and that period
    broken down by each dimension in ``by`` (keys of DIMENSIONS)."""
    ceilings = ceilings or Ceilings()
    at = pd.Timestamp(now)
    at = at.tz_convert("UTC") if at.tzinfo else at.tz_localize("UTC")
    roster_start = roster["first_seen"].min() if len(roster) else at
    start = pd.Timestamp(since) if since is not None else at - YEAR
    start = start.tz_convert("UTC") if start.tzinfo else start.tz_localize("UTC")
    since_ts = max(start, roster_start)
    periods = []
    month = pd.Timestamp(year=at.year, month=at.month, day=1, tz="UTC")
    for back in range(11, -1, -1):
        start = month - pd.DateOffset(months=back)
        end = min(start + pd.DateOffset(months=1), at)
        if end <= roster_start:
            continue
        periods.append({"period": f"{start:%Y-%m}", **_measures(
            roster, tasks, max(start, roster_start), end, ceilings)})
    periods.append({"period": "trailing 12 months", **_measures(
        roster, tasks, max(at - YEAR, roster_start), at, ceilings)})
    periods.append({"period": f"since {since_ts:%Y-%m-%d}", **_measures(
        roster, tasks, since_ts, at, ceilings)})
    breakdowns = {}
    for dimension in by:
        column = DIMENSIONS[dimension]
        keys = roster[column].fillna(UNKNOWN) if len(roster) else pd.Series(dtype=object)
        attribute = pd.Series(keys.to_numpy(), index=roster["account_id"].to_numpy())
        task_keys = (tasks["owner_email"] if dimension == "manager"
                     else tasks["account_id"].map(attribute)).fillna(UNKNOWN)
        names = _manager_names(roster, tasks) if dimension == "manager" else {}
        grouped = _grouped_measures(roster, tasks, keys, task_keys, since_ts, at, ceilings)
        rows = []
        for key in sorted(grouped, key=str):
            row: dict[str, Any] = {dimension: key}
            if dimension == "manager":
                row["manager name"] = names.get(key, "")
            rows.append({**row, **grouped[key]})
        breakdowns[dimension] = rows
    return DepartmentReport(at.to_pydatetime(), since_ts.to_pydatetime(), ceilings, periods,
                            breakdowns)


def _measures(roster: pd.DataFrame, tasks: pd.DataFrame, start: pd.Timestamp,
              end: pd.Timestamp, ceilings: Ceilings) -> dict[str, Any]:
    """Every measure of all accounts (and tasks) over ``start``..``end``."""
    one = _grouped_measures(roster, tasks, pd.Series(0, index=roster.index),
                            pd.Series(0, index=tasks.index), start, end, ceilings)
    return one.get(0) or _from_counts({}, start, end, ceilings)


def _grouped_measures(roster: pd.DataFrame, tasks: pd.DataFrame, keys: pd.Series,
                      task_keys: pd.Series, start: pd.Timestamp, end: pd.Timestamp,
                      ceilings: Ceilings) -> dict[Any, dict[str, Any]]:
    """Every measure per group (``keys`` of the roster's rows, ``task_keys`` of the tasks')
    over ``start``..``end``: one pass of sums per group, whatever the number of groups."""
    lost_at = roster["lost_at"]
    active = lost_at.isna()
    at_start = (roster["first_seen"] <= start) & (active | (lost_at > start))
    lost = ~active & (lost_at > start) & (lost_at <= end)
    revenue = roster["monthly_revenue"].astype("float64").fillna(0.0)
    accounts = pd.DataFrame({
        "accounts": active.astype(int), "monthly revenue": revenue.where(active, 0.0),
        "accounts at start": at_start.astype(int), "accounts lost": lost.astype(int),
        "revenue at start": revenue.where(at_start, 0.0),
        "revenue lost": revenue.where(lost, 0.0)}).groupby(keys.to_numpy()).sum()
    # a queued task is not the owner's work yet, a withdrawn one never was (capacity)
    raised = ((tasks["created_at"] > start) & (tasks["created_at"] <= end)
              & ~tasks["status"].isin((QUEUED, WITHDRAWN)))
    done = tasks["status"].eq("done") & tasks["closed_at"].notna()
    task_sums = pd.DataFrame({
        "tasks raised": raised.astype(int),
        "on time": (raised & done & (tasks["closed_at"] <= tasks["due_at"])).astype(int),
        "overdue": (raised & tasks["status"].isin(OPEN_STATUSES)
                    & (tasks["due_at"] < end)).astype(int)}).groupby(task_keys.to_numpy()).sum()
    counts = accounts.join(task_sums, how="outer").fillna(0)
    return {key: _from_counts(row, start, end, ceilings)
            for key, row in zip(counts.index, counts.to_dict("records"), strict=True)}


def _from_counts(counts: Mapping[str, float], start: pd.Timestamp, end: pd.Timestamp,
                 ceilings: Ceilings) -> dict[str, Any]:
    """The measures of one group from its sums (absent sums are 0)."""
    def n(name: str) -> int:
        return int(counts.get(name, 0))

    base, gone, raised = n("accounts at start"), n("accounts lost"), n("tasks raised")
    base_revenue = float(counts.get("revenue at start", 0.0))
    gone_revenue = float(counts.get("revenue lost", 0.0))
    share_of_year = (end - start) / YEAR
    account_rate = gone / base if base else 0.0
    revenue_rate = gone_revenue / base_revenue if base_revenue else 0.0
    account_ceiling = ceilings.accounts_per_year * share_of_year
    revenue_ceiling = ceilings.revenue_per_year * share_of_year
    return {
        "from": start.isoformat(), "to": end.isoformat(),
        "accounts": n("accounts"),
        "monthly revenue": round(float(counts.get("monthly revenue", 0.0)), 2),
        "accounts at start": base, "accounts lost": gone,
        "churn rate": account_rate, "churn ceiling": account_ceiling,
        "over ceiling": account_rate > account_ceiling,
        "revenue at start": round(base_revenue, 2), "revenue lost": round(gone_revenue, 2),
        "revenue churn rate": revenue_rate, "revenue churn ceiling": revenue_ceiling,
        "revenue over ceiling": revenue_rate > revenue_ceiling,
        "tasks raised": raised,
        "on time share": n("on time") / raised if raised else 0.0,
        "overdue share": n("overdue") / raised if raised else 0.0,
    }


def _manager_names(roster: pd.DataFrame, tasks: pd.DataFrame) -> dict[str, str]:
    names = dict(tasks.drop_duplicates("owner_email")[["owner_email", "owner_name"]]
                 .itertuples(index=False))
    names.update(roster.drop_duplicates("manager_email")[["manager_email", "manager_name"]]
                 .itertuples(index=False))
    return {str(k): str(v) for k, v in names.items()}


def headline(found: DepartmentReport) -> dict[str, float]:
    """The trailing-12-month figures a run keeps for their trend (``run_figures`` columns)."""
    year = next(p for p in found.periods if p["period"] == "trailing 12 months")
    return {"accounts": year["accounts"], "churn_rate_12m": year["churn rate"],
            "churn_ceiling_12m": year["churn ceiling"],
            "revenue_churn_rate_12m": year["revenue churn rate"],
            "revenue_lost_12m": year["revenue lost"]}
