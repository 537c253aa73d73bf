"""Issue 24: the worklist spends the managers' hours where they keep the most revenue.

Each decision is appraised (worklist/worth.py, conf/effects.yaml): its effort in hours, its
expected net revenue kept a year and per hour; release fills each owner's hours best first,
must-do work first; a decision whose expected effect is negative is withheld."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from kamflow import config
from kamflow.core.errors import ConfigError
from kamflow.flows.delivery import dispatch
from kamflow.worklist import Owner, OwnerDirectory, Task, TaskStore
from kamflow.worklist.capacity import Capacity, allocate, ranked
from kamflow.worklist.worth import ActionBelief, Beliefs, Effect, appraise, shrink
from tests.test_capacity import KA, NOW, TITLES, WANG, decisions

BELIEFS = Beliefs({
    "care_call": ActionBelief(0.5, Effect(0.10, 0.02, 0.2)),
    "manager_visit": ActionBelief(3.0, Effect(0.20), cost_cny=200.0),
    "tailored_offer": ActionBelief(1.5, Effect(0.30), cost_share=0.02,
                                   by_value_class={"low": Effect(-0.05)}),
    "escalate_to_key_account": ActionBelief(1.0, Effect(0.2)),
}, must_do=frozenset({"escalate_to_key_account"}))


def test_expected_net_revenue_kept_per_hour_by_hand() -> None:
    """A care call on 1,000 CNY/month at risk keeps 1,000 x 12 x 0.10 = 1,200 CNY a year in
    half an hour: 2,400 per hour. A visit on 2,000 at risk keeps 2,000 x 12 x 0.20 - 200 =
    4,600 in three hours: 1,533.33 per hour, so the call ranks first though it keeps less."""
    frame = decisions([("A1", "care_call", 3, 1000.0), ("A2", "manager_visit", 2, 2000.0)])
    appraised = appraise(frame, BELIEFS).kept.set_index("account_id")
    assert appraised.loc["A1", "expected_retained_cny_yearly"] == 1200.0
    assert appraised.loc["A1", "net_per_hour"] == pytest.approx(2400.0)
    assert appraised.loc["A2", "expected_retained_cny_yearly"] == 4600.0
    assert appraised.loc["A2", "net_per_hour"] == pytest.approx(4600.0 / 3)
    assert set(appraised["effect_source"]) == {"prior"}
    order = ranked(appraised.reset_index(), "net_per_hour")
    assert appraised.reset_index()["account_id"].to_numpy()[order].tolist() == ["A1", "A2"]
    # the previous order put the visit (priority 2) first
    previous = ranked(appraised.reset_index(), "value_at_risk")
    assert appraised.reset_index()["account_id"].to_numpy()[previous].tolist() == ["A2", "A1"]


def test_an_offer_pays_its_discount() -> None:
    """An offer's cost is 2 % of the account's yearly revenue: on 10,000 CNY/month billed and
    500 at risk it keeps 500 x 12 x 0.3 - 0.02 x 120,000 = -600: a loss, withheld with that
    reason (withhold_losses); with withholding off it is raised and ranked last."""
    frame = decisions([("A1", "tailored_offer", 3, 500.0), ("A2", "care_call", 3, 10.0)])
    frame["monthly_revenue"] = [10_000.0, 100.0]
    appraisal = appraise(frame, BELIEFS)
    assert appraisal.kept["account_id"].tolist() == ["A2"]
    assert appraisal.withheld["account_id"].tolist() == ["A1"]
    assert appraisal.withheld["expected_retained_cny_yearly"].tolist() == [-600.0]
    assert "net revenue negative" in appraisal.withheld["withheld_why"].iloc[0]
    assert appraisal.withheld_by_action == {"tailored_offer": 1}
    appraised = appraise(frame, replace(BELIEFS, withhold_losses=False)).kept
    assert appraised.set_index("account_id").loc["A1", "expected_retained_cny_yearly"] == -600.0
    order = ranked(appraised, "net_per_hour")
    assert appraised["account_id"].to_numpy()[order].tolist() == ["A2", "A1"]
    # must-do work is never withheld, whatever it is expected to keep
    must = decisions([("A3", "escalate_to_key_account", 1, 0.0)])
    assert appraise(must, replace(BELIEFS, actions={
        **BELIEFS.actions, "escalate_to_key_account": ActionBelief(1.0, Effect(0.2),
                                                                   cost_cny=500.0)})
                    ).kept["account_id"].tolist() == ["A3"]


def test_sleeping_dogs_are_withheld_and_counted() -> None:
    """A low-value account's offer has a negative expected effect: not raised, counted."""
    frame = decisions([("A1", "tailored_offer", 3, 500.0), ("A2", "tailored_offer", 3, 500.0)])
    frame["value_class"] = ["low", "high"]
    appraisal = appraise(frame, BELIEFS)
    assert appraisal.kept["account_id"].tolist() == ["A2"]
    assert appraisal.withheld["account_id"].tolist() == ["A1"]
    assert appraisal.withheld_by_action == {"tailored_offer": 1}
    assert "negative" in appraisal.withheld["withheld_why"].iloc[0]


