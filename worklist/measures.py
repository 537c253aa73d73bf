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
from kamflow.worklist.models import OPEN_STATUSES

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
        attribute = dict(zip(roster["account_id"], keys, strict=True))
        task_keys = (tasks["owner_email"] if dimension == "manager"
                     else tasks["account_id"].map(attribute)).fillna(UNKNOWN)
        names = _manager_names(roster, tasks) if dimension == "manager" else {}
        rows = []
        for key in sorted(set(keys) | set(task_keys), key=str):
            row = {dimension: key}
            if dimension == "manager":
                row["manager name"] = names.get(key, "")
            row.update(_measures(roster.loc[(keys == key).to_numpy()],
                                 tasks.loc[(task_keys == key).to_numpy()], since_ts, at,
                                 ceilings))
            rows.append(row)
        breakdowns[dimension] = rows
    return DepartmentReport(at.to_pydatetime(), since_ts.to_pydatetime(), ceilings, periods,
                            breakdowns)


def _measures(roster: pd.DataFrame, tasks: pd.DataFrame, start: pd.Timestamp,
              end: pd.Timestamp, ceilings: Ceilings) -> dict[str, Any]:
    """Every measure of one group of accounts (and its tasks) over ``start``..``end``."""
    lost_at = roster["lost_at"]
    active = lost_at.isna()
    at_start = (roster["first_seen"] <= start) & (active | (lost_at > start))
    lost = ~active & (lost_at > start) & (lost_at <= end)
    revenue = roster["monthly_revenue"].fillna(0.0)
    base, gone = int(at_start.sum()), int(lost.sum())
    base_revenue, gone_revenue = float(revenue[at_start].sum()), float(revenue[lost].sum())
    share_of_year = (end - start) / YEAR
    raised = tasks.loc[((tasks["created_at"] > start) & (tasks["created_at"] <= end))
                       .to_numpy()] if len(tasks) else tasks
    done = raised["status"].eq("done") & raised["closed_at"].notna()
    on_time = int((done & (raised["closed_at"] <= raised["due_at"])).sum())
    overdue = int((raised["status"].isin(OPEN_STATUSES) & (raised["due_at"] < end)).sum())
    account_rate = gone / base if base else 0.0
    revenue_rate = gone_revenue / base_revenue if base_revenue else 0.0
    account_ceiling = ceilings.accounts_per_year * share_of_year
    revenue_ceiling = ceilings.revenue_per_year * share_of_year
    return {
        "from": start.isoformat(), "to": end.isoformat(),
        "accounts": int(active.sum()), "monthly revenue": round(float(revenue[active].sum()), 2),
        "accounts at start": base, "accounts lost": gone,
        "churn rate": account_rate, "churn ceiling": account_ceiling,
        "over ceiling": account_rate > account_ceiling,
        "revenue at start": round(base_revenue, 2), "revenue lost": round(gone_revenue, 2),
        "revenue churn rate": revenue_rate, "revenue churn ceiling": revenue_ceiling,
        "revenue over ceiling": revenue_rate > revenue_ceiling,
        "tasks raised": len(raised),
        "on time share": on_time / len(raised) if len(raised) else 0.0,
        "overdue share": overdue / len(raised) if len(raised) else 0.0,
    }


def _manager_names(roster: pd.DataFrame, tasks: pd.DataFrame) -> dict[str, str]:
    names = dict(zip(tasks["owner_email"], tasks["owner_name"], strict=True))
    names.update(zip(roster["manager_email"], roster["manager_name"], strict=True))
    return {str(k): str(v) for k, v in names.items()}


def headline(found: DepartmentReport) -> dict[str, float]:
    """The trailing-12-month figures a run keeps for their trend (``run_figures`` columns)."""
    year = next(p for p in found.periods if p["period"] == "trailing 12 months")
    return {"accounts": year["accounts"], "churn_rate_12m": year["churn rate"],
            "churn_ceiling_12m": year["churn ceiling"],
            "revenue_churn_rate_12m": year["revenue churn rate"],
            "revenue_lost_12m": year["revenue lost"]}
