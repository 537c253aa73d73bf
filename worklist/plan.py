"""Plan tasks from decisions: route each to its owner and set its deadline. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Owner:
    name: str
    email: str
    language: str = "en"


@dataclass(frozen=True)
class OwnerDirectory:
    """Queues for the roles that are not the account's own manager, plus the fallback queue."""

    roles: Mapping[str, Owner]
    fallback: Owner
    manager_language: str = "zh-CN"

    def language_of(self, email: str) -> str:
        for owner in (*self.roles.values(), self.fallback):
            if owner.email == email:
                return owner.language
        return self.manager_language


def plan_tasks(decisions: pd.DataFrame, owners: OwnerDirectory, action_titles: Mapping[str, str],
               now: dt.datetime) -> pd.DataFrame:
    """One row per task to raise: the decision plus owner, title, reason and due time."""
    planned = decisions.copy()
    is_manager = (planned["owner_role"] == "account_manager").to_numpy()
    manager_email = planned["manager_email"].fillna("").astype(str).to_numpy()
    role_email = planned["owner_role"].map(
        {role: o.email for role, o in owners.roles.items()}).fillna("").to_numpy(dtype=object)
    role_name = planned["owner_role"].map(
        {role: o.name for role, o in owners.roles.items()}).fillna("").to_numpy(dtype=object)
    email = np.where(is_manager, manager_email, role_email)
    name = np.where(is_manager, planned["account_manager"].fillna("").astype(str).to_numpy(),
                    role_name)
    unknown = email == ""
    if unknown.any():
        log.warning("%d task(s) have no known owner (role or manager email missing): "
                    "routed to the fallback queue %s", int(unknown.sum()), owners.fallback.email)
    planned["owner_email"] = np.where(unknown, owners.fallback.email, email)
    planned["owner_name"] = np.where(unknown, owners.fallback.name, name)
    planned["action_title"] = planned["action"].map(dict(action_titles)).fillna(planned["action"])
    planned["reason"] = np.where(
        planned["churn_factors"].astype(str) != "",
        planned["why"].astype(str) + ". Top churn factors: " + planned["churn_factors"].astype(str),
        planned["why"].astype(str))
    planned["created_at"] = now
    planned["due_at"] = now + pd.to_timedelta(planned["due_in_days"].astype(float), unit="D")
    planned["open_key"] = planned["account_id"].astype(str) + "|" + planned["action"].astype(str)
    return planned
