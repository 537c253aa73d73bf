"""The outcome simulation (flows/outcome.py, `kamflow outcome`): a month of capacity-limited work
played out by ordering, and the churning revenue each ordering reaches in time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kamflow.flows.outcome import leave_days, play_out, simulate_outcome
from kamflow.worklist.capacity import UNLIMITED, Capacity
from tests.conftest import AS_OF


def one_a_day(_email: str, role: str) -> Capacity:
    return UNLIMITED if role == "key_account_department" else Capacity(1, 30)


def task(account: str, priority: int, value_at_risk: float, role: str = "account_manager",
         owner: str = "li@op.cn", proactive: bool = False) -> dict:
    return {"account_id": account, "owner_email": owner, "owner_role": role,
            "priority": priority, "value_at_risk": value_at_risk, "proactive": proactive,
            "email": "digest"}


def test_value_at_risk_reaches_the_big_churner_priority_alone_does_not():
    """One owner, one task a day, two days. Both orderings release the priority-1 task first;
    on day two kamflow's takes the account with 100 CNY at risk, priority alone the lower id."""
    planned = pd.DataFrame([task("KA2", 2, 100.0), task("KA1", 2, 10.0), task("KA3", 1, 1.0)])
    accounts = pd.DataFrame({"account_id": ["KA1", "KA2", "KA3"],
                             "monthly_revenue": [50.0, 1000.0, 10.0],
                             "leave_day": [10, 10, np.nan]})
    report = simulate_outcome(planned, accounts, one_a_day, days=2, work_per_day=1,
                              orders=("value_at_risk", "priority"))
    assert report.decliners == 2 and report.decliner_revenue == 1050.0
    kamflow, priority = report.of("value_at_risk"), report.of("priority")
    assert (kamflow.released, priority.released) == (2, 2)
    assert kamflow.revenue_reached == 1000.0 and kamflow.decliners_reached == 1
    assert priority.revenue_reached == 50.0
    assert kamflow.revenue_share == pytest.approx(1000 / 1050, abs=1e-4)
    assert report.ratio("value_at_risk", "priority") == pytest.approx(20.0)


def test_the_three_orderings_reach_the_revenue_worked_out_by_hand():
    """One owner, one new task a day, one done a day, three days; churners KA1 (2,000 CNY a
    month, leaves on day 10), KA3 (1,000, day 1) and KA4 (100, day 2), KA2 stays: 3,100 CNY.

    - value at risk: priority 1 first, risk-driven KA3 before proactive KA2, then KA1 (500 at
      risk) before KA4: KA3 on day 0, KA2 on day 1, KA1 on day 2 (KA4 left): 3,000 reached;
    - priority alone (ties by id): KA2 on day 0, KA1 on day 1 (KA3 left on day 1), KA4 gone
      on day 2: 2,000 reached;
    - random, numpy's shuffles of the waiting tasks (in planned order) for seeds 0, 1, 2:
      day 0 [2 0 1 3] puts KA2 first, day 1 [0 1] of (KA4, KA1) KA4, day 2 KA1: 2,100.
    The headline: 3,000 / 2,000 = 1.50x priority alone, 3,000 / 2,100 = 1.43x random."""
    assert np.random.default_rng(0).permutation(4).tolist() == [2, 0, 1, 3]  # the premise
    assert np.random.default_rng(1).permutation(2).tolist() == [0, 1]
    planned = pd.DataFrame([task("KA4", 2, 0.0), task("KA1", 2, 500.0),
                            task("KA2", 1, 5.0, proactive=True), task("KA3", 1, 50.0)])
    accounts = pd.DataFrame({"account_id": ["KA1", "KA2", "KA3", "KA4"],
                             "monthly_revenue": [2000.0, 300.0, 1000.0, 100.0],
                             "leave_day": [10, np.nan, 1, 2]})
    report = simulate_outcome(planned, accounts, one_a_day, days=3, work_per_day=1, seed=0)
    assert (report.accounts, report.owners, report.tasks) == (4, 1, 4)
    assert (report.decliners, report.decliner_revenue) == (3, 3100.0)
    reached = {o.order: (o.released, o.decliners_reached, o.revenue_reached, o.revenue_share,
                         o.first_week_share) for o in report.outcomes}
    # without effort or effect columns net_per_hour falls back to value at risk
    assert reached == {"net_per_hour": (3, 2, 3000.0, 0.9677, 0.9677),
                       "value_at_risk": (3, 2, 3000.0, 0.9677, 0.9677),
                       "priority": (2, 1, 2000.0, 0.6452, 0.6452),
                       "random": (3, 2, 2100.0, 0.6774, 0.6774)}
    figures = report.as_dict()
    assert figures["ratio_value_at_risk_to_priority"] == pytest.approx(1.5)
    assert figures["ratio_value_at_risk_to_random"] == pytest.approx(3000 / 2100)
    lines = report.text().splitlines()
    assert lines[-1] == ("value at risk reaches 1.50x the revenue of priority-only ordering "
                         "and 1.43x that of random ordering.")
    assert [line.split()[:5] for line in lines[4:8]] == [
        ["net_per_hour", "3", "2", "3,000", "96.8%"], ["value_at_risk", "3", "2", "3,000", "96.8%"],
        ["priority", "2", "1", "2,000", "64.5%"],
        ["random", "3", "2", "2,100", "67.7%"]]


