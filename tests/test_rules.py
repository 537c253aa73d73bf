"""The rules stage: the shipped retention policy as a decision table, durable-rules against the
vectorised reference (100,000 generated accounts and random rule sets), rule checking with file,
line and rule id, explanations, and `kamflow rules check`."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from kamflow.config import load_scoring
from kamflow.core.errors import ConfigError
from kamflow.generate import make_snapshot, typed_tables
from kamflow.intake import build_customer_view
from kamflow.intake.schema import SEGMENT_BY_INDUSTRY
from kamflow.rules import DECISION_COLUMNS, RULES_DIR, RuleSet, decide, engine, load_ruleset
from kamflow.rules.conditions import evaluate, explain, nnf
from kamflow.rules.decide import match_rules
from kamflow.rules.language import CATEGORIES, NUMBERS, Leaf, Node
from kamflow.scoring import score_accounts

# Hypothesis keeps a cache in ./.hypothesis by default: keep the repository clean.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="kamflow-hypothesis-"))

KAMFLOW = Path(sys.executable).with_name("kamflow")

# A healthy, low-risk, low-value account: no shipped rule fires for it. Each case below changes
# only the signals it is about.
HEALTHY: dict[str, Any] = {
    "name_zh": "深圳兴达基金管理有限公司", "account_manager": "王芳",
    "manager_email": "wang.fang@operator.example",
    "value_class": "low", "churn_band": "low", "churn_risk": 8.0,
    "lifecycle_stage": "stable", "industry": "enterprise", "region": "广东",
    "current_value": 40.0, "potential_value": 40.0, "avg_monthly_billed": 20_000.0,
    "revenue_trend": 0.0, "arrears": 0.0, "arrears_ratio": 0.0, "products_held": 3,
    "new_services": 1, "employees": 300, "tenure_months": 60.0,
    "days_to_contract_end": 400.0, "days_since_contact": 20.0, "complaints_90d": 0.0,
    "complaints_3d": 0.0, "months_into_contract_year": 6.0,
    "sla_breaches_90d": 0.0, "outage_hours_90d": 0.0,
    "churn_factor_1": "complaints", "churn_factor_2": "", "churn_factor_3": "",
}


def accounts(*rows: dict[str, Any]) -> pd.DataFrame:
    """Scored accounts: HEALTHY overridden by each row; segment follows industry."""
    records = []
    for i, row in enumerate(rows):
        record = {"account_id": f"KA{i + 1:07d}", **HEALTHY, **row}
        record.setdefault("segment", SEGMENT_BY_INDUSTRY.get(record["industry"], "other"))
        records.append(record)
    return pd.DataFrame(records)


def decided(frame: pd.DataFrame, ruleset: RuleSet) -> set[tuple]:
    """decide(), as comparable (account, action, rule, priority, due, cooldown) tuples."""
    out = decide(frame, ruleset)
    return set(zip(out["account_id"], out["action"], out["rule_id"], out["priority"],
                   out["due_in_days"], out["cooldown_days"], strict=True))


def reference(frame: pd.DataFrame, ruleset: RuleSet) -> set[tuple]:
    """The same decisions from the vectorised reference, account by account (no cells, no engine).

    Every rule whose condition holds fires; a rule whose condition holds drops the rules it
    suppresses; of several decisions for one (account, action) the lowest priority, then a
    risk rule before a proactive one, then the shortest deadline, then the first rule in load
    order is kept.
    """
    holds = {rule.id: evaluate(rule.when, frame) for rule in ruleset.rules}
    fires = {rule_id: truth.copy() for rule_id, truth in holds.items()}
    for rule in ruleset.rules:
        for target in rule.suppresses:
            fires[target] &= ~holds[rule.id]
    best: dict[tuple, tuple] = {}
    ids = frame["account_id"].to_numpy()
    for order, rule in enumerate(ruleset.rules):
        for row in np.flatnonzero(fires[rule.id]):
            for index, then in enumerate(rule.then):
                key = (ids[row], then.action)
                candidate = (then.priority, rule.proactive, then.due_in_days, order, index,
                             rule.id, then.cooldown_days)
                if key not in best or candidate < best[key]:
                    best[key] = candidate
    return {(account, action, rule_id, priority, due, cooldown)
            for (account, action), (priority, _, due, _, _, rule_id, cooldown) in best.items()}


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    """The default rule set shipped in rules/."""
    return load_ruleset(RULES_DIR)


# --------------------------------------------------------------------------- 1. decision table

CASES = [
    # (signals, expected {(rule_id, action, priority, due_in_days)})
    pytest.param({}, set(), id="healthy-low-value-no-decision"),
    pytest.param({"value_class": "high", "current_value": 80.0, "potential_value": 80.0}, set(),
                 id="healthy-high-value-no-decision"),
    pytest.param({"value_class": "high", "churn_band": "critical", "churn_risk": 61.2},
                 {("escalate-valuable-critical", "escalate_to_key_account", 1, 1.0),
                  ("escalate-valuable-critical", "manager_visit", 1, 2.0)},
                 id="high-critical-escalates-and-visits"),
    pytest.param({"value_class": "high", "churn_band": "critical", "churn_risk": 70.0,
                  "complaints_90d": 5.0, "industry": "education"},
                 {("escalate-valuable-critical", "escalate_to_key_account", 1, 1.0),
                  ("escalate-valuable-critical", "manager_visit", 1, 2.0)},
                 id="high-critical-suppresses-complaint-and-segment-care-calls"),
    pytest.param({"value_class": "secondary", "churn_band": "critical", "churn_risk": 58.0,
                  "complaints_90d": 3.0},
                 {("escalate-valuable-critical", "escalate_to_key_account", 1, 1.0),
                  ("escalate-valuable-critical", "manager_visit", 1, 2.0)},
                 id="secondary-critical-escalates-no-care-call"),
    pytest.param({"value_class": "high", "churn_band": "high", "churn_risk": 40.0,
                  "complaints_90d": 4.0},
                 {("visit-high-value-high-risk", "manager_visit", 2, 3.0)},
                 id="high-high-visit-suppresses-complaint-care-call"),
    pytest.param({"value_class": "secondary", "churn_band": "high", "churn_risk": 36.0},
                 {("care-call-secondary-high-risk", "care_call", 2, 2.0)},
                 id="secondary-high-care-call"),
    pytest.param({"value_class": "high", "churn_band": "medium", "churn_risk": 25.0},
                 {("care-call-valuable-medium-risk", "care_call", 3, 3.0)},
                 id="high-medium-care-call"),
    pytest.param({"value_class": "potential", "churn_band": "high", "churn_risk": 45.0},
                 {("potential-value-at-risk", "care_call", 2, 3.0),
                  ("potential-value-at-risk", "tailored_offer", 3, 7.0)},
                 id="potential-high-care-call-and-offer"),
    pytest.param({"churn_band": "critical", "churn_risk": 60.0},
                 {("low-value-critical-watch", "care_call", 4, 7.0)},
                 id="low-critical-watch"),
    pytest.param({"churn_band": "critical", "churn_risk": 60.0, "complaints_90d": 3.0},
                 {("complaints-care-call", "care_call", 2, 2.0)},
                 id="same-action-twice-most-urgent-kept"),
    pytest.param({"value_class": "secondary", "churn_band": "high", "churn_risk": 36.0,
                  "complaints_90d": 3.0},
                 {("care-call-secondary-high-risk", "care_call", 2, 2.0)},
                 id="same-action-equal-urgency-first-rule-kept"),
    pytest.param({"complaints_90d": 2.0}, set(), id="two-complaints-no-call"),
    pytest.param({"sla_breaches_90d": 2.0}, {("sla-review-breaches", "sla_review", 2, 3.0)},
                 id="two-sla-breaches-review"),
    pytest.param({"sla_breaches_90d": 1.0}, set(), id="one-sla-breach-cost-segment-nothing"),
    pytest.param({"industry": "government", "sla_breaches_90d": 1.0},
                 {("leadership-sla-breach", "sla_review", 1, 1.0)},
                 id="leadership-sla-breach-priority-1"),
    pytest.param({"industry": "finance", "sla_breaches_90d": 3.0},
                 {("leadership-sla-breach", "sla_review", 1, 1.0)},
                 id="leadership-beats-generic-sla-review"),
    pytest.param({"value_class": "secondary", "outage_hours_90d": 24.0},
                 {("sla-review-long-outage", "sla_review", 1, 2.0)},
                 id="long-outage-urgent-review"),
    pytest.param({"value_class": "secondary", "outage_hours_90d": 23.9}, set(),
                 id="outage-just-below-threshold"),
    pytest.param({"outage_hours_90d": 48.0}, set(), id="long-outage-low-value-nothing"),
    pytest.param({"value_class": "high", "industry": "military", "outage_hours_90d": 30.0,
                  "sla_breaches_90d": 1.0},
                 {("leadership-sla-breach", "sla_review", 1, 1.0)},
                 id="equal-priority-shorter-deadline-kept"),
    pytest.param({"days_to_contract_end": -5.0},
                 {("renewal-talk-contract-expired", "renewal_talk", 1, 3.0)},
                 id="contract-ended-renewal-priority-1"),
    pytest.param({"value_class": "secondary", "days_to_contract_end": 0.0},
                 {("renewal-talk-contract-ending", "renewal_talk", 2, 7.0)},
                 id="contract-ends-today"),
    pytest.param({"value_class": "potential", "days_to_contract_end": 90.0},
                 {("renewal-talk-contract-ending", "renewal_talk", 2, 7.0)},
                 id="contract-ends-in-90-days"),
    pytest.param({"value_class": "potential", "days_to_contract_end": 91.0}, set(),
                 id="contract-ends-in-91-days"),
    pytest.param({"days_to_contract_end": 30.0}, set(), id="contract-ending-low-value-nothing"),
    pytest.param({"arrears_ratio": 0.2, "arrears": 1000.0},
                 {("payment-reminder-arrears", "payment_reminder", 3, 5.0)},
                 id="arrears-at-both-thresholds"),
    pytest.param({"arrears_ratio": 0.1999, "arrears": 5000.0}, set(), id="arrears-ratio-below"),
    pytest.param({"arrears_ratio": 0.5, "arrears": 999.99}, set(), id="arrears-amount-below"),
    pytest.param({"value_class": "high", "days_since_contact": 120.0},
                 {("no-contact-valuable", "manager_visit", 3, 10.0)},
                 id="no-contact-120-days-visit"),
    pytest.param({"value_class": "high", "days_since_contact": 119.0},
                 {("care-visit-high-value", "manager_visit", 4, 10.0)},
                 id="no-contact-119-days-only-the-monthly-care-visit"),
    pytest.param({"value_class": "secondary", "churn_band": "high", "churn_risk": 50.0,
                  "days_since_contact": 200.0},
                 {("care-call-secondary-high-risk", "care_call", 2, 2.0),
                  ("no-contact-valuable", "manager_visit", 3, 10.0)},
                 id="every-matching-rule-fires"),
    pytest.param({"value_class": "high", "churn_band": "medium", "churn_risk": 22.0,
                  "lifecycle_stage": "decline"},
                 {("care-call-valuable-medium-risk", "care_call", 3, 3.0),
                  ("decline-stage-valuable", "tailored_offer", 2, 7.0)},
                 id="decline-with-warning-tailored-offer"),
    pytest.param({"value_class": "high", "lifecycle_stage": "decline"}, set(),
                 id="decline-without-warning-nothing"),
    pytest.param({"value_class": "high", "industry": "government", "churn_band": "medium",
                  "churn_risk": 30.0},
                 {("leadership-vip-service", "vip_service", 2, 5.0),
                  ("care-call-valuable-medium-risk", "care_call", 3, 3.0)},
                 id="leadership-high-value-vip-service"),
    pytest.param({"industry": "tourism", "churn_band": "high", "churn_risk": 40.0,
                  "revenue_trend": -0.2},
                 {("cost-segment-price-offer", "tailored_offer", 3, 7.0)},
                 id="cost-segment-revenue-down-20pct"),
    pytest.param({"industry": "tourism", "churn_band": "high", "churn_risk": 40.0,
                  "revenue_trend": -0.19}, set(), id="cost-segment-revenue-down-19pct"),
    pytest.param({"value_class": "potential", "industry": "it", "churn_band": "high",
                  "churn_risk": 40.0},
                 {("potential-value-at-risk", "care_call", 2, 3.0),
                  ("it-price-performance-offer", "tailored_offer", 2, 5.0)},
                 id="it-offer-more-urgent-than-potential-offer"),
    pytest.param({"industry": "health", "churn_band": "high", "churn_risk": 40.0},
                 {("maintain-segment-care", "care_call", 3, 3.0)},
                 id="maintain-segment-care-call"),
    pytest.param({"value_class": "potential", "lifecycle_stage": "identification",
                  "new_services": 0},
                 {("experience-offer-potential", "experience_offer", 4, 14.0)},
                 id="potential-without-new-services-experience-offer"),
    pytest.param({"value_class": "potential", "lifecycle_stage": "development",
                  "new_services": 1}, set(), id="potential-with-new-services-nothing"),
]


@pytest.mark.parametrize(("signals", "expected"), CASES)
def test_decision_table(shipped, signals, expected):
    """The shipped rules decide exactly these (rule, action, priority, due) for these signals."""
    out = decide(accounts(signals), shipped)
    got = set(zip(out["rule_id"], out["action"], out["priority"], out["due_in_days"],
                  strict=True))
    assert got == expected
    assert list(out.columns) == DECISION_COLUMNS
    assert (out["why"] != "").all()
    assert (out["ruleset_version"] == shipped.version).all()


def test_decisions_carry_account_owner_and_factors(shipped):
    """A decision names the account, its manager, the owner role, the churn factors and why."""
    out = decide(accounts({"industry": "government", "sla_breaches_90d": 1.0}), shipped)
    row = out.iloc[0]
    assert (row["account_id"], row["account_name"], row["account_manager"],
            row["manager_email"], row["owner_role"]) == (
        "KA0000001", "深圳兴达基金管理有限公司", "王芳", "wang.fang@operator.example", "sla_team")
    assert row["churn_factors"] == "complaints"
    assert row["why"] == "segment=leadership (= leadership); sla_breaches_90d=1.0 (≥ 1)"


def test_decide_does_not_modify_its_input(shipped):
    """decide() returns a new frame and leaves the scored accounts untouched."""
    frame = accounts({"value_class": "high", "churn_band": "critical"}, {})
    before = frame.copy(deep=True)
    decide(frame, shipped)
    pd.testing.assert_frame_equal(frame, before)


def test_no_accounts_no_decisions(shipped):
    """An empty frame gives an empty decision frame with the decision columns."""
    out = decide(accounts().reindex(columns=list(HEALTHY)), shipped)
    assert out.empty and list(out.columns) == DECISION_COLUMNS


def test_missing_field_is_refused(shipped):
    """Scored accounts without a field the rules use are refused, naming the field."""
    with pytest.raises(ValueError, match="sla_breaches_90d"):
        decide(accounts({}).drop(columns="sla_breaches_90d"), shipped)


@pytest.mark.parametrize("field", ["days_to_contract_end", "complaints_90d", "value_class",
                                   "region"])
def test_missing_value_is_refused_even_when_it_shares_a_cell(shipped, field):
    """A NaN in a field the rules use is refused, even behind an account with a valid value."""
    frame = accounts({}, {}, {})
    if field == "region":
        shipped = _with_rule(shipped, {"region": "北京"})
    frame.loc[2, field] = np.nan
    with pytest.raises(ValueError, match=field):
        decide(frame, shipped)


def _with_rule(ruleset: RuleSet, when: dict) -> RuleSet:
    """The shipped rule set plus one rule testing `when`, loaded from a temp copy."""
    directory = Path(tempfile.mkdtemp(prefix="kamflow-rules-"))
    shutil.copytree(ruleset.directory, directory, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (directory / "extra.yaml").write_text(yaml.safe_dump({"rules": [
        {"id": "extra", "description": "test rule", "when": when, "then": ["care_call"]}]},
        allow_unicode=True), encoding="utf-8")
    return load_ruleset(directory)


# --------------------------------------------------------------------- 2. engine = reference

AS_OF = dt.date(2026, 11, 25)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    """100,000 generated accounts, joined and scored as the pipeline does (no bad rows)."""
    frames = make_snapshot(100_000, AS_OF, seed=23, bad_share=0.0)
    scored = score_accounts(build_customer_view(typed_tables(frames), AS_OF), load_scoring())
    assert len(scored) == 100_000
    return scored


def test_engine_equals_reference_on_100k_accounts(population, shipped):
    """decide() via durable-rules gives exactly the reference's decisions on 100,000 accounts."""
    out = decide(population, shipped)
    got = set(zip(out["account_id"], out["action"], out["rule_id"], out["priority"],
                  out["due_in_days"], out["cooldown_days"], strict=True))
    want = reference(population, shipped)
    assert len(got) == len(out), "one decision per (account, action)"
    assert got == want
    assert len(want) > 20_000, "the generated population should exercise most rules"
    assert set(out["rule_id"]) == {rule.id for rule in shipped.rules}
    assert (out["why"] != "").all()


