"""Decide: apply a rule set to scored accounts and return one row per (account, action).

Rules compare fields with constants, so accounts whose values fall in the same interval between
the constants of every field are indistinguishable to the rules. Accounts are grouped by those
intervals ("cells") and durable-rules decides each distinct cell once; the decisions are then
spread back to every account of the cell. Explanations come from the same conditions evaluated on
each account's own values. Pure: no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from rules import engine
from rules.conditions import explain
from rules.language import CATEGORIES, RuleSet, leaves

log = logging.getLogger(__name__)

Matcher = Callable[[RuleSet, Iterable[Mapping[str, Any]]], list[tuple[int, str]]]

DECISION_COLUMNS = [
    "account_id", "account_name", "account_manager", "manager_email", "value_class",
    "churn_band", "churn_risk", "rule_id", "action", "owner_role", "priority", "due_in_days",
    "cooldown_days", "why", "churn_factors", "ruleset_version",
]


def cells(scored: pd.DataFrame, ruleset: RuleSet) -> np.ndarray:
    """Group id per account: equal ids compare identically with every constant in the rules."""
    codes = []
    for name in ruleset.fields:
        constants = {leaf.value for rule in ruleset.rules for leaf in leaves(rule.when)
                     if leaf.field == name}
        flat = sorted({c for v in constants for c in (v if isinstance(v, tuple) else (v,))})
        values = scored[name].to_numpy()
        if name in CATEGORIES:
            lookup = {value: i for i, value in enumerate(flat)}
            codes.append(pd.Series(values).map(lookup).fillna(-1).to_numpy(dtype="int64"))
        else:
            edges = np.asarray(flat, dtype="float64")
            index = np.searchsorted(edges, values, side="left")
            exact = (index < len(edges)) & (edges[np.minimum(index, len(edges) - 1)] == values)
            codes.append(2 * index + exact)
    if not codes:
        return np.zeros(len(scored), dtype="int64")
    return pd.DataFrame(codes).T.groupby(list(range(len(codes))), sort=False).ngroup().to_numpy()


def decide(scored: pd.DataFrame, ruleset: RuleSet,
           matcher: Matcher = engine.match) -> pd.DataFrame:
    """Every matching rule fires (collect); suppressed rules are dropped per account."""
    if scored.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    fields = list(ruleset.fields)
    missing = [f for f in fields if f not in scored]
    if missing:
        raise ValueError(f"scored accounts lack fields used by the rules: {missing}")
    # Checked on every account, not only on each cell's representative: a missing value falls
    # into the cell of the values above every constant and would silently share its decisions.
    blank = scored[fields].isna()
    if blank.to_numpy().any():
        name = blank.columns[blank.any().to_numpy()][0]
        account = scored.loc[blank[name], "account_id"].iloc[0]
        raise ValueError(f"field {name!r} is missing (NaN) for account {account}; validation "
                         "should have quarantined it")
    group = cells(scored, ruleset)
    first = pd.Series(np.arange(len(group))).groupby(group, sort=True).first().to_numpy()
    facts = _facts(scored.iloc[first][fields])
    matched = np.zeros((len(ruleset.rules), len(first)), dtype=bool)
    position = {rule.id: i for i, rule in enumerate(ruleset.rules)}
    for gid, rule_id in matcher(ruleset, facts):
        matched[position[rule_id], gid] = True
    log.info("rules: %d accounts fell into %d distinct cells; %d rule matches among cells",
             len(scored), len(first), int(matched.sum()))
    final = matched.copy()
    for i, rule in enumerate(ruleset.rules):
        for target in rule.suppresses:
            final[position[target]] &= ~matched[i]
    return _decisions(scored, ruleset, final[:, group])


def _facts(representatives: pd.DataFrame) -> list[dict[str, Any]]:
    records = representatives.to_dict("records")
    for gid, record in enumerate(records):
        for key, value in record.items():
            if isinstance(value, float) and value != value:
                raise ValueError(f"field {key!r} is missing (NaN) for an account; validation "
                                 "should have quarantined it")
            if isinstance(value, np.generic):
                record[key] = value.item()
        record["gid"] = gid
    return records


def _decisions(scored: pd.DataFrame, ruleset: RuleSet, fires: np.ndarray) -> pd.DataFrame:
    parts = []
    factors = _factor_text(scored)
    for i, rule in enumerate(ruleset.rules):
        rows = np.flatnonzero(fires[i])
        if not len(rows):
            continue
        subset = scored.iloc[rows]
        why = explain(rule.when, subset)
        for consequence in rule.then:
            action = ruleset.actions[consequence.action]
            parts.append(pd.DataFrame({
                "account_id": subset["account_id"].to_numpy(),
                "account_name": subset["name_zh"].to_numpy(),
                "account_manager": subset["account_manager"].to_numpy(),
                "manager_email": subset["manager_email"].to_numpy(),
                "value_class": subset["value_class"].to_numpy(),
                "churn_band": subset["churn_band"].to_numpy(),
                "churn_risk": subset["churn_risk"].to_numpy(),
                "rule_id": rule.id,
                "action": consequence.action,
                "owner_role": action.owner,
                "priority": consequence.priority,
                "due_in_days": consequence.due_in_days,
                "cooldown_days": consequence.cooldown_days,
                "why": why,
                "churn_factors": factors[rows],
                "ruleset_version": ruleset.version,
            }))
    if not parts:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    decisions = pd.concat(parts, ignore_index=True)
    # Two rules may raise the same action for one account: keep the most urgent one.
    decisions = decisions.sort_values(["account_id", "action", "priority", "due_in_days"],
                                      kind="stable")
    return decisions.drop_duplicates(["account_id", "action"]).reset_index(drop=True)


def _factor_text(scored: pd.DataFrame) -> np.ndarray:
    columns = [c for c in ("churn_factor_1", "churn_factor_2", "churn_factor_3") if c in scored]
    if not columns:
        return np.full(len(scored), "", dtype=object)
    text = scored[columns[0]].fillna("").to_numpy(dtype=object)
    for column in columns[1:]:
        piece = scored[column].fillna("").to_numpy(dtype=object)
        text = np.where(piece == "", text, text + ", " + piece)
    return text