def test_a_task_waits_while_the_owner_is_full_and_goes_with_an_account_that_leaves():
    """Open tasks at the limit hold releases back until work frees them; an account that has
    left takes its waiting task along, and a department escalation is released regardless."""
    planned = pd.DataFrame([task("KA1", 1, 5.0), task("KA2", 1, 4.0), task("KA3", 1, 3.0),
                            task("KA4", 1, 1.0, role="key_account_department",
                                 owner="ka@op.cn")])
    planned["urgent"] = [False, False, False, True]
    leave = np.array([np.inf, 1, np.inf, np.inf])
    released = play_out(planned, leave, lambda e, r: Capacity(5, 1) if r != "x" else UNLIMITED,
                        days=4, work_per_day=0, order="value_at_risk")
    # nobody works: KA1 fills the single open slot on day 0 and nothing else follows
    assert released.tolist() == [0, -1, -1, 0]
    released = play_out(planned, leave, lambda e, r: Capacity(5, 1), days=4, work_per_day=1,
                        order="value_at_risk")
    # one done a day: KA1 day 0, KA2 left on day 1 before its turn, KA3 day 1
    assert released.tolist() == [0, -1, 1, 0]


def test_leave_days_from_the_realistic_ground_truth():
    truth = pd.DataFrame({"account_id": ["a", "b", "c"], "declining": [1, 0, 1],
                          "churn_date": ["2026-12-11", "", ""]})
    days = leave_days(truth, "2026-12-01")
    assert days["a"] == 10 and np.isnan(days["b"]) and days["c"] > 365


def test_kamflow_outcome_on_a_generated_realistic_snapshot(tmp_path: Path):
    """`kamflow outcome` generates a realistic snapshot, plays out the days and reports the
    three orderings: each releases the same work, within the owners' daily capacity."""
    env = {**os.environ, "KAMFLOW_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "kamflow.cli", "outcome", "--accounts",
                             "1500", "--days", "5", "--work-per-day", "2", "--as-of",
                             AS_OF.isoformat(), "--json"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [o["order"] for o in report["outcomes"]] == ["net_per_hour", "value_at_risk",
                                                        "priority", "random"]
    assert report["decliners"] > 0 and report["tasks"] > report["owners"]
    for outcome in report["outcomes"]:
        assert 0 < outcome["released"] <= report["tasks"]
        assert 0 <= outcome["revenue_share"] <= 1
        assert outcome["first_week_share"] <= outcome["revenue_share"]
    # an account manager gets at most 8 new tasks a day (conf/owners.yaml): 5 days, 40 each,
    # plus the department's escalations, which capacity never holds back
    by_order = {o["order"]: o for o in report["outcomes"]}
    kamflow, priority, shuffled = (by_order[order] for order in ("value_at_risk", "priority",
                                                                   "random"))
    assert by_order["net_per_hour"]["released"] < report["tasks"]
    assert kamflow["released"] < report["tasks"]
    # the headline's ratios are the orderings' revenue reached, as the table shows it
    assert report["ratio_value_at_risk_to_priority"] == pytest.approx(
        kamflow["revenue_reached"] / priority["revenue_reached"])
    assert report["ratio_value_at_risk_to_random"] == pytest.approx(
        kamflow["revenue_reached"] / shuffled["revenue_reached"])


def test_outcome_without_ground_truth_says_so(tmp_path: Path, snapshot_dir: Path):
    (snapshot_dir / "ground_truth.csv").unlink(missing_ok=True)
    env = {**os.environ, "KAMFLOW_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "kamflow.cli", "outcome", "--source",
                             str(snapshot_dir), "--as-of", AS_OF.isoformat()],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "ground_truth.csv" in result.stderr and "Traceback" not in result.stderr