def test_engine_loses_no_match_on_100k_facts(population, shipped):
    """Every account asserted one by one: durable-rules reports each rule the reference holds."""
    fields = list(shipped.fields)
    facts = population[fields].to_dict("records")
    for gid, fact in enumerate(facts):
        fact["gid"] = gid
    matched = np.zeros((len(shipped.rules), len(facts)), dtype=bool)
    position = {rule.id: i for i, rule in enumerate(shipped.rules)}
    for gid, rule_id in engine.match(shipped, facts):
        matched[position[rule_id], gid] = True
    expected = np.vstack([evaluate(rule.when, population) for rule in shipped.rules])
    lost = np.argwhere(expected & ~matched)
    extra = np.argwhere(matched & ~expected)
    assert not len(lost) and not len(extra), (lost[:5], extra[:5])


def test_few_representative_facts_stand_for_all_accounts(population, shipped):
    """The engine sees one fact per (rule, comparison pattern), not one per account, and the
    spread-back verdicts still equal the reference for every account."""
    asserted: list[int] = []

    def counting(ruleset, facts):
        facts = list(facts)
        asserted.append(len(facts))
        return engine.match(ruleset, facts)

    matched = match_rules(population, shipped, counting)
    expected = np.vstack([evaluate(rule.when, population) for rule in shipped.rules])
    assert np.array_equal(matched, expected)
    assert asserted and asserted[0] < 1_000, asserted