def test_must_do_work_keeps_its_place_whatever_it_scores() -> None:
    """An escalation worth nothing still ranks before a care call worth much."""
    frame = decisions([("A1", "care_call", 3, 50_000.0), ("A2", "escalate_to_key_account", 1,
                                                           0.0)])
    appraised = appraise(frame, BELIEFS).kept
    assert appraised.set_index("account_id").loc["A2", "must_do"]
    order = ranked(appraised, "net_per_hour")
    assert appraised["account_id"].to_numpy()[order].tolist() == ["A2", "A1"]


def test_release_fills_the_hours_best_first() -> None:
    """3.5 hours: the best, a 3-hour visit, then the half-hour call fits; the 1.5-hour offer
    that ranks between them does not (passed over, not the end of the day)."""
    frame = pd.DataFrame({
        "owner_email": [WANG] * 4, "owner_role": ["account_manager"] * 4,
        "priority": [3] * 4, "account_id": ["A1", "A2", "A3", "A4"],
        "effort_hours": [3.0, 1.5, 0.5, 0.5], "net_per_hour": [900.0, 800.0, 700.0, 600.0]})
    released = allocate(frame, lambda e, r: Capacity(8, 30, 3.5), {}, {})
    assert released.tolist() == [True, False, True, False]
    # hours already released today count: 3 of 3.5 gone leaves room for one half-hour call
    released = allocate(frame, lambda e, r: Capacity(8, 30, 3.5), {}, {},
                        hours_today={WANG: 3.0})
    assert released.tolist() == [False, False, True, False]
    # the task count still caps: two a day
    released = allocate(frame, lambda e, r: Capacity(2, 30, 10.0), {}, {})
    assert released.tolist() == [True, True, False, False]


def test_urgent_work_counts_against_the_hours_and_is_always_released() -> None:
    frame = pd.DataFrame({
        "owner_email": [WANG] * 3, "owner_role": ["account_manager"] * 3,
        "priority": [1, 3, 3], "account_id": ["U", "A", "B"], "urgent": [True, False, False],
        "effort_hours": [3.0, 1.0, 0.5], "net_per_hour": [0.0, 900.0, 800.0]})
    released = allocate(frame, lambda e, r: Capacity(8, 30, 2.0), {}, {})
    assert released.tolist() == [True, False, False]


