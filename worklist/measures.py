"""The department's churn measures, from the account roster and the tasks. Pure: no database.

What the head of the key-account department asks (DOMAIN.md, "What management measures"): are
we under the churn ceiling, where are we losing accounts and revenue, and who is doing well.

- account churn rate: accounts lost in a period ÷ accounts on the roster at its start;
- revenue churn: the monthly revenue of the accounts lost (as last seen) ÷ the monthly revenue
  of the accounts at the start;
- each compared with a yearly ceiling taken pro rata for the period's length (1 % a year over a
  30-day month is 0.082 %);
- partial churn (业务流失): accounts retained over the period whose monthly revenue at its end is
  below ``1 - partial_churn.revenue_fall`` of their revenue at its start (the revenue history,
  table ``account_revenue``), and the revenue they lost; revenue retained: the monthly revenue at
  the end of the accounts there at the start ÷ theirs at the start (lost accounts count 0);
- value at risk: the roster's ``value_at_risk`` (CNY/month, as last scored) of the accounts now;
- per region, industry segment, value class or manager: accounts and monthly revenue now, the
  churn over the period, tasks raised, the shares of them handled on time and overdue (the
  task KPIs of worklist/kpis.py) and the median hours from a task's creation to its first
  acknowledgement (the task history). Tasks count for the account's region, industry and
  class, and for their owner under "manager"; churn counts for the account's last manager.

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
from kamflow.worklist.models import NOT_WORK, OPEN_STATUSES

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
    # partial churn (业务流失): a retained account whose monthly revenue fell by more than this
    # share of its revenue at the period's start
    partial_revenue_fall: float = 0.5

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], source: str = "department config") -> Ceilings:
        """``ceilings: {accounts_per_year, revenue_per_year}`` and ``partial_churn:
        {revenue_fall}`` (each optional, 0..1)."""
        unknown = sorted(set(doc) - {"ceilings", "partial_churn"}, key=str)
        if unknown:
            raise ConfigError(f"{source}: key {unknown[0]!r} is unknown; allowed: ceilings, "
                              "partial_churn")
        values = {}
        for section, allowed, what in (
                ("ceilings", {"accounts_per_year": "accounts_per_year",
                              "revenue_per_year": "revenue_per_year"}, "(0.01 is 1 % a year)"),
                ("partial_churn", {"revenue_fall": "partial_revenue_fall"},
                 "(0.5: revenue fell by more than half)")):
            spec = doc.get(section) or {}
            if not isinstance(spec, Mapping):
                raise ConfigError(f"{source}: key {section!r} must be a mapping, not {spec!r}")
            unknown = sorted(set(spec) - set(allowed), key=str)
            if unknown:
                raise ConfigError(f"{source}: key '{section}.{unknown[0]}' is unknown; "
                                  "allowed: " + ", ".join(allowed))
            for key, field in allowed.items():
                value = spec.get(key, getattr(cls(), field))
                if isinstance(value, bool) or not isinstance(value, int | float) \
                        or not math.isfinite(value) or not 0 <= value <= 1:
                    raise ConfigError(f"{source}: key '{section}.{key}' must be a share between "
                                      f"0 and 1 {what}, not {value!r}")
                values[field] = float(value)
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
                "partial_churn": {"revenue_fall": self.ceilings.partial_revenue_fall},
                "periods": self.periods, "breakdowns": self.breakdowns}


def department_report(roster: pd.DataFrame, tasks: pd.DataFrame, now: dt.datetime,
                      since: dt.datetime | None = None, by: tuple[str, ...] = tuple(DIMENSIONS),
                      ceilings: Ceilings | None = None,
                      revenue: pd.DataFrame | None = None) -> DepartmentReport:
    """The measures over ``roster`` (RosterStore.roster_rows) and ``tasks``
    (KpiStore.task_rows) at ``now``: per calendar month of the last year, the trailing 12
    months and the period from ``since`` (default: the trailing 12 months), and that period
    broken down by each dimension in ``by`` (keys of DIMENSIONS). ``revenue`` is the revenue
    history (RosterStore.revenue_rows) that partial churn compares with; without it each
    account's revenue is taken as last seen throughout (so no partial churn shows)."""
    ceilings = ceilings or Ceilings()
    history = _RevenueHistory(roster, revenue)
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
            roster, tasks, max(start, roster_start), end, ceilings, history)})
    periods.append({"period": "trailing 12 months", **_measures(
        roster, tasks, max(at - YEAR, roster_start), at, ceilings, history)})
    periods.append({"period": f"since {since_ts:%Y-%m-%d}", **_measures(
        roster, tasks, since_ts, at, ceilings, history)})
    breakdowns = {}
    for dimension in by:
        column = DIMENSIONS[dimension]
        keys = roster[column].fillna(UNKNOWN) if len(roster) else pd.Series(dtype=object)
        attribute = pd.Series(keys.to_numpy(), index=roster["account_id"].to_numpy())
        task_keys = (tasks["owner_email"] if dimension == "manager"
                     else tasks["account_id"].map(attribute)).fillna(UNKNOWN)
        names = _manager_names(roster, tasks) if dimension == "manager" else {}
        grouped = _grouped_measures(roster, tasks, keys, task_keys, since_ts, at, ceilings,
                                    history)
        rows = []
        for key in sorted(grouped, key=str):
            row: dict[str, Any] = {dimension: key}
            if dimension == "manager":
                row["manager name"] = names.get(key, "")
            rows.append({**row, **grouped[key]})
        breakdowns[dimension] = rows
    return DepartmentReport(at.to_pydatetime(), since_ts.to_pydatetime(), ceilings, periods,
                            breakdowns)