# Random rule sets: fields with every kind, thresholds (some awkward for a C JSON parser) and
# account values drawn from the thresholds themselves, their neighbours and anywhere in between.
THRESHOLDS: dict[str, list[float]] = {
    "churn_risk": [0.0, 20.0, 35.0, 54.9, 55.0, 100.0, 33.3],
    "revenue_trend": [-0.2, -0.15, 0.0, 0.05, -1e-05, 1e-05, 0.1],
    "complaints_90d": [0.0, 1.0, 3.0, 4.0],
    "days_to_contract_end": [-30.0, 0.0, 90.0, 180.0],
    "arrears_ratio": [0.0, 0.02, 0.2, 0.4],
    "employees": [1.0, 50.0, 1000.0, 1e16],
}
TEXTS: dict[str, tuple[str, ...]] = {
    "value_class": CATEGORIES["value_class"],  # type: ignore[dict-item]
    "churn_band": CATEGORIES["churn_band"],  # type: ignore[dict-item]
    "region": ("北京", "上海", "广东", "O'Neil \"HQ\"", ""),
}
ACTIONS_YAML = {
    "owners": ["account_manager", "sla_team"],
    "actions": {
        "call": {"title": "Call", "owner": "account_manager", "priority": 3, "due_in_days": 3,
                 "cooldown_days": 30},
        "visit": {"title": {"en": "Visit", "zh": "拜访"}, "owner": "account_manager",
                  "priority": 2, "due_in_days": 5, "cooldown_days": 30},
        "review": {"title": "Review", "owner": "sla_team", "priority": 1, "due_in_days": 1,
                   "cooldown_days": 14},
    },
}