def test_shrinkage_moves_the_prior_by_the_evidence() -> None:
    prior = Effect(0.20, 0.10, 0.30)
    assert shrink(prior, 0.0, 0, 2000).relative == 0.20
    half = shrink(prior, 0.0, 2000, 2000)
    assert half.relative == pytest.approx(0.10)
    assert half.low == pytest.approx(0.05) and half.high == pytest.approx(0.15)
    def row(action: str, treated: int, held: int, effect_pp: float) -> dict:
        return {"action": action, "segment": "all", "treated": treated, "held_out": held,
                "churn_held_out": 0.05, "effect_pp": effect_pp}

    measured = BELIEFS.measured([row("care_call", 1000, 1000, 1.0),
                                 row("manager_visit", 1000, 1000, 2.0)])
    # the call: 1 point of 5 % = 0.2 relative; its sampling variance is the difference's (5 %
    # of 1,000 held out, 4 % of 1,000 treated) over 5 % squared; the prior states a range
    # (0.02-0.20, read as a 95 % interval), whose variance weighs against it
    noise = (0.05 * 0.95 / 1000 + 0.04 * 0.96 / 1000) / 0.05 ** 2
    spread = (0.18 / 3.92) ** 2
    assert measured.actions["care_call"].effect.relative == pytest.approx(
        0.10 + spread / (spread + noise) * (0.20 - 0.10))
    assert measured.actions["care_call"].measured_n["all"] == 2000
    # the visit: 2 points = 0.4 relative; its prior (0.20) has no range, so it counts as a
    # balanced experiment of prior_strength (2,000) decisions: about halfway
    noise = (0.05 * 0.95 / 1000 + 0.03 * 0.97 / 1000) / 0.05 ** 2
    spread = 4 * 0.95 / (0.05 * 2000)
    w = spread / (spread + noise)
    assert 0.45 < w < 0.6
    visit = measured.actions["manager_visit"].effect.relative
    assert visit == pytest.approx(0.20 + w * (0.40 - 0.20))
    # as many decisions with a small control group are less evidence: 4 / (1/1900 + 1/100)
    lopsided = BELIEFS.measured([row("manager_visit", 1900, 100, 2.0)])
    assert lopsided.actions["manager_visit"].measured_n["all"] == 380
    assert 0.20 < lopsided.actions["manager_visit"].effect.relative < visit
    frame = appraise(decisions([("A1", "care_call", 3, 100.0)]), measured).kept
    assert frame["effect_source"].tolist() == ["measured n=2000"]


