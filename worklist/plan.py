"""Plan tasks from decisions: route each to its owner and set its deadline. Pure: no I/O.

The owners directory (``conf/owners.yaml``) knows the team queues (roles), the fallback queue,
the key-account department head and the people (account managers, supervisors) with their
language, supervisor and working hours. It routes new tasks and gives the escalation ladder
(owner -> supervisor -> ... -> department head) that ``sla_watch`` climbs.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kamflow.core.factors import FACTORS_MARK
from kamflow.worklist.calendar import BusinessCalendar, add_business_time
from kamflow.worklist.capacity import UNLIMITED, Capacity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Owner:
    name: str
    email: str
    language: str = "en"
    supervisor: str | None = None  # email of the next rung of the escalation ladder
    working_hours: tuple[dt.time, dt.time] | None = None  # None: the business calendar's
    capacity: Capacity | None = None  # None: their role's (OwnerDirectory.capacity)


@dataclass(frozen=True)
class OwnerDirectory:
    """Queues for the roles that are not the account's own manager, the fallback queue, the
    key-account department head (top of every escalation ladder) and the known people."""

    roles: Mapping[str, Owner]
    fallback: Owner
    manager_language: str = "zh-CN"
    people: Mapping[str, Owner] = field(default_factory=dict)
    department_head: Owner | None = None
    default_supervisor: str | None = None
    # per role (account_manager, key_account_department, sla_team, supervisor): the capacity
    # of an owner who sets none of their own; a role not named here has no limit
    capacity: Mapping[str, Capacity] = field(default_factory=dict)

    def capacity_of(self, email: str, role: str) -> Capacity:
        """``email``'s capacity: their own (people, a queue under roles), else ``role``'s,
        else no limit. A limit the person leaves out comes from the role."""
        owner = self.lookup(email)
        default = self.capacity.get(role, UNLIMITED)
        own = owner.capacity if owner is not None else None
        if own is None:
            return default
        return Capacity(own.new_per_day if own.new_per_day is not None else default.new_per_day,
                        own.open_max if own.open_max is not None else default.open_max,
                        own.hours_per_day if own.hours_per_day is not None
                        else default.hours_per_day)

    def lookup(self, email: str) -> Owner | None:
        """Whoever has this address (case-insensitive): a person, a queue, the head, or None."""
        return self._index.get(email.strip().lower())

    @functools.cached_property
    def _index(self) -> dict[str, Owner]:
        index = {o.email.lower(): o for o in (*self.roles.values(), self.fallback,
                                              *_present(self.department_head))}
        index.update({email.lower(): o for email, o in self.people.items()})
        return index

    def language_of(self, email: str) -> str:
        owner = self.lookup(email)
        return owner.language if owner is not None else self.manager_language

    def working_hours_of(self, email: str) -> tuple[dt.time, dt.time] | None:
        owner = self.lookup(email)
        return owner.working_hours if owner is not None else None

    def ladder(self, email: str) -> list[Owner]:
        """Who a task owned by ``email`` escalates to, in order: its supervisors, then the
        department head. Someone not in the directory (an account manager known only from the
        snapshot) has ``default_supervisor`` as supervisor. Empty for the head."""
        rungs: list[Owner] = []
        seen = {email.strip().lower()}
        owner = self.lookup(email)
        supervisor = owner.supervisor if owner is not None else self.default_supervisor
        while supervisor and supervisor.strip().lower() not in seen:  # cycles end the chain
            known = self.lookup(supervisor)
            rungs.append(known or Owner(supervisor, supervisor, self.manager_language))
            seen.add(supervisor.strip().lower())
            supervisor = known.supervisor if known is not None else None
        head = self.department_head
        if head is not None and head.email.lower() not in seen:
            rungs.append(head)
        return rungs

    def next_rung(self, email: str) -> Owner | None:
        """The owner a task held by ``email`` escalates to next, or None at the top."""
        rungs = self.ladder(email)
        return rungs[0] if rungs else None


def owner_address(email: object) -> str:
    """An owner's address as tasks store and emails group it: trimmed and lower-case, so
    ``Wang@op.cn`` and ``wang@op.cn`` are one owner with one digest (its key is per address)."""
    return str(email).strip().lower()


def _present(owner: Owner | None) -> tuple[Owner, ...]:
    return (owner,) if owner is not None else ()


def plan_tasks(decisions: pd.DataFrame, owners: OwnerDirectory, action_titles: Mapping[str, str],
               now: dt.datetime, calendar: BusinessCalendar | None = None) -> pd.DataFrame:
    """One row per task to raise: the decision plus owner, title, reason and due time.

    With a business ``calendar`` the deadline is ``due_in_days`` working days of the owner's
    working hours (``add_business_time``); without one, plain calendar days.
    """
    planned = decisions.copy()
    is_manager = (planned["owner_role"] == "account_manager").to_numpy()
    manager_email = planned["manager_email"].fillna("").astype(str).to_numpy()
    role_email = planned["owner_role"].map(
        {role: o.email for role, o in owners.roles.items()}).astype(object).fillna("").to_numpy(
        dtype=object)
    role_name = planned["owner_role"].map(
        {role: o.name for role, o in owners.roles.items()}).astype(object).fillna("").to_numpy(
        dtype=object)
    email = np.where(is_manager, manager_email, role_email)
    name = np.where(is_manager, planned["account_manager"].fillna("").astype(str).to_numpy(),
                    role_name)
    email = np.array([owner_address(e) for e in email], dtype=object)
    unknown = np.array(["@" not in e for e in email], dtype=bool)  # missing or malformed
    if unknown.any():
        accounts = planned.loc[unknown, "account_id"].astype(str).unique()
        log.warning("%d task(s) have no known owner (role without a queue, or manager email "
                    "missing or malformed; accounts %s%s): routed to the fallback queue %s",
                    int(unknown.sum()), ", ".join(accounts[:5]),
                    " ..." if len(accounts) > 5 else "", owners.fallback.email)
    planned["owner_email"] = np.where(unknown, owner_address(owners.fallback.email), email)
    planned["owner_name"] = np.where(unknown, owners.fallback.name, name)
    planned["action_title"] = planned["action"].map(dict(action_titles)).fillna(planned["action"])
    planned["reason"] = np.where(
        planned["churn_factors"].astype(str) != "",
        planned["why"].astype(str) + FACTORS_MARK + planned["churn_factors"].astype(str),
        planned["why"].astype(str))
    planned["created_at"] = now
    if calendar is None:
        planned["due_at"] = now + pd.to_timedelta(planned["due_in_days"].astype(float), unit="D")
    else:
        planned["due_at"] = _business_deadlines(planned, owners, calendar, now)
    planned["open_key"] = planned["account_id"].astype(str) + "|" + planned["action"].astype(str)
    return planned


def _business_deadlines(planned: pd.DataFrame, owners: OwnerDirectory, calendar: BusinessCalendar,
                        now: dt.datetime) -> pd.Series:
    """Due times in business time, computed once per distinct (days, working hours) pair."""
    days = planned["due_in_days"].astype(float).to_numpy()
    emails = planned["owner_email"].astype(str).to_numpy()
    hours_by_email = {e: owners.working_hours_of(e) for e in set(emails)}
    cache: dict[tuple[float, object], dt.datetime] = {}
    due: list[dt.datetime] = []
    for day_count, email in zip(days, emails, strict=True):
        hours = hours_by_email[email]
        key = (float(day_count), hours)
        if key not in cache:
            cache[key] = add_business_time(now, float(day_count), calendar.with_hours(hours))
        due.append(cache[key])
    return pd.Series(pd.to_datetime(due, utc=True), index=planned.index)