@st.composite
def leaves_(draw: st.DrawFn) -> dict:
    field = draw(st.sampled_from([*THRESHOLDS, *TEXTS]))
    if field in TEXTS:
        values = TEXTS[field]
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in"]))
        if op in ("in", "not_in"):
            return {field: {op: draw(st.lists(st.sampled_from(values), min_size=1, max_size=3,
                                              unique=True))}}
        return {field: {op: draw(st.sampled_from(values))}}
    pool = st.sampled_from(THRESHOLDS[field])
    op = draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in",
                               "between"]))
    if op == "between":
        return {field: {op: sorted([draw(pool), draw(pool)])}}
    if op in ("in", "not_in"):
        return {field: {op: draw(st.lists(pool, min_size=1, max_size=3, unique=True))}}
    return {field: {op: draw(pool)}}


conditions_ = st.recursive(
    leaves_(),
    lambda inner: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda item: {"not": item}, inner)),
    max_leaves=7)


@st.composite
def rule_sets(draw: st.DrawFn) -> list[dict]:
    count = draw(st.integers(1, 5))
    ids = [f"rule-{i}" for i in range(count)]
    rules = []
    for rule_id in ids:
        then = []
        for action in draw(st.lists(st.sampled_from(list(ACTIONS_YAML["actions"])), min_size=1,
                                    max_size=2, unique=True)):
            item: dict[str, Any] = {"action": action}
            if draw(st.booleans()):
                item["priority"] = draw(st.integers(1, 4))
            if draw(st.booleans()):
                item["due_in_days"] = draw(st.sampled_from([1, 2, 7]))
            then.append(item)
        rule = {"id": rule_id, "description": {"en": "random rule", "zh": "随机规则"},
                "when": draw(conditions_), "then": then}
        # a rule suppresses only rules listed after it: a suppression cycle is refused when
        # the set loads (tests/test_misconfiguration.py), so a valid random set has none
        others = ids[ids.index(rule_id) + 1:]
        if others and draw(st.booleans()):
            rule["suppresses"] = draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
        rules.append(rule)
    return rules


def _number(field: str) -> st.SearchStrategy[float]:
    near = st.sampled_from(THRESHOLDS[field]).flatmap(lambda t: st.sampled_from(
        [t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), t + 0.05, t - 0.05]))
    anywhere = st.floats(-200, 200, allow_nan=False, allow_infinity=False)
    if field in ("employees", "complaints_90d"):
        anywhere = st.integers(0, 2000).map(float)
    return st.one_of(near, near, anywhere)


@st.composite
def account_frames(draw: st.DrawFn) -> pd.DataFrame:
    size = draw(st.integers(1, 25))
    columns = {field: draw(st.lists(_number(field), min_size=size, max_size=size))
               for field in THRESHOLDS}
    columns.update({field: draw(st.lists(st.sampled_from(values), min_size=size,
                                         max_size=size)) for field, values in TEXTS.items()})
    frame = accounts(*({} for _ in range(size)))
    for field, values in columns.items():
        frame[field] = values
    if draw(st.booleans()):
        frame["employees"] = frame["employees"].clip(0, 1e12).astype("int64")  # an int column
    return frame


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(rules=rule_sets(), frame=account_frames())
def test_random_rule_sets_engine_equals_reference(rules, frame):
    """Random rule sets and accounts (values at, beside and between thresholds): durable == ref."""
    with tempfile.TemporaryDirectory(prefix="kamflow-rules-") as directory:
        Path(directory, "actions.yaml").write_text(yaml.safe_dump(ACTIONS_YAML), encoding="utf-8")
        Path(directory, "random.yaml").write_text(
            yaml.safe_dump({"rules": rules}, allow_unicode=True, sort_keys=False),
            encoding="utf-8")
        try:
            ruleset = load_ruleset(directory)
        except ConfigError as error:
            assume("can never be true" not in str(error))
            raise
    for rule in ruleset.rules:
        truth = evaluate(rule.when, frame)
        assert (evaluate(nnf(rule.when), frame) == truth).all()
        assert (evaluate(nnf(rule.when, negate=True), frame) == ~truth).all()
    assert decided(frame, ruleset) == reference(frame, ruleset)
    facts = frame[list(ruleset.fields)].to_dict("records")
    for gid, fact in enumerate(facts):
        fact["gid"] = gid
    matches = set(engine.match(ruleset, facts))
    expected = {(gid, rule.id) for rule in ruleset.rules
                for gid in np.flatnonzero(evaluate(rule.when, frame))}
    assert matches == expected


def write_rule_set(directory: Path, files: dict[str, str],
                   actions: str | None = None) -> Path:
    """A rule set directory: the shipped actions.yaml (or `actions`) plus the given files."""
    directory.mkdir(parents=True, exist_ok=True)
    if actions is None:
        actions = (RULES_DIR / "actions.yaml").read_text(encoding="utf-8")
    (directory / "actions.yaml").write_text(actions, encoding="utf-8")
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def rules_yaml(*rules: dict) -> str:
    """Rules as the YAML a person would write (each `- id:` line starts a rule)."""
    return yaml.safe_dump({"rules": list(rules)}, allow_unicode=True, sort_keys=False)


def test_changed_rule_file_loads_without_restart(tmp_path):
    """Editing a threshold gives a new version that decides by the new rule; the old still works."""
    rule = {"id": "complaints", "description": "complaints", "when": {"complaints_90d":
                                                                      {"gte": 3}},
            "then": ["care_call"]}
    directory = write_rule_set(tmp_path / "rules", {"r.yaml": rules_yaml(rule)})
    before = load_ruleset(directory)
    frame = accounts({"complaints_90d": 3.0})
    assert decide(frame, before)["rule_id"].tolist() == ["complaints"]
    rule["when"] = {"complaints_90d": {"gte": 4}}
    (directory / "r.yaml").write_text(rules_yaml(rule), encoding="utf-8")
    after = load_ruleset(directory)
    assert after.version != before.version
    assert decide(frame, after).empty
    assert decide(frame, before)["rule_id"].tolist() == ["complaints"]
    assert decide(frame, load_ruleset(directory)).empty, "same content again: no re-definition"