class _RevenueHistory:
    """Each account's monthly revenue as it stood at a time (the revenue history), or as last
    seen on the roster when there is no history."""

    def __init__(self, roster: pd.DataFrame, revenue: pd.DataFrame | None) -> None:
        self.roster = roster
        self.rows = None if revenue is None or revenue.empty else \
            revenue.sort_values("at", kind="stable")
        self.cache: dict[pd.Timestamp, pd.Series] = {}

    def at(self, when: pd.Timestamp) -> pd.Series:
        """Per roster row (aligned with the roster's index): the revenue at ``when``."""
        if when not in self.cache:
            last_seen = self.roster["monthly_revenue"].astype("float64")
            if self.rows is None:
                self.cache[when] = last_seen
            else:
                upto_n = int(self.rows["at"].searchsorted(when, side="right"))  # sorted by at
                upto = self.rows.iloc[:upto_n].drop_duplicates(
                    "account_id", keep="last").set_index("account_id")["monthly_revenue"]
                found = self.roster["account_id"].map(upto).astype("float64")
                self.cache[when] = found.where(found.notna(), last_seen)
        return self.cache[when]


def _measures(roster: pd.DataFrame, tasks: pd.DataFrame, start: pd.Timestamp,
              end: pd.Timestamp, ceilings: Ceilings,
              history: _RevenueHistory | None = None) -> dict[str, Any]:
    """Every measure of all accounts (and tasks) over ``start``..``end``."""
    one = _grouped_measures(roster, tasks, pd.Series(0, index=roster.index),
                            pd.Series(0, index=tasks.index), start, end, ceilings, history)
    return one.get(0) or _from_counts({}, start, end, ceilings)


