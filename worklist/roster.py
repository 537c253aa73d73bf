"""The account roster: every account seen in a snapshot, with its manager, and when it was lost.

Each snapshot brings the roster up to date (new accounts in, missing ones marked lost, returning
ones restored), which gives every manager the churn KPI of DOMAIN.md (worklist/kpis.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import cast

import pandas as pd
from sqlalchemy import Table, bindparam, select, update

from kamflow.worklist.bulk import insert_rows
from kamflow.worklist.db import StoreBase, utc
from kamflow.worklist.models import OPEN_STATUSES, AccountRecord, AccountRevenue, Task

__all__ = ["MAX_ID_DRIFT_SHARE", "MAX_LOST_SHARE", "ROSTER_ATTRIBUTES", "IdDrift", "RosterChange",
           "RosterStore", "id_drift"]

log = logging.getLogger(__name__)

MAX_LOST_SHARE = 0.05  # more of the roster gone in one snapshot looks like a partial export
MAX_ID_DRIFT_SHARE = 0.2  # conf/pipeline.yaml guards.max_id_drift_share
_ROSTER_CHUNK = 100_000  # roster rows inserted at a time
# What the roster keeps of each account as last seen (roster column: snapshot column), for the
# department's measures. A snapshot without a column, or an account without a value (e.g.
# quarantined, so unscored), leaves what the roster had.
ROSTER_ATTRIBUTES = {"monthly_revenue": "avg_monthly_billed", "region": "region",
                     "industry": "industry", "value_class": "value_class",
                     "value_at_risk": "value_at_risk"}
_NUMERIC = ("monthly_revenue", "value_at_risk")
_ROSTER_SELECT = ("SELECT account_id, manager_email, manager_name, first_seen, lost_at, "
                  + ", ".join(ROSTER_ATTRIBUTES) + " FROM accounts")


@dataclass(frozen=True)
class RosterChange:
    new: int  # accounts seen for the first time
    lost: int  # in the roster, missing from this snapshot: marked lost
    returned: int  # marked lost before, back in this snapshot
    held: int = 0  # missing but not marked lost: too many at once (a partial export?)


class RosterStore(StoreBase):
    def check_id_drift(self, accounts: pd.DataFrame,
                       max_share: float = MAX_ID_DRIFT_SHARE) -> IdDrift | None:
        """``id_drift`` between the ids this store knows and a snapshot's ``accounts`` (read as
        ``record_accounts`` would store them). Reads only."""
        return id_drift(self.known_account_ids(), _roster_frame(accounts)["account_id"],
                        max_share)

    def known_account_ids(self) -> set[str]:
        """The ids the next snapshot should hold: the roster's active accounts and the
        accounts of open tasks (what the id-drift guard compares a snapshot with)."""
        with self.session() as session:
            ids = set(session.scalars(select(AccountRecord.account_id).where(
                AccountRecord.lost_at.is_(None))))
            ids.update(session.scalars(select(Task.account_id).where(
                Task.status.in_(OPEN_STATUSES)).distinct()))
        return ids

    def record_accounts(self, accounts: pd.DataFrame, now: dt.datetime,
                        max_lost_share: float = MAX_LOST_SHARE) -> RosterChange:
        """Bring the account roster up to this snapshot (``account_id``, ``account_manager``,
        ``manager_email``: every account in it, accepted or quarantined; optionally
        ``avg_monthly_billed``, ``region``, ``industry`` and ``value_class``, kept as last
        seen). New accounts are added; accounts of the roster missing from the snapshot are
        marked lost (their manager's churn), unless more than ``max_lost_share`` of the
        roster went missing at once, which looks like a partial export: then nothing is marked
        and a warning says so. Accounts back in the snapshot are not lost any more; managers
        are kept current."""
        now = utc(now)
        today = _roster_frame(accounts)
        given = [a for a, column in ROSTER_ATTRIBUTES.items() if column in accounts]
        with self.session() as session:
            driver = session.connection().connection.driver_connection
            assert driver is not None  # a live connection inside the session's transaction
            cursor = driver.cursor()
            try:  # plain tuples from the driver: SQLAlchemy rows cost 5 s per million here
                cursor.execute("SELECT account_id, manager_email, lost_at IS NULL, "
                               + ", ".join(ROSTER_ATTRIBUTES) + " FROM accounts")
                known = pd.DataFrame(cursor.fetchall(), columns=[
                    "account_id", "known_email", "active",
                    *(f"known_{a}" for a in ROSTER_ATTRIBUTES)])
            finally:
                cursor.close()
            if known.empty:  # the first snapshot: everyone is new
                merged = today.assign(known_email=None, active=False, _merge="left_only",
                                      **{f"known_{a}": None for a in ROSTER_ATTRIBUTES})
            else:
                known["account_id"] = known["account_id"].astype(today["account_id"].dtype)
                merged = today.merge(known, on="account_id", how="outer", indicator=True)
            present = (merged["_merge"] != "right_only").to_numpy()
            both = (merged["_merge"] == "both").to_numpy()
            active = (merged["active"].astype("float64").fillna(0.0) > 0).to_numpy()
            new = merged.loc[merged["_merge"] == "left_only"]
            missing = merged.loc[~present & active, "account_id"].tolist()
            returned = merged.loc[both & ~active, "account_id"].tolist()
            moved = merged.loc[both & (merged["manager_email"] != merged["known_email"])
                               .to_numpy()]
            for start in range(0, len(new), _ROSTER_CHUNK):  # bounded memory at 1M accounts
                part = new.iloc[start:start + _ROSTER_CHUNK]
                attributes = _attribute_records(part, given)
                insert_rows(session, AccountRecord.__table__, [
                    {"account_id": a, "manager_email": e, "manager_name": n, "first_seen": now,
                     **attrs}
                    for a, e, n, attrs in zip(part["account_id"].tolist(),
                                              part["manager_email"].tolist(),
                                              part["manager_name"].tolist(), attributes,
                                              strict=True)])
            if "monthly_revenue" in given:  # the revenue history: first seen, then each change
                revenue = merged["monthly_revenue"]
                moved_revenue = (merged["_merge"] == "left_only") | (
                    both & ~(revenue.astype("float64") == merged["known_monthly_revenue"]
                             .astype("float64")).to_numpy())
                rows = merged.loc[moved_revenue.to_numpy() & revenue.notna().to_numpy()]
                for start in range(0, len(rows), _ROSTER_CHUNK):
                    part = rows.iloc[start:start + _ROSTER_CHUNK]
                    insert_rows(session, AccountRevenue.__table__, [
                        {"account_id": a, "at": now, "monthly_revenue": float(v)}
                        for a, v in zip(part["account_id"].tolist(),
                                        part["monthly_revenue"].tolist(), strict=True)])
            held = 0
            if missing and len(missing) > max_lost_share * int(active.sum()):
                held, missing = len(missing), []
                log.warning("%d of %d accounts are missing from this snapshot, more than %.0f%%: "
                            "it looks like a partial export, so none is marked lost", held,
                            int(active.sum()), 100 * max_lost_share)
            table = cast(Table, AccountRecord.__table__)
            for ids, value in ((missing, now), (returned, None)):
                if ids:
                    session.execute(update(table).where(table.c.account_id == bindparam("a"))
                                    .values(lost_at=value), [{"a": a} for a in ids])
            if len(moved):
                session.execute(update(table).where(table.c.account_id == bindparam("a"))
                                .values(manager_email=bindparam("e"), manager_name=bindparam("n")),
                                [{"a": a, "e": e, "n": n} for a, e, n in zip(
                                    moved["account_id"].tolist(),
                                    moved["manager_email"].tolist(),
                                    moved["manager_name"].tolist(), strict=True)])
            changed = _changed_attributes(merged.loc[both], given)
            if len(changed):
                session.execute(
                    update(table).where(table.c.account_id == bindparam("a"))
                    .values(**{a: bindparam(f"v_{a}") for a in given}),
                    [{"a": a, **{f"v_{k}": v for k, v in attrs.items()}}
                     for a, attrs in zip(changed["account_id"].tolist(),
                                         _attribute_records(changed, given), strict=True)])
        change = RosterChange(len(new), len(missing), len(returned), held)
        log.info("account roster: %d new, %d lost, %d back, %d missing but not marked",
                 change.new, change.lost, change.returned, change.held)
        return change


    def roster_rows(self) -> pd.DataFrame:
        """The whole roster, one row per account: ``account_id``, ``manager_email``,
        ``manager_name``, ``first_seen`` and ``lost_at`` (UTC), and the attributes last seen
        (ROSTER_ATTRIBUTES), for the department's measures (worklist/measures.py)."""
        with self.session() as session:
            driver = session.connection().connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                cursor.execute(_ROSTER_SELECT)
                rows = pd.DataFrame(cursor.fetchall(), columns=[
                    "account_id", "manager_email", "manager_name", "first_seen", "lost_at",
                    *ROSTER_ATTRIBUTES])
            finally:
                cursor.close()
        for column in ("first_seen", "lost_at"):  # SQLite gives text, PostgreSQL datetimes
            rows[column] = pd.to_datetime(rows[column], utc=True, format="mixed")
        for column in _NUMERIC:
            rows[column] = rows[column].astype("float64")
        return rows

    def revenue_rows(self) -> pd.DataFrame:
        """The revenue history (table ``account_revenue``): ``account_id``, ``at`` (UTC) and
        ``monthly_revenue`` from then on, oldest first, for partial churn
        (worklist/measures.py revenue_as_of)."""
        with self.session() as session:
            driver = session.connection().connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                cursor.execute("SELECT account_id, at, monthly_revenue FROM account_revenue "
                               "ORDER BY at, id")
                rows = pd.DataFrame(cursor.fetchall(),
                                    columns=["account_id", "at", "monthly_revenue"])
            finally:
                cursor.close()
        rows["at"] = pd.to_datetime(rows["at"], utc=True, format="mixed")
        rows["monthly_revenue"] = rows["monthly_revenue"].astype("float64")
        return rows


def _attribute_records(frame: pd.DataFrame, given: list[str]) -> list[dict[str, object]]:
    """Per row, the roster attributes in ``given`` (NaN and empty text stored as NULL)."""
    columns = {a: [None if (v is None or v != v or v == "") else v
                   for v in frame[a].tolist()] for a in given}
    return [dict(zip(given, values, strict=True))
            for values in zip(*(columns[a] for a in given), strict=True)] if given \
        else [{} for _ in range(len(frame))]


def _changed_attributes(both: pd.DataFrame, given: list[str]) -> pd.DataFrame:
    """Accounts known before whose attributes in ``given`` changed: their new values, with
    the roster's kept where this snapshot has none."""
    if not given or both.empty:
        return both.iloc[:0]
    out = both[["account_id"]].copy()
    changed = pd.Series(False, index=both.index)
    for a in given:
        today = both[a].where(both[a].notna() & (both[a] != ""), None) \
            if both[a].dtype == object else both[a]
        known = both[f"known_{a}"]
        value = today.where(today.notna(), known)
        out[a] = value
        same = (value == known) | (value.isna() & known.isna())
        changed |= ~same.fillna(False).astype(bool)
    return out.loc[changed.to_numpy()]


@dataclass(frozen=True)
class IdDrift:
    """The known accounts' ids vanished from a snapshot while about as many new ids appeared:
    the ids changed format (Excel stripped leading zeros, ``1.23E+11``, a numeric Parquet
    column), not the customers. Dispatching would raise duplicate tasks for the whole base."""

    known: int
    vanished: int
    appeared: int
    examples: tuple[tuple[str, str], ...]  # (known id, the new id it looks like) pairs

    def message(self) -> str:
        pairs = ", ".join(f"{old!r} -> {new!r}" for old, new in self.examples)
        return (f"account ids changed format: {self.vanished:,} of {self.known:,} known account "
                f"ids are missing from this snapshot while {self.appeared:,} new ids appeared "
                f"(e.g. {pairs}). The run stopped before the roster and dispatch, so no "
                "duplicate task or email was made. Export the ids as text exactly as before "
                "(keep leading zeros; no scientific notation or numeric column), then run "
                "again; if the ids really changed, raise guards.max_id_drift_share in "
                "conf/pipeline.yaml for this one run.")


def id_drift(known: Iterable[object], current: Iterable[object],
             max_share: float = MAX_ID_DRIFT_SHARE) -> IdDrift | None:
    """The id drift between the ``known`` account ids (the roster's, the open tasks') and the
    ``current`` snapshot's, or None. Drift: more than ``max_share`` of the known ids are gone
    and at least half as many new ids appeared (fewer new ones is a partial export, which the
    roster's own guard handles). Pure."""
    before = {str(a) for a in known}
    now = {str(a) for a in current}
    vanished = before - now
    if not before or len(vanished) <= max_share * len(before):
        return None
    appeared = now - before
    if len(appeared) < 0.5 * len(vanished):
        return None
    by_form: dict[str, str] = {}
    for new in sorted(appeared):
        by_form.setdefault(_id_form(new), new)
    pairs = [(old, by_form[_id_form(old)]) for old in sorted(vanished)
             if _id_form(old) in by_form][:3]
    if not pairs:  # no id maps onto another: name a few of each
        pairs = list(zip(sorted(vanished)[:3], sorted(appeared)[:3], strict=False))
    return IdDrift(len(before), len(vanished), len(appeared), tuple(pairs))


def _id_form(account_id: str) -> str:
    """An id as its format-mangled copies also read: ``000123``, ``123``, ``123.0`` and
    ``1.23E+2`` are all ``123``."""
    text = account_id.strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text.lstrip("0") or "0"
    if number.is_finite() and number == number.to_integral_value():
        return str(int(number))
    return text


def _roster_frame(accounts: pd.DataFrame) -> pd.DataFrame:
    """One row per account id of a snapshot's accounts (the last row of a duplicate id)."""
    def text(column: str, limit: int) -> pd.Series:
        values = accounts[column] if column in accounts else pd.Series(
            "", index=accounts.index, dtype="str")
        return values.astype("str").fillna("").str.strip().str.slice(0, limit)

    frame = pd.DataFrame({"account_id": text("account_id", 64),
                          "manager_email": text("manager_email", 320).str.lower(),
                          "manager_name": text("account_manager", 200)})
    for attribute, column in ROSTER_ATTRIBUTES.items():
        if column not in accounts:
            continue
        if attribute in _NUMERIC:
            frame[attribute] = pd.to_numeric(accounts[column], errors="coerce").astype("float64")
            if attribute == "value_at_risk":  # whole CNY: a score's daily jitter rewrites no row
                frame[attribute] = frame[attribute].round(0)
        else:
            limit = {"region": 100, "industry": 50, "value_class": 20}[attribute]
            values = accounts[column].astype("object")
            frame[attribute] = values.where(values.notna(), None).map(
                lambda v, n=limit: None if v is None else str(v).strip()[:n] or None)
    frame = frame.loc[accounts["account_id"].notna().to_numpy() & (frame["account_id"] != "")
                      .to_numpy()]
    return frame.drop_duplicates("account_id", keep="last").reset_index(drop=True)