def test_many_rule_sets_in_one_process(tmp_path):
    """Forty distinct rule sets, each loaded twice, all decide correctly in one process."""
    frame = accounts(*({"complaints_90d": float(n)} for n in range(45)))
    for threshold in range(40):
        rule = {"id": "many", "description": "d", "when": {"complaints_90d": {"gt": threshold}},
                "then": ["care_call"]}
        directory = write_rule_set(tmp_path / f"set{threshold}", {"r.yaml": rules_yaml(rule)})
        for _ in range(2):
            ruleset = load_ruleset(directory)
            assert len(decide(frame, ruleset)) == 44 - threshold


def test_numbers_the_engine_cannot_parse_still_compare_exactly(tmp_path):
    """Numbers durable-rules' JSON parser rejects (1e-05, 1e16, inf) still compare exactly."""
    rules = [
        {"id": "trend", "description": "d", "when": {"revenue_trend": {"gt": 0.00001}},
         "then": ["care_call"]},
        {"id": "huge", "description": "d",
         "when": {"employees": {"gte": 10_000_000_000_000_000}}, "then": ["manager_visit"]},
        {"id": "tiny", "description": "d", "when": {"arrears": {"lt": 0.00001}},
         "then": ["payment_reminder"]},
    ]
    ruleset = load_ruleset(write_rule_set(tmp_path / "rules", {"r.yaml": rules_yaml(*rules)}))
    frame = accounts(
        {"revenue_trend": 1e-05, "employees": 10**16, "arrears": 1e-05},
        {"revenue_trend": 2e-05, "employees": 10**15, "arrears": 5e-324},
        {"revenue_trend": float("inf"), "employees": 1, "arrears": float("inf")},
        {"revenue_trend": -float("inf"), "employees": 2**62, "arrears": -float("inf")})
    got = {(account, rule) for account, _, rule, *_ in decided(frame, ruleset)}
    assert got == {("KA0000001", "huge"), ("KA0000002", "trend"), ("KA0000002", "tiny"),
                   ("KA0000003", "trend"), ("KA0000004", "huge"), ("KA0000004", "tiny")}
    assert decided(frame, ruleset) == reference(frame, ruleset)


def test_more_rules_hold_than_the_engine_can_hold_at_once(tmp_path):
    """Seventy rules holding for one account (durable-rules overflows at 64) all fire."""
    rules = [{"id": f"rule-{i:02d}", "description": "d",
              "when": {"all": [{"churn_risk": {"gte": i}}, {"region": {"in": ["广东", "北京"]}}]},
              "then": [{"action": "care_call", "priority": 1 + i % 4}]} for i in range(70)]
    ruleset = load_ruleset(write_rule_set(tmp_path / "rules", {"r.yaml": rules_yaml(*rules)}))
    frame = accounts({"churn_risk": 99.0}, {"churn_risk": 30.0}, {"churn_risk": 69.5})
    facts = [dict(frame.loc[i, list(ruleset.fields)], gid=i) for i in range(len(frame))]
    got = {(gid, rule_id) for gid, rule_id in engine.match(ruleset, facts)}
    assert got == {(0, f"rule-{i:02d}") for i in range(70)} | {
        (1, f"rule-{i:02d}") for i in range(31)} | {(2, f"rule-{i:02d}") for i in range(70)}
    assert decided(frame, ruleset) == reference(frame, ruleset)


def test_rule_too_wide_for_the_engine_is_named(tmp_path):
    """A rule with more than 64 `any` branches holding at once fails naming file, line, rule."""
    wide = {"id": "wide", "description": "d",
            "when": {"any": [{"churn_risk": {"gte": i}} for i in range(70)]},
            "then": ["care_call"]}
    ruleset = load_ruleset(write_rule_set(tmp_path / "rules", {"r.yaml": rules_yaml(wide)}))
    assert not decide(accounts({"churn_risk": 10.0}), ruleset).empty
    with pytest.raises(ConfigError, match=r"r\.yaml:2, rule 'wide': more than 64"):
        decide(accounts({"churn_risk": 99.0}), ruleset)


def test_rule_too_complex_to_compile_is_refused_at_load(tmp_path):
    """A condition nested 16 groups deep (more than durable-rules compiles) fails at load."""
    when: dict = {"churn_risk": {"gte": 1}}
    for depth in range(16):
        when = {"any" if depth % 2 else "all": [when, {"churn_risk": {"ne": depth + 50}}]}
    deep = {"id": "deep", "description": "d", "when": when, "then": ["care_call"]}
    fine = {"id": "fine", "description": "d", "when": {"churn_band": "high"},
            "then": ["care_call"]}
    directory = write_rule_set(tmp_path / "rules", {"r.yaml": rules_yaml(fine, deep)})
    with pytest.raises(ConfigError) as caught:
        load_ruleset(directory)
    message = str(caught.value)
    line = next(i for i, text in enumerate((directory / "r.yaml").read_text().splitlines(), 1)
                if "id: deep" in text)
    assert f"r.yaml:{line}, rule 'deep': the rules engine cannot compile" in message
    assert "has 1 problem(s)" in message


# ----------------------------------------------------------------------------- 3. checking

BROKEN_TEMPLATE = """\
rules:
  - id: valid-rule
    description: A valid rule.
    when: {churn_band: high}
    then: [care_call]

  - id: broken
    description: The rule under test.
"""  # the broken rule starts on line 7

