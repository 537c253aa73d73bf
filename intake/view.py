"""The single customer view (统一客户视图): one row per account, every table joined and aggregated.

Pure: takes validated tables and the snapshot date, returns a new frame. An account with no rows
in a side table gets explicit zeros there (no complaints is a fact, not a missing value), and
``billing_months`` says how many months of billing it had, so scoring can tell a new account
from a silent one.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from intake.schema import SEGMENT_BY_INDUSTRY

RECENT_DAYS = 90      # complaints, SLA incidents: "the last 90 days"
RECENT_MONTHS = 3     # revenue trend and arrears: the last 3 billed months ...
EARLIER_MONTHS = 9    # ... against the 9 months before them

VIEW_COLUMNS = [
    "account_id", "name_zh", "name_en", "industry", "segment", "region", "account_manager",
    "manager_email", "avg_monthly_billed", "revenue_trend", "arrears", "arrears_ratio",
    "billing_months", "products_held", "new_services", "employees", "cost_to_serve",
    "tenure_months", "days_to_contract_end", "days_since_contact", "complaints_90d",
    "sla_breaches_90d", "outage_hours_90d",
]


def build_customer_view(tables: dict[str, pd.DataFrame], as_of: dt.date) -> pd.DataFrame:
    accounts = tables["accounts"]
    as_of_ts = np.datetime64(as_of, "ns")
    view = pd.DataFrame({
        "account_id": accounts["account_id"].to_numpy(),
        "name_zh": accounts["name_zh"].to_numpy(),
        "name_en": _optional(accounts, "name_en", ""),
        "industry": accounts["industry"].to_numpy(),
        "region": accounts["region"].to_numpy(),
        "account_manager": accounts["account_manager"].to_numpy(),
        "manager_email": accounts["manager_email"].to_numpy(),
        "products_held": accounts["products_held"].fillna(0).to_numpy(),
        "new_services": _optional(accounts, "new_services", 0.0),
        "employees": _optional(accounts, "employees", 0.0),
        "cost_to_serve": _optional(accounts, "cost_to_serve", 0.0),
    })
    view["segment"] = view["industry"].map(SEGMENT_BY_INDUSTRY).fillna("other")
    start = accounts["contract_start"].to_numpy(dtype="datetime64[ns]")
    end = accounts["contract_end"].to_numpy(dtype="datetime64[ns]")
    view["tenure_months"] = ((as_of_ts - start) / np.timedelta64(1, "D") / 30.4375).round(1)
    view["days_to_contract_end"] = (end - as_of_ts) / np.timedelta64(1, "D")
    contact = accounts["last_contact_date"].to_numpy(dtype="datetime64[ns]") \
        if "last_contact_date" in accounts else np.full(len(accounts), np.datetime64("NaT", "ns"))
    since = (as_of_ts - contact) / np.timedelta64(1, "D")
    # Never contacted: count from the contract start, the longest the account can have waited.
    view["days_since_contact"] = np.where(np.isnan(since),
                                          (as_of_ts - start) / np.timedelta64(1, "D"), since)

    view = view.merge(_billing_features(tables["billing"], pd.Timestamp(as_of)), on="account_id",
                      how="left")
    view = view.merge(_recent_count(tables["complaints"], "opened_date", as_of_ts, "complaints_90d"),
                      on="account_id", how="left")
    view = view.merge(_sla_features(tables["sla_incidents"], as_of_ts), on="account_id", how="left")
    zero_when_absent = ["avg_monthly_billed", "revenue_trend", "arrears", "arrears_ratio",
                        "billing_months", "complaints_90d", "sla_breaches_90d", "outage_hours_90d"]
    view[zero_when_absent] = view[zero_when_absent].fillna(0.0)
    return view[VIEW_COLUMNS]


def _optional(frame: pd.DataFrame, column: str, default: object) -> np.ndarray:
    """An optional column, with ``default`` where it is blank or the column is absent."""
    if column in frame:
        return frame[column].fillna(default).to_numpy()
    return np.full(len(frame), default)


def _months_back(months: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    """1 for the month before the snapshot's month, 2 for the one before, ..."""
    return (as_of.year * 12 + as_of.month) - (months.dt.year * 12 + months.dt.month).to_numpy()


def _billing_features(billing: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    back = _months_back(billing["month"], as_of)
    in_year = (back >= 1) & (back <= RECENT_MONTHS + EARLIER_MONTHS)
    frame = pd.DataFrame({
        "account_id": billing["account_id"].to_numpy()[in_year],
        "billed": billing["billed"].to_numpy()[in_year],
        "paid": billing["paid"].to_numpy()[in_year],
        "recent": back[in_year] <= RECENT_MONTHS,
    })
    frame["recent_billed"] = np.where(frame["recent"], frame["billed"], 0.0)
    frame["recent_paid"] = np.where(frame["recent"], frame["paid"], 0.0)
    frame["earlier_billed"] = np.where(frame["recent"], 0.0, frame["billed"])
    frame["recent_n"] = frame["recent"].astype("float64")
    grouped = frame.groupby("account_id", sort=False).agg(
        billed=("billed", "sum"), months=("billed", "size"),
        recent_billed=("recent_billed", "sum"), recent_paid=("recent_paid", "sum"),
        earlier_billed=("earlier_billed", "sum"), recent_n=("recent_n", "sum"))
    earlier_n = grouped["months"] - grouped["recent_n"]
    recent_mean = grouped["recent_billed"] / grouped["recent_n"].where(grouped["recent_n"] > 0)
    earlier_mean = grouped["earlier_billed"] / earlier_n.where(earlier_n > 0)
    trend = (recent_mean / earlier_mean.where(earlier_mean > 0) - 1.0).fillna(0.0)
    arrears = (grouped["recent_billed"] - grouped["recent_paid"]).clip(lower=0.0)
    out = pd.DataFrame({
        "avg_monthly_billed": (grouped["billed"] / grouped["months"]).round(2),
        "revenue_trend": trend.round(4),
        "arrears": arrears.round(2),
        "arrears_ratio": (arrears / grouped["recent_billed"].where(grouped["recent_billed"] > 0))
        .fillna(0.0).round(4),
        "billing_months": grouped["months"].astype("float64"),
    })
    return out.reset_index()


def _recent_count(frame: pd.DataFrame, date_column: str, as_of: np.datetime64,
                  name: str) -> pd.DataFrame:
    age = (as_of - frame[date_column].to_numpy(dtype="datetime64[ns]")) / np.timedelta64(1, "D")
    recent = frame.loc[(age >= 0) & (age <= RECENT_DAYS), "account_id"]
    return recent.value_counts().rename(name).astype("float64").rename_axis("account_id") \
        .reset_index()


def _sla_features(frame: pd.DataFrame, as_of: np.datetime64) -> pd.DataFrame:
    age = (as_of - frame["start_date"].to_numpy(dtype="datetime64[ns]")) / np.timedelta64(1, "D")
    recent = frame.loc[(age >= 0) & (age <= RECENT_DAYS)]
    grouped = recent.groupby("account_id", sort=False).agg(
        sla_breaches_90d=("sla_breach", "sum"), outage_hours_90d=("outage_hours", "sum"))
    return grouped.astype("float64").reset_index()
