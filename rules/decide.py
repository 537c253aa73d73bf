"""Decide: apply a rule set to scored accounts and return one row per (account, action).

A rule's outcome depends only on which of its comparisons hold, so per rule the accounts are
grouped by that true/false pattern and durable-rules decides one representative account per
pattern (a few hundred facts stand for millions of accounts); the verdicts are spread back to
every account. Explanations come from the same conditions evaluated on each account's own values.
Pure: no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from kamflow.rules import engine
from kamflow.rules.conditions import evaluate_leaf, explain
from kamflow.rules.language import CATEGORIES, Condition, Leaf, RuleSet, leaves

log = logging.getLogger(__name__)

Matcher = Callable[[RuleSet, Iterable[Mapping[str, Any]]], list[tuple[int, str]]]

DECISION_COLUMNS = [
    "account_id", "account_name", "account_manager", "manager_email", "value_class",
    "churn_band", "churn_risk", "rule_id", "action", "owner_role", "priority", "due_in_days",
    "cooldown_days", "email", "why", "churn_factors", "factors", "ruleset_version",
    "monthly_revenue", "churn_probability", "value_at_risk", "proactive",
]
# What value at risk a decision carries from its scored account (NaN for accounts scored
# without it, e.g. by hand).
VALUE_COLUMNS = ("monthly_revenue", "churn_probability", "value_at_risk")


def match_rules(scored: pd.DataFrame, ruleset: RuleSet,
                matcher: Matcher = engine.match) -> np.ndarray:
    """Which rules each account satisfies (rules × accounts, before suppression).

    A rule's outcome depends only on which of its own comparisons hold. So, per rule, accounts
    are grouped by that pattern of true/false comparisons, one account per pattern is asserted
    into durable-rules, and the engine's verdict for that rule is spread to the pattern's
    accounts. The engine decides every rule for every pattern that occurs; a few hundred facts
    stand for millions of accounts.
    """
    fields = list(ruleset.fields)
    missing = [f for f in fields if f not in scored]
    if missing:
        raise ValueError(f"scored accounts lack fields used by the rules: {missing}")
    # Checked on every account, not only on the representatives: a missing value compares
    # false everywhere and would silently share another account's decisions.
    blank = scored[fields].isna()
    if blank.to_numpy().any():
        name = blank.columns[blank.any().to_numpy()][0]
        account = scored.loc[blank[name], "account_id"].iloc[0]
        raise ValueError(f"field {name!r} is missing (NaN) for account {account}; validation "
                         "should have quarantined it")
    truth: dict[Leaf, np.ndarray] = {}
    plans = []
    representatives: dict[int, int] = {}  # account row -> fact gid
    every = np.arange(len(scored))
    for rule in ruleset.rules:
        code, size = _pattern(rule.when, scored, truth)
        if size is None:  # too many comparisons for a direct table: number the patterns
            _, code = np.unique(code, return_inverse=True)
            size = int(code.max()) + 1
        # Any account showing a pattern can stand for it: scatter row numbers by pattern code.
        standing = np.full(size, -1, dtype="int64")
        standing[code] = every
        seen = np.flatnonzero(standing >= 0)
        gids = np.full(size, -1, dtype="int64")
        gids[seen] = [representatives.setdefault(int(row), len(representatives))
                      for row in standing[seen]]
        plans.append((gids, code))
    rows = np.fromiter(representatives, dtype="int64", count=len(representatives))
    facts = _facts(scored.iloc[rows][fields])
    verdict = np.zeros((len(ruleset.rules), len(rows)), dtype=bool)
    position = {rule.id: i for i, rule in enumerate(ruleset.rules)}
    for gid, rule_id in matcher(ruleset, facts):
        verdict[position[rule_id], gid] = True
    matched = np.empty((len(ruleset.rules), len(scored)), dtype=bool)
    for i, (gids, inverse) in enumerate(plans):
        matched[i] = verdict[i, gids][inverse]
    log.info("rules: %d accounts decided through %d representative facts; %d rule matches",
             len(scored), len(rows), int(matched.sum()))
    return matched


def _pattern(condition: Condition, scored: pd.DataFrame,
             truth: dict[Leaf, np.ndarray]) -> tuple[np.ndarray, int | None]:
    """Per account, which of the condition's distinct comparisons hold, as one integer code
    (bit j = comparison j), and the number of possible codes (None when it is too large for a
    lookup table)."""
    code = np.zeros(len(scored), dtype="int64")
    distinct = list(dict.fromkeys(leaves(condition)))
    for bit, leaf in enumerate(distinct):
        if leaf not in truth:
            truth[leaf] = _leaf_truth(leaf, scored, truth)
        if bit < 62:
            code |= truth[leaf].astype("int64") << bit
    if len(distinct) > 62:  # rare: fall back to numbering whole truth rows
        rows = np.column_stack([truth[leaf] for leaf in distinct])
        return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1), None
    return code, (1 << len(distinct)) if len(distinct) <= 20 else None


def suppress(ruleset: RuleSet, matched: np.ndarray) -> np.ndarray:
    """Drop, per account, the rules that another matching rule suppresses."""
    position = {rule.id: i for i, rule in enumerate(ruleset.rules)}
    final = matched.copy()
    for i, rule in enumerate(ruleset.rules):
        for target in rule.suppresses:
            final[position[target]] &= ~matched[i]
    return final


def decide(scored: pd.DataFrame, ruleset: RuleSet,
           matcher: Matcher = engine.match) -> pd.DataFrame:
    """Every matching rule fires (collect); suppressed rules are dropped per account."""
    if scored.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    fires = suppress(ruleset, match_rules(scored, ruleset, matcher))
    return _decisions(scored, ruleset, fires)


def _leaf_truth(leaf: Leaf, scored: pd.DataFrame, cache: dict[Any, Any]) -> np.ndarray:
    """One comparison over all accounts. Text fields are compared as integer codes (factorised
    once per field): comparing millions of strings costs far more than the rules themselves."""
    if leaf.field not in CATEGORIES:
        return np.asarray(evaluate_leaf(leaf, scored), dtype=bool)
    key = ("codes", leaf.field)
    if key not in cache:
        codes, uniques = pd.factorize(scored[leaf.field])
        cache[key] = (codes, {value: i for i, value in enumerate(uniques)})
    codes, lookup = cache[key]
    wanted = [lookup.get(v, -2) for v in (leaf.value if isinstance(leaf.value, tuple)
                                          else (leaf.value,))]
    hit = codes == wanted[0] if len(wanted) == 1 else np.isin(codes, wanted)
    return ~hit if leaf.op in ("ne", "not_in") else hit


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
    texts, factors = _factors(scored, fires)
    values = {name: (scored[name].to_numpy(dtype="float64") if name in scored
                     else np.full(len(scored), np.nan)) for name in VALUE_COLUMNS}
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
                "email": action.email,
                "why": why,
                "churn_factors": texts[rows],
                # JSON text kept as Python strings (object): sorting and taking the decisions
                # then moves pointers, not a second copy of every factor set's bytes
                "factors": pd.Series(factors[rows], dtype=object, copy=False),
                "ruleset_version": ruleset.version,
                **{name: column[rows] for name, column in values.items()},
                "proactive": rule.proactive,
            }))
    if not parts:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    decisions = pd.concat(parts, ignore_index=True)
    # Two rules may raise the same action for one account: keep the most urgent one, and of
    # equally urgent ones the risk-driven one (proactive care ranks below risk).
    decisions = decisions.sort_values(["account_id", "action", "priority", "proactive",
                                       "due_in_days"], kind="stable")
    return decisions.drop_duplicates(["account_id", "action"]).reset_index(drop=True)


def _factors(scored: pd.DataFrame, fires: np.ndarray | None = None,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per account: its top churn factors as the ops' text ("revenue_decline: revenue -38%
    (level 0.95)") and as data (the JSON of kamflow.core.factors), made only for the accounts
    some rule fires on: nobody reads the others'."""
    from kamflow.scoring.explain import explain_factors

    text = np.full(len(scored), "", dtype=object)
    data = np.full(len(scored), "[]", dtype=object)
    rows = np.flatnonzero(fires.any(axis=0)) if fires is not None and fires.size \
        else np.arange(len(scored))
    if len(rows):
        # Take only the factor columns: copying every column of a million rows costs more.
        columns = [i for i, name in enumerate(scored.columns)
                   if str(name).startswith("churn_factor_")]
        subset = scored.iloc[rows, columns]
        subset.attrs = scored.attrs
        text[rows], data[rows] = explain_factors(subset)
    return text, data