CHECKS = [
    # (the broken rule's remaining lines, what the problem says)
    pytest.param("when: {churn_band: high}\nthen: [care_call]\npriority: 1",
                 r"unknown field 'priority'; allowed: id, description, kind, when, then, "
                 r"suppresses",
                 id="unknown-rule-field"),
    pytest.param("when: {churn_score: {gt: 50}}\nthen: [care_call]",
                 r"unknown field 'churn_score'; known fields: value_class", id="unknown-field"),
    pytest.param("when: {churn_risk: {above: 50}}\nthen: [care_call]",
                 r"field 'churn_risk': unknown operator 'above'; known: eq, ne, lt",
                 id="unknown-operator"),
    pytest.param("when: {churn_risk: {gt: high}}\nthen: [care_call]",
                 r"field 'churn_risk' is a number: 'high' is not", id="text-for-number"),
    pytest.param("when: {days_to_contract_end: {between: [0, ninety]}}\nthen: [care_call]",
                 r"field 'days_to_contract_end' is a number: 'ninety' is not",
                 id="text-in-between"),
    pytest.param("when: {value_class: {in: [high, 1]}}\nthen: [care_call]",
                 r"field 'value_class': 1 must be text", id="number-for-category"),
    pytest.param("when: {churn_band: severe}\nthen: [care_call]",
                 r"field 'churn_band': unknown value 'severe'; known: low, medium, high, "
                 r"critical", id="unknown-category-value"),
    pytest.param("when: {value_class: {gt: high}}\nthen: [care_call]",
                 r"field 'value_class' is a category: use eq, ne, in or not_in, not 'gt'",
                 id="order-on-category"),
    pytest.param("when: {churn_band: high}\nthen: [send_flowers]",
                 r"unknown action 'send_flowers'; known: account_plan_review, care_call",
                 id="unknown-action"),
    pytest.param("when: {churn_band: high}\nthen: [{action: care_call, owner: ceo}]",
                 r"unknown field 'owner' in 'then'", id="unknown-then-field"),
    pytest.param("when: {churn_band: high}\nthen: [{action: care_call, due_in_days: -1}]",
                 r"must be non-negative numbers", id="negative-deadline"),
    pytest.param("when: {churn_band: high}\nthen: []",
                 r"'then' must list at least one action", id="no-action"),
    pytest.param("when: {churn_risk: {between: [5, 1]}}\nthen: [care_call]",
                 r"field 'churn_risk': between \[5, 1\] is empty \(low > high\)",
                 id="between-reversed"),
    pytest.param("when: {churn_risk: {between: [5]}}\nthen: [care_call]",
                 r"'between' needs \[low, high\]", id="between-one-value"),
    pytest.param("when: {value_class: {in: high}}\nthen: [care_call]",
                 r"'in' needs a list, not 'high'", id="in-without-list"),
    pytest.param("when: {churn_risk: {gt: 1, lt: 5}}\nthen: [care_call]",
                 r"give exactly one operator", id="two-operators"),
    pytest.param("when:\n  all:\n    - churn_risk: {gt: 50}\n    - churn_risk: {lt: 40}\n"
                 "then: [care_call]",
                 r"condition can never be true: 'churn_risk' cannot be both above 50.0 and "
                 r"below 40.0", id="contradictory-numbers"),
    pytest.param("when:\n  all:\n    - churn_risk: {gt: 50}\n    - churn_risk: {lte: 50}\n"
                 "then: [care_call]",
                 r"condition can never be true", id="contradictory-touching-bounds"),
    pytest.param("when:\n  all:\n    - value_class: high\n    - value_class: low\n"
                 "then: [care_call]",
                 r"condition can never be true: no value of 'value_class' satisfies all",
                 id="contradictory-categories"),
    pytest.param("when:\n  all:\n    - churn_band: {in: [high, critical]}\n"
                 "    - churn_band: {not_in: [high, critical]}\nthen: [care_call]",
                 r"condition can never be true: no value of 'churn_band'",
                 id="contradictory-in-and-not-in"),
    pytest.param("when: {any: []}\nthen: [care_call]", r"'any' needs a non-empty list",
                 id="empty-any"),
    pytest.param("then: [care_call]", r"has no 'when' condition", id="no-when"),
    pytest.param("when: {churn_band: high}\nthen: [care_call]\nsuppresses: [no-such-rule]",
                 r"suppresses unknown rule 'no-such-rule'", id="suppresses-unknown-rule"),
    pytest.param("when: {churn_band: high}\nthen: [care_call]\nsuppresses: [broken]",
                 r"a rule cannot suppress itself", id="suppresses-itself"),
]


def problems_of(directory: Path) -> list[str]:
    """The problem lines of the ConfigError that loading `directory` raises."""
    with pytest.raises(ConfigError) as caught:
        load_ruleset(directory)
    head, *problems = str(caught.value).splitlines()
    assert head.startswith(f"rule set {directory} has {len(problems)} problem(s):")
    return [problem.strip() for problem in problems]


@pytest.mark.parametrize(("lines", "problem"), CHECKS)
def test_a_broken_rule_is_refused_with_file_line_and_rule_id(tmp_path, lines, problem):
    """Loading refuses the broken rule, naming its file, line and id, and only that rule."""
    text = BROKEN_TEMPLATE + "".join(f"    {line}\n" for line in lines.splitlines())
    directory = write_rule_set(tmp_path, {"retention.yaml": text})
    [found] = problems_of(directory)
    assert found.startswith("retention.yaml:7, rule 'broken': "), found
    assert re.search(problem, found), found


def test_a_rule_without_description_is_refused(tmp_path):
    """A rule must say what it does (in English at least)."""
    text = "rules:\n  - id: silent\n    when: {churn_band: high}\n    then: [care_call]\n"
    [found] = problems_of(write_rule_set(tmp_path, {"retention.yaml": text}))
    assert found == "retention.yaml:2, rule 'silent': needs a description (at least 'en')"


def test_edge_touching_bounds_are_not_a_contradiction(tmp_path):
    """gte 50 together with lte 50 (exactly 50) is a valid condition."""
    text = BROKEN_TEMPLATE + ("    when:\n      all:\n        - churn_risk: {gte: 50}\n"
                              "        - churn_risk: {lte: 50}\n    then: [care_call]\n")
    ruleset = load_ruleset(write_rule_set(tmp_path, {"retention.yaml": text}))
    assert decided(accounts({"churn_risk": 50.0}), ruleset) == {
        ("KA0000001", "care_call", "broken", 3, 3.0, 30.0)}


def test_duplicate_rule_ids_name_both_places(tmp_path):
    """A rule id used twice is refused at the second place, naming the first."""
    rule = ("  - id: twice\n    description: d\n    when: {churn_band: high}\n"
            "    then: [care_call]\n")
    directory = write_rule_set(tmp_path, {"a.yaml": "rules:\n" + rule,
                                          "b.yaml": "# second file\nrules:\n" + rule + rule})
    assert problems_of(directory) == [
        "b.yaml:3, rule 'twice': duplicate rule id (first defined at a.yaml:2)",
        "b.yaml:7, rule 'twice': duplicate rule id (first defined at a.yaml:2)"]


def test_invalid_yaml_names_file_and_line(tmp_path):
    """A file that is not YAML is refused with its name and the line of the error."""
    text = "rules:\n  - id: bad\n    when: {churn_band: high\n    then: [care_call]\n"
    [found] = problems_of(write_rule_set(tmp_path, {"retention.yaml": text}))
    assert re.fullmatch(r"retention\.yaml:[34]: not valid YAML: .+", found), found


def test_every_problem_is_reported_at_once(tmp_path):
    """All problems of all files are listed together, not just the first."""
    text = BROKEN_TEMPLATE + "    when: {churn_band: severe}\n    then: [send_flowers]\n"
    other = "rules:\n  - id: other\n    description: d\n    when: {churn_rsk: 1}\n" \
            "    then: [care_call]\n"
    found = problems_of(write_rule_set(tmp_path, {"retention.yaml": text, "z.yaml": other}))
    assert [p.split(": ")[0] for p in found] == [
        "retention.yaml:7, rule 'broken'", "retention.yaml:7, rule 'broken'",
        "z.yaml:2, rule 'other'"]