def _grouped_measures(roster: pd.DataFrame, tasks: pd.DataFrame, keys: pd.Series,
                      task_keys: pd.Series, start: pd.Timestamp, end: pd.Timestamp,
                      ceilings: Ceilings,
                      history: _RevenueHistory | None = None) -> dict[Any, dict[str, Any]]:
    """Every measure per group (``keys`` of the roster's rows, ``task_keys`` of the tasks')
    over ``start``..``end``: one pass of sums per group, whatever the number of groups."""
    lost_at = roster["lost_at"]
    active = lost_at.isna()
    at_start = (roster["first_seen"] <= start) & (active | (lost_at > start))
    lost = ~active & (lost_at > start) & (lost_at <= end)
    revenue = roster["monthly_revenue"].astype("float64").fillna(0.0)
    history = history or _RevenueHistory(roster, None)
    # partial churn: retained accounts (there at the start, not lost by the end) whose revenue
    # fell by more than the configured share of their revenue at the start
    retained = at_start & (active | (lost_at > end))
    then = history.at(start).fillna(0.0)
    later = history.at(end).fillna(0.0)
    partial = retained & (then > 0) & (later < (1 - ceilings.partial_revenue_fall) * then)
    at_risk = roster["value_at_risk"].astype("float64") if "value_at_risk" in roster \
        else pd.Series(float("nan"), index=roster.index)
    accounts = pd.DataFrame({
        "accounts": active.astype(int), "monthly revenue": revenue.where(active, 0.0),
        "value at risk": at_risk.where(active, 0.0).fillna(0.0),
        "accounts at start": at_start.astype(int), "accounts lost": lost.astype(int),
        "revenue at start": revenue.where(at_start, 0.0),
        "revenue lost": revenue.where(lost, 0.0),
        "retained revenue then": then.where(at_start, 0.0),
        "retained revenue now": later.where(retained, 0.0),
        "partial churn accounts": partial.astype(int),
        "partial churn revenue lost": (then - later).where(partial, 0.0),
    }).groupby(keys.to_numpy()).sum()
    # a queued task is not the owner's work yet, a withdrawn or held-out one never was
    raised = ((tasks["created_at"] > start) & (tasks["created_at"] <= end)
              & ~tasks["status"].isin(NOT_WORK))
    done = tasks["status"].eq("done") & tasks["closed_at"].notna()
    task_sums = pd.DataFrame({
        "tasks raised": raised.astype(int),
        "on time": (raised & done & (tasks["closed_at"] <= tasks["due_at"])).astype(int),
        "overdue": (raised & tasks["status"].isin(OPEN_STATUSES)
                    & (tasks["due_at"] < end)).astype(int)}).groupby(task_keys.to_numpy()).sum()
    if "acknowledged_at" in tasks:  # created -> first acknowledged, in hours
        waited = (tasks["acknowledged_at"] - tasks["created_at"]).dt.total_seconds() / 3600
        task_sums["median hours to acknowledge"] = waited.where(raised).groupby(
            task_keys.to_numpy()).median()
    counts = accounts.join(task_sums, how="outer")
    median = counts.pop("median hours to acknowledge") \
        if "median hours to acknowledge" in counts else None
    counts = counts.fillna(0)
    if median is not None:
        counts["median hours to acknowledge"] = median
    return {key: _from_counts(row, start, end, ceilings)
            for key, row in zip(counts.index, counts.to_dict("records"), strict=True)}


def _from_counts(counts: Mapping[str, float], start: pd.Timestamp, end: pd.Timestamp,
                 ceilings: Ceilings) -> dict[str, Any]:
    """The measures of one group from its sums (absent sums are 0)."""
    def n(name: str) -> int:
        return int(counts.get(name, 0))

    base, gone, raised = n("accounts at start"), n("accounts lost"), n("tasks raised")
    base_revenue = float(counts.get("revenue at start", 0.0))
    retained_base = float(counts.get("retained revenue then", 0.0))
    ack = counts.get("median hours to acknowledge")
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
        "partial churn accounts": n("partial churn accounts"),
        "partial churn rate": n("partial churn accounts") / base if base else 0.0,
        "partial churn revenue lost": round(float(counts.get("partial churn revenue lost",
                                                             0.0)), 2),
        "revenue retained": (float(counts.get("retained revenue now", 0.0)) / retained_base
                             if retained_base else 0.0),
        "value at risk": round(float(counts.get("value at risk", 0.0)), 2),
        "tasks raised": raised,
        "on time share": n("on time") / raised if raised else 0.0,
        "overdue share": n("overdue") / raised if raised else 0.0,
        "median hours to acknowledge": (None if ack is None or ack != ack
                                        else round(float(ack), 2)),
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
            "revenue_lost_12m": year["revenue lost"],
            "partial_churn_rate_12m": year["partial churn rate"],
            "value_at_risk": year["value at risk"]}