def test_the_shipped_effects_file_loads_and_bad_values_name_the_key(tmp_path: Path) -> None:
    beliefs = config.load_effects()
    assert beliefs is not None
    assert beliefs.actions["care_call"].effort_hours == 0.5
    assert beliefs.actions["manager_visit"].effort_hours == 3.0
    assert {"escalate_to_key_account", "complaint_follow_up", "sla_review"} <= beliefs.must_do
    # every action of the shipped rules has a belief
    from kamflow.rules import RULES_DIR, load_ruleset
    assert set(load_ruleset(RULES_DIR).actions) <= set(beliefs.actions)
    bad = tmp_path / "effects.yaml"
    bad.write_text("actions:\n  care_call:\n    effort_hours: 0\n    effect: {relative: 0.1}\n",
                   encoding="utf-8")
    with pytest.raises(ConfigError, match="effort_hours"):
        config.load_effects(bad)
    bad.write_text("actions:\n  care_call:\n    effort_hours: 1\n"
                   "    effect: {relative: 0.1, low: 0.2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="low"):
        config.load_effects(bad)


def test_dispatch_keeps_the_worth_on_the_task_and_no_owner_gets_more_hours_than_budgeted(
        tmp_path: Path) -> None:
    directory = OwnerDirectory(
        roles={"key_account_department": Owner("KA dept", KA, "zh-CN")},
        fallback=Owner("Fallback", "fallback@staff.example.test"),
        capacity={"account_manager": Capacity(8, 30, 3.5),
                  "key_account_department": Capacity(40, 200)})
    rows = [(f"A{i}", "manager_visit" if i % 3 == 0 else "care_call", 3, 100.0 * i)
            for i in range(1, 13)]
    planned = appraise(decisions(rows), BELIEFS).kept
    with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as store:
        dispatch(planned, TITLES, directory, store, "run-1", NOW)
        with store.session() as session:
            hours = session.execute(select(func.sum(Task.effort_hours)).where(
                Task.status == "open")).scalar_one()
            queued = session.execute(select(func.count()).where(
                Task.status == "queued")).scalar_one()
            task = session.scalars(select(Task).where(Task.account_id == "A12")).one()
        assert 0 < hours <= 3.5 and queued > 0
        # A12: a visit on 1,200 at risk: 1,200 x 12 x 0.2 - 200 = 2,680 CNY a year, 3 hours
        assert task.effort_hours == 3.0 and task.expected_retained_cny_yearly == 2680.0
        assert task.effect_source == "prior"


def test_the_demo_releases_no_owner_more_hours_than_their_budget(tmp_path: Path) -> None:
    """`kamflow demo`: per owner, the hours of the tasks released on the day are within their
    budget (3.5 for an account manager), urgent work aside; every task carries its worth in
    `tasks list --json`."""
    env = {**os.environ, "KAMFLOW_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "kamflow.cli", "demo"], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = subprocess.run([sys.executable, "-m", "kamflow.cli", "tasks", "list", "--json"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    tasks = json.loads(listed.stdout)
    assert tasks and all("effort_hours" in t and "expected_retained_cny_yearly" in t
                         for t in tasks)
    from kamflow.rules import RULES_DIR, load_ruleset
    urgent_actions = {name for name, spec in load_ruleset(RULES_DIR).actions.items()
                      if spec.email == "own"}
    frame = pd.DataFrame(tasks)
    released = frame[frame["status"] == "open"].assign(
        urgent=lambda f: f["action"].isin(urgent_actions))
    budget = {"key-accounts@operator.example": 30.0, "sla-team@operator.example": 24.0}
    over = {}
    for owner, mine in released.groupby("owner_email"):
        urgent = mine.loc[mine["urgent"], "effort_hours"].sum()
        routine = mine.loc[~mine["urgent"], "effort_hours"].sum()
        # urgent work is always released and counts: routine work fills what it leaves
        if routine > max(0.0, budget.get(owner, 3.5) - urgent) + 1e-9:
            over[owner] = (urgent, routine)
    assert not over, over
    assert released.loc[~released["urgent"], "effort_hours"].sum() > 0
    assert np.isfinite(released["expected_retained_cny_yearly"].astype(float)).all()


def test_the_email_says_what_each_task_is_worth_and_lists_by_it() -> None:
    """预计挽留 ¥X/年 · 约 N 小时 on every task; must-do work first, then net per hour: the
    half-hour call keeping 1,200 a year comes before the visit keeping 4,600 in 3 hours."""
    from kamflow import notifications
    due = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
    base = {"account_name": "客户", "priority": 2, "due_at": due, "reason": "r",
            "rule_id": "r1", "action_title": "t"}
    tasks = [
        {**base, "task_id": 1, "account_id": "VISIT", "action": "manager_visit",
         "value_at_risk": 2000.0, "effort_hours": 3.0, "expected_retained_cny_yearly": 4600.0},
        {**base, "task_id": 2, "account_id": "CALL", "action": "care_call", "priority": 3,
         "value_at_risk": 1000.0, "effort_hours": 0.5, "expected_retained_cny_yearly": 1200.0},
        {**base, "task_id": 3, "account_id": "ESC", "action": "escalate_to_key_account",
         "priority": 1, "value_at_risk": 10.0, "effort_hours": 1.0,
         "expected_retained_cny_yearly": 24.0, "must_do": True},
    ]
    _, text_zh, html_zh = notifications.render_task_digest("王经理", tasks, "zh-CN")
    assert "预计挽留 ¥1,200/年 · 约 0.5 小时" in text_zh
    assert "预计挽留 ¥4,600/年 · 约 3 小时" in html_zh
    assert text_zh.index("ESC") < text_zh.index("CALL") < text_zh.index("VISIT")
    _, text_en, _ = notifications.render_task_digest("Wang", tasks, "en")
    assert "Worth:    expected to keep ¥1,200 a year · about 0.5 hours" in text_en
    assert text_en.index("ESC") < text_en.index("CALL") < text_en.index("VISIT")


def test_revenue_kept_under_true_effects_by_hand() -> None:
    """Two accounts of one manager with 1 hour a day, one day. A (leaves on day 5, 1,000 CNY a
    month) gets a care call of true effect 0.5; B (stays, 2,000 a month) a visit of true effect
    -0.1 costing 100. Ranked by the priors the visit comes first (it fits the hour: 1 h), so B
    is contacted and pushed away: 2,000 x 12 x 0.1 = 2,400 lost, - 100 cost. The oracle does the
    call: A kept 1,000 x 12 x 0.5 = 6,000."""
    from kamflow.flows.outcome import simulate_kept
    planned = pd.DataFrame({
        "account_id": ["A", "B"], "owner_email": [WANG, WANG],
        "owner_role": ["account_manager"] * 2, "priority": [3, 3], "action": ["care_call",
                                                                             "manager_visit"],
        "value_at_risk": [10.0, 500.0], "effort_hours": [1.0, 1.0],
        "net_per_hour": [10.0, 900.0], "must_do": [False, False], "email": ["digest"] * 2})
    accounts = pd.DataFrame({"account_id": ["A", "B"], "monthly_revenue": [1000.0, 2000.0],
                             "leave_day": [5.0, np.nan]})
    truth = pd.DataFrame({"true_effect": [0.5, -0.1], "true_cost": [0.0, 100.0]})
    report = simulate_kept(planned, accounts, lambda e, r: Capacity(8, 30, 1.0), truth, days=1,
                           orderings=("kamflow", "oracle"))
    assert report.of("kamflow").retained_net_cny_yearly == -2500.0
    assert report.of("kamflow").tasks_done == 1
    assert report.of("oracle").retained_net_cny_yearly == 6000.0
    assert report.ratio("kamflow", "oracle") == pytest.approx(-2500 / 6000)
    # two days: both are done; A's call keeps 6,000, B's visit loses 2,400 and costs 100
    both = simulate_kept(planned, accounts, lambda e, r: Capacity(8, 30, 1.0), truth, days=2,
                         orderings=("kamflow",))
    assert both.of("kamflow").retained_net_cny_yearly == 3500.0


def test_kamflow_outcome_reports_revenue_kept_per_ordering(tmp_path: Path) -> None:
    env = {**os.environ, "KAMFLOW_HOME": str(tmp_path / "home")}
    printed = subprocess.run([sys.executable, "-m", "kamflow.cli", "outcome", "--print-effects"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0 and "by_cause" in printed.stdout
    mine = tmp_path / "truth.yaml"  # a user's truth: nothing works but renewal talks
    mine.write_text("actions:\n  renewal_talk:\n    effort_hours: 1\n    effect: {relative: 0.5}\n",
                    encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "kamflow.cli", "outcome", "--accounts",
                             "1500", "--churn-rate", "0.05", "--days", "10", "--as-of",
                             "2026-11-25", "--effects", str(mine), "--json"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert set(report["orderings"]) == {"kamflow", "previous", "value_at_risk", "random",
                                        "oracle"}
    for figures in report["orderings"].values():
        assert figures["tasks_done"] > 0
        assert figures["retained_net_cny_yearly"] == pytest.approx(
            figures["retained_cny_yearly"] - figures["cost_cny_yearly"], abs=0.02)
    # with only renewal talks working the oracle keeps at least what any other order keeps
    oracle = report["orderings"]["oracle"]["retained_net_cny_yearly"]
    assert all(oracle >= f["retained_net_cny_yearly"] - 1e-6
               for f in report["orderings"].values())
    assert report["parameters"]["effects"] == str(mine)


def test_withheld_and_held_out_decisions_in_the_played_orders() -> None:
    """kamflow does not do what it withholds; the previous order, which never withheld, does;
    nobody does the control group's."""
    from kamflow.flows.outcome import simulate_kept
    planned = pd.DataFrame({
        "account_id": ["A", "B", "C"], "owner_email": [WANG] * 3,
        "owner_role": ["account_manager"] * 3, "priority": [3, 3, 3],
        "action": ["care_call", "tailored_offer", "care_call"],
        "value_at_risk": [10.0, 500.0, 300.0], "effort_hours": [1.0, 1.0, 1.0],
        "net_per_hour": [10.0, -50.0, 30.0], "must_do": [False] * 3, "email": ["digest"] * 3,
        "withheld": [False, True, False], "held_out": [False, False, True]})
    accounts = pd.DataFrame({"account_id": ["A", "B", "C"],
                             "monthly_revenue": [1000.0, 2000.0, 3000.0],
                             "leave_day": [5.0, 5.0, 5.0]})
    truth = pd.DataFrame({"true_effect": [0.5, 0.5, 0.5], "true_cost": [0.0, 0.0, 0.0]})
    report = simulate_kept(planned, accounts, lambda e, r: Capacity(8, 30, 8.0), truth, days=1,
                           orderings=("kamflow", "previous"))
    assert report.of("kamflow").tasks_done == 1  # A only
    assert report.of("kamflow").retained_net_cny_yearly == 1000 * 12 * 0.5
    assert report.of("previous").tasks_done == 2  # A and B, never C (held out)
    assert report.of("previous").retained_net_cny_yearly == (1000 + 2000) * 12 * 0.5


def test_the_learning_modes_fates_follow_the_true_effects() -> None:
    """A churner a task fully keeps stays; one nobody worked leaves; a stayer pushed away by a
    done task (effect -1) leaves; a stayer nobody touched stays."""
    from kamflow.flows.outcome import _fates
    done_day = np.array([0, -1, 0, -1])
    task_leave = np.array([5.0, 5.0, np.inf, np.inf])
    effect = np.array([1.0, 1.0, -1.0, -1.0])
    left = _fates(done_day, task_leave, effect, np.arange(4),
                  np.array([True, True, False, False]), np.random.default_rng(0))
    assert left.tolist() == [False, True, True, False]


def test_scaled_priors_scale_every_effect() -> None:
    from kamflow.flows.outcome import scaled_beliefs
    doubled = scaled_beliefs(BELIEFS, 2.0)
    assert doubled.actions["care_call"].effect == Effect(0.20, 0.04, 0.4)
    assert doubled.actions["tailored_offer"].by_value_class["low"] == Effect(-0.10)
    assert doubled.actions["manager_visit"].cost_cny == 200.0  # costs are not beliefs scaled


def test_kamflow_outcome_learning_mode(tmp_path: Path) -> None:
    """Quarters of the same department: the first ranks by the priors (nothing measured yet),
    the holdout's evidence grows every quarter and moves the effects ranked by."""
    env = {**os.environ, "KAMFLOW_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "kamflow.cli", "outcome", "--accounts",
                             "1500", "--churn-rate", "0.1", "--days", "10", "--as-of",
                             "2026-11-25", "--quarters", "3", "--prior-scale", "2", "--json"],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    learning = json.loads(result.stdout)["learning"]
    assert learning["prior_scale"] == 2.0 and len(learning["quarters"]) == 3
    first, *later = learning["quarters"]
    kept = first["retained_net_cny_yearly"]
    assert set(kept) == {"learning", "prior", "previous", "oracle"}
    assert kept["learning"] == kept["prior"]  # quarter one: the same beliefs
    assert all(q["held_out"] > 0 for q in learning["quarters"])
    measured = [sum(q["measured"].values()) for q in learning["quarters"]]
    assert measured[0] > 0 and measured == sorted(measured)  # evidence only accumulates
    # an action the holdout measured is ranked by an effect moved off the doubled prior
    doubled = 2 * config.load_effects().actions["care_call"].effect.relative
    assert "care_call" in later[-1]["measured"]
    assert later[-1]["learnt_effect"]["care_call"] != pytest.approx(doubled)