def _shipped_actions_with(old: str, new: str) -> tuple[str, int]:
    """The shipped actions.yaml with `old` replaced, and the line of the action it is in."""
    text = (RULES_DIR / "actions.yaml").read_text(encoding="utf-8")
    assert old in text
    lines = text[:text.index(old)].splitlines()
    action_line = max(i for i, line in enumerate(lines, 1) if re.fullmatch(r"  \w+:", line))
    return text.replace(old, new, 1), action_line


@pytest.mark.parametrize(("old", "new", "problem"), [
    pytest.param("owner: sla_team", "owner: network_ops",
                 "action 'sla_review': unknown owner role 'network_ops'; known: "
                 "account_manager, key_account_department, sla_team", id="unknown-owner"),
    pytest.param("    cooldown_days: 14\n", "    cooldown_days: 14\n    colour: red\n",
                 "action 'escalate_to_key_account': unknown field 'colour'",
                 id="unknown-action-field"),
    pytest.param("    due_in_days: 7\n    cooldown_days: 60\n", "    cooldown_days: 60\n",
                 "action 'tailored_offer': missing due_in_days", id="missing-action-field"),
    pytest.param("priority: 4", "priority: urgent",
                 "action 'new_service_pitch': priority, due_in_days and cooldown_days must be "
                 "non-negative numbers", id="text-priority"),
])
def test_a_broken_action_is_refused_with_file_and_line(tmp_path, old, new, problem):
    """actions.yaml problems name the file, the action's line and the action."""
    actions, line = _shipped_actions_with(old, new)
    rule = "rules:\n  - id: r\n    description: d\n    when: {churn_band: high}\n" \
           "    then: [care_call]\n"
    found = problems_of(write_rule_set(tmp_path, {"r.yaml": rule}, actions=actions))
    assert f"actions.yaml:{line}: {problem}" in [p[:len(f"actions.yaml:{line}: {problem}")]
                                                 for p in found], found


