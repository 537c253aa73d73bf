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
    kamflow = report["outcomes"][0]
    assert kamflow["released"] < report["tasks"]
    assert report["ratio_value_at_risk_to_priority"] is not None


def test_outcome_without_ground_truth_says_so(tmp_path: Path, snapshot_dir: Path):
    (snapshot_dir / "ground_truth.csv").unlink(missing_ok=True)
    env = {**os.environ, "KAMFLOW_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "kamflow.cli", "outcome", "--source",
                             str(snapshot_dir), "--as-of", AS_OF.isoformat()],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "ground_truth.csv" in result.stderr and "Traceback" not in result.stderr