def test_a_rule_set_needs_actions_and_rules(tmp_path):
    """A directory without actions.yaml, or without any rule file, is refused."""
    (tmp_path / "r.yaml").write_text("rules: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="actions.yaml is missing"):
        load_ruleset(tmp_path)
    (tmp_path / "r.yaml").unlink()
    write_rule_set(tmp_path, {})
    with pytest.raises(ConfigError, match=r"no rule files \(\*\.yaml besides actions\.yaml\)"):
        load_ruleset(tmp_path)


def test_the_shipped_rule_set_is_valid_and_points_at_its_lines(shipped):
    """The shipped rules load; each rule's file:line is its `- id:` line."""
    assert len(shipped.rules) == 24 and len(shipped.actions) == 12
    assert set(shipped.fields) <= set(CATEGORIES) | set(NUMBERS)
    for rule in shipped.rules:
        text = (RULES_DIR / rule.file).read_text(encoding="utf-8").splitlines()
        assert text[rule.line - 1].strip() == f"- id: {rule.id}"
        assert rule.description_en and rule.description_zh


def test_version_is_a_content_hash(tmp_path):
    """The version is stable for the same files (wherever they are) and changes with any edit."""
    first = tmp_path / "a"
    shutil.copytree(RULES_DIR, first, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    second = tmp_path / "b"
    shutil.copytree(first, second)
    version = load_ruleset(first).version
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    assert load_ruleset(first).version == version == load_ruleset(second).version
    assert load_ruleset(RULES_DIR).version == version
    os.utime(second / "retention.yaml", (0, 0))
    assert load_ruleset(second).version == version, "a touched file is the same content"
    with (second / "retention.yaml").open("a", encoding="utf-8") as handle:
        handle.write("# a comment\n")
    edited = load_ruleset(second).version
    assert edited != version
    (second / "actions.yaml").write_text(
        (first / "actions.yaml").read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert load_ruleset(second).version not in (version, edited)
    shutil.copy(first / "segments.yaml", first / "zz-more.yaml")
    with pytest.raises(ConfigError, match="duplicate rule id"):
        load_ruleset(first)


# -------------------------------------------------------------------------- 4. explanations

ROWS = pd.DataFrame({
    "churn_risk": [61.2, 12.0, 91.5, 50.0],
    "value_class": ["high", "secondary", "low", "potential"],
    "churn_band": ["critical", "medium", "low", "high"],
    "complaints_90d": [4.0, 0.0, 3.0, 1.0],
    "sla_breaches_90d": [0.0, 2.0, 5.0, 0.0],
    "days_to_contract_end": [-5.0, 30.0, 400.0, 90.0],
})


def leaf(field: str, op: str, value: Any) -> Leaf:
    return Leaf(field, op, value)


@pytest.mark.parametrize(("condition", "expected"), [
    pytest.param(Node("all", (leaf("churn_risk", "gte", 55.0),
                              leaf("value_class", "in", ("high", "secondary")))),
                 ["churn_risk=61.2 (≥ 55); value_class=high (in [high, secondary])", "", "", ""],
                 id="all-lists-every-leaf"),
    pytest.param(Node("any", (leaf("complaints_90d", "gte", 3.0),
                              leaf("sla_breaches_90d", "gte", 2.0))),
                 ["complaints_90d=4.0 (≥ 3)", "sla_breaches_90d=2.0 (≥ 2)",
                  "complaints_90d=3.0 (≥ 3); sla_breaches_90d=5.0 (≥ 2)", ""],
                 id="any-lists-only-matched-branches"),
    pytest.param(Node("all", (leaf("churn_band", "ne", "low"),
                              Node("any", (leaf("complaints_90d", "gte", 3.0),
                                           Node("all", (leaf("churn_risk", "lt", 20.0),
                                                        leaf("sla_breaches_90d", "gt", 0.0))))))),
                 ["churn_band=critical (≠ low); complaints_90d=4.0 (≥ 3)",
                  "churn_band=medium (≠ low); churn_risk=12.0 (< 20); "
                  "sla_breaches_90d=2.0 (> 0)", "", ""],
                 id="nested-any-in-all"),
    pytest.param(Node("not", (leaf("churn_band", "eq", "low"),)),
                 ["churn_band=critical (≠ low)", "churn_band=medium (≠ low)", "",
                  "churn_band=high (≠ low)"], id="not-eq"),
    pytest.param(Node("not", (leaf("churn_risk", "between", (20.0, 80.0)),)),
                 ["", "churn_risk=12.0 (< 20)", "churn_risk=91.5 (> 80)", ""],
                 id="not-between"),
    pytest.param(Node("not", (leaf("value_class", "in", ("high", "secondary")),)),
                 ["", "", "value_class=low (not in [high, secondary])",
                  "value_class=potential (not in [high, secondary])"], id="not-in"),
    pytest.param(Node("not", (Node("any", (leaf("complaints_90d", "gt", 0.0),
                                           leaf("sla_breaches_90d", "gt", 0.0))),)),
                 ["", "", "", ""], id="not-any-none"),
    pytest.param(Node("not", (Node("all", (leaf("days_to_contract_end", "gte", 0.0),
                                           leaf("churn_risk", "lte", 55.0))),)),
                 ["days_to_contract_end=-5.0 (< 0); churn_risk=61.2 (> 55)", "",
                  "churn_risk=91.5 (> 55)", ""], id="not-all-de-morgan"),
    pytest.param(Node("not", (Node("not", (leaf("days_to_contract_end", "between",
                                                (0.0, 90.0)),)),)),
                 ["", "days_to_contract_end=30.0 (between [0, 90])", "",
                  "days_to_contract_end=90.0 (between [0, 90])"], id="double-not"),
])
def test_why_lists_the_matched_leaves_with_the_accounts_values(condition, expected):
    """The explanation lists each leaf that made the rule hold, with the account's value."""
    assert explain(condition, ROWS).tolist() == expected
    assert ((explain(condition, ROWS) != "") == evaluate(condition, ROWS)).all()


@pytest.mark.parametrize(("op", "negated"), [
    ("eq", "ne"), ("ne", "eq"), ("lt", "gte"), ("lte", "gt"), ("gt", "lte"), ("gte", "lt"),
    ("in", "not_in"), ("not_in", "in")])
def test_nnf_negates_each_operator(op, negated):
    """not(field op v) becomes field negated-op v."""
    value = (1.0, 2.0) if op in ("in", "not_in") else 1.0
    assert nnf(Node("not", (leaf("churn_risk", op, value),))) == leaf("churn_risk", negated,
                                                                      value)


def test_nnf_pushes_not_through_groups():
    """not(between) is an any of lt/gt; De Morgan swaps all and any; not(not(x)) is x."""
    a, b = leaf("churn_risk", "gte", 55.0), leaf("value_class", "eq", "high")
    assert nnf(Node("not", (leaf("churn_risk", "between", (20.0, 80.0)),))) == Node(
        "any", (leaf("churn_risk", "lt", 20.0), leaf("churn_risk", "gt", 80.0)))
    assert nnf(Node("not", (Node("all", (a, b)),))) == Node(
        "any", (leaf("churn_risk", "lt", 55.0), leaf("value_class", "ne", "high")))
    assert nnf(Node("not", (Node("any", (a, b)),))) == Node(
        "all", (leaf("churn_risk", "lt", 55.0), leaf("value_class", "ne", "high")))
    assert nnf(Node("not", (Node("not", (a,)),))) == a
    assert nnf(Node("all", (a, Node("any", (b,))))) == Node("all", (a, Node("any", (b,))))


def test_decision_why_for_a_negated_condition(shipped):
    """The shipped decline rule's `not: {churn_band: low}` is explained as `≠ low`."""
    out = decide(accounts({"value_class": "secondary", "lifecycle_stage": "decline",
                           "churn_band": "medium", "churn_risk": 21.0}), shipped)
    why = out.set_index("rule_id").loc["decline-stage-valuable", "why"]
    assert why == ("lifecycle_stage=decline (= decline); value_class=secondary "
                   "(in [high, secondary]); churn_band=medium (≠ low)")


# ------------------------------------------------------------------- 5. kamflow rules check

def kamflow_rules_check(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the installed `kamflow rules check` as an operator would."""
    env = {**os.environ, "KAMFLOW_HOME": str(tmp_path / "home")}
    return subprocess.run([str(KAMFLOW), "rules", "check", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_check_accepts_the_shipped_rules(tmp_path, shipped):
    """`kamflow rules check` (default and explicit directory) exits 0 and says valid."""
    for args in ((), (str(RULES_DIR),)):
        result = kamflow_rules_check(*args, tmp_path=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "is valid: 24 rules" in result.stdout
        assert f"version {shipped.version}" in result.stdout


def test_cli_check_names_file_line_and_rule_of_a_broken_copy(tmp_path):
    """A broken copy exits non-zero with file:line and rule id, and no traceback."""
    copy = tmp_path / "rules"
    shutil.copytree(RULES_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = (copy / "retention.yaml").read_text(encoding="utf-8")
    (copy / "retention.yaml").write_text(
        text.replace("- churn_band: critical", "- churn_band: severe", 1), encoding="utf-8")
    line = text.splitlines().index("  - id: escalate-valuable-critical") + 1
    result = kamflow_rules_check(str(copy), tmp_path=tmp_path)
    assert result.returncode != 0
    assert (f"retention.yaml:{line}, rule 'escalate-valuable-critical': field 'churn_band': "
            "unknown value 'severe'") in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("damage", ["invalid-yaml", "missing-directory"])
def test_cli_check_fails_cleanly(tmp_path, damage):
    """Unreadable YAML or a missing directory: non-zero exit, a message, no traceback."""
    copy = tmp_path / "rules"
    if damage == "invalid-yaml":
        shutil.copytree(RULES_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        (copy / "segments.yaml").write_text("rules:\n  - id: [unclosed\n", encoding="utf-8")
    result = kamflow_rules_check(str(copy), tmp_path=tmp_path)
    assert result.returncode != 0
    assert ("segments.yaml:" if damage == "invalid-yaml" else "actions.yaml is missing") \
        in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_broken_rule_is_not_also_reported_as_unknown(tmp_path):
    """Suppressing a rule that has problems of its own reports only that rule's problem."""
    text = BROKEN_TEMPLATE.replace("when: {churn_band: high}\n    then: [care_call]\n",
                                   "when: {churn_band: high}\n    then: [care_call]\n"
                                   "    suppresses: [broken]\n") + \
        "    when: {churn_band: severe}\n    then: [care_call]\n"
    [found] = problems_of(write_rule_set(tmp_path, {"retention.yaml": text}))
    assert found.startswith("retention.yaml:8, rule 'broken': field 'churn_band': unknown value")


def test_action_email_mode_is_checked(tmp_path):
    """An action's `email` must be digest or own; the shipped escalation has an email of its own."""
    shipped = load_ruleset(RULES_DIR)
    assert shipped.actions["escalate_to_key_account"].email == "own"
    assert shipped.actions["care_call"].email == "digest"
    broken = tmp_path / "rules"
    shutil.copytree(RULES_DIR, broken, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    actions = broken / "actions.yaml"
    actions.write_text(actions.read_text(encoding="utf-8").replace("email: own", "email: now"),
                       encoding="utf-8")
    with pytest.raises(ConfigError, match="email must be one of digest, own"):
        load_ruleset(broken)
