"""The randomised holdout (rules/holdout.py, applied in the plan): configured shares held out per
action, never the promised work, the same accounts on every rerun, stored as held_out rows."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from kamflow import config
from kamflow.core.errors import ConfigError
from kamflow.flows.delivery import dispatch
from kamflow.flows.plan import PlanConfig, plan_snapshot
from kamflow.generate import make_snapshot, write_snapshot
from kamflow.rules import RULES_DIR, load_ruleset, wording
from kamflow.rules.holdout import (
    NEVER_HELD_OUT,
    HoldoutPolicy,
    assignment_draw,
    experiment_period,
    hold_out,
)
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from tests.conftest import AS_OF

SHARES = {"care_call": 0.05, "renewal_talk": 0.05, "tailored_offer": 0.05,
          "experience_offer": 0.05, "account_plan_review": 0.05}


@pytest.fixture(scope="module")
def big_plan(tmp_path_factory):
    """The plan of a generated snapshot of 20,000 accounts, with the shipped rules."""
    source = tmp_path_factory.mktemp("big") / "snapshot"
    write_snapshot(make_snapshot(20_000, AS_OF, seed=3), source)
    found = plan_snapshot(source, AS_OF, PlanConfig.load(config.conf_dir()))
    assert found.decisions is not None
    return found


def test_the_shipped_rules_hold_out_five_percent_of_the_experiment_actions():
    policy = load_ruleset().holdout
    assert dict(policy.shares) == SHARES
    assert policy.period == "quarter" and policy.max_monthly_revenue == 200_000


def test_each_action_holds_out_its_share_on_20000_accounts(big_plan):
    """Of each action's decisions under experiment, the held-out share is within 1.5 points
    of the configured 5 %; the accounts above the revenue cap are never held out."""
    decisions = big_plan.decisions
    experiment = decisions.loc[decisions["experiment_period"] != ""]
    assert set(experiment["action"]) == set(SHARES)
    for action, group in experiment.groupby("action"):
        share = group["held_out"].mean()
        assert abs(share - SHARES[action]) <= 0.015, (action, share, len(group))
    rich = decisions["monthly_revenue"] > 200_000
    assert rich.any() and not decisions.loc[rich, "held_out"].any()
    assert (decisions.loc[rich & decisions["action"].isin(SHARES), "experiment_period"]
            == "").all()


def test_the_assignment_is_uniform_for_every_action_and_period():
    """The hash itself: over 20,000 accounts, each action and quarter holds out 5 % within
    1.5 points, and an account's draws for two quarters are independent."""
    accounts = pd.Series([f"KA{i:07d}" for i in range(20_000)])
    draws = {}
    for action in SHARES:
        for period in ("2026Q4", "2027Q1"):
            draw = assignment_draw(accounts, pd.Series(action, index=accounts.index), period)
            assert abs((draw < 0.05).mean() - 0.05) <= 0.015, (action, period)
            draws[action, period] = draw
    both = (draws["care_call", "2026Q4"] < 0.05) & (draws["care_call", "2027Q1"] < 0.05)
    assert both.mean() < 0.01  # 0.25 % expected if independent


def test_promised_work_is_never_held_out(big_plan):
    """No escalation, complaint follow-up, SLA review or urgent decision is held out, even with
    a policy that names them (the rule language refuses one; the plan ignores it anyway)."""
    decisions = big_plan.decisions
    assert set(NEVER_HELD_OUT) <= set(decisions["action"])
    promised = decisions["action"].isin(NEVER_HELD_OUT) | (decisions["email"] == "own")
    assert promised.any() and not decisions.loc[promised, "held_out"].any()
    greedy = HoldoutPolicy({a: 0.5 for a in decisions["action"].unique()})
    again = hold_out(decisions.drop(columns=["held_out", "experiment_period"]), AS_OF, greedy)
    assert not again.loc[promised.to_numpy(), "held_out"].any()
    assert again.loc[~promised.to_numpy() & (decisions["monthly_revenue"] <= 200_000)
                     .to_numpy(), "held_out"].mean() > 0.4


def test_a_rerun_and_another_day_of_the_quarter_hold_out_the_same(big_plan, snapshot_dir):
    """The plan again (a rerun, another worker) holds out exactly the same decisions; on a
    later day of the same quarter the account keeps its group; the next quarter draws anew."""
    decisions = big_plan.decisions
    key = decisions["account_id"] + "|" + decisions["action"]
    held = set(key[decisions["held_out"]])
    assert held
    later = hold_out(decisions.drop(columns=["held_out", "experiment_period"]),
                     AS_OF + dt.timedelta(days=20), load_ruleset().holdout)  # 2026-12-15
    assert set(key[later["held_out"]]) == held
    next_quarter = hold_out(decisions.drop(columns=["held_out", "experiment_period"]),
                            dt.date(2027, 1, 5), load_ruleset().holdout)
    assert set(next_quarter["experiment_period"]) == {"", "2027Q1"}
    assert set(key[next_quarter["held_out"]]) != held
    conf = PlanConfig.load(config.conf_dir())
    first = plan_snapshot(snapshot_dir, AS_OF, conf).decisions
    second = plan_snapshot(snapshot_dir, AS_OF, conf).decisions
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize(("when", "label"), [
    ((2026, 1, 1), {"month": "2026-01", "quarter": "2026Q1", "half": "2026H1", "year": "2026"}),
    ((2026, 11, 25), {"month": "2026-11", "quarter": "2026Q4", "half": "2026H2",
                      "year": "2026"}),
    ((2027, 6, 30), {"month": "2027-06", "quarter": "2027Q2", "half": "2027H1",
                     "year": "2027"}),
])
def test_experiment_periods(when, label):
    for period, expected in label.items():
        assert experiment_period(dt.date(*when), period) == expected


def test_held_out_decisions_are_stored_but_nobody_works_them(snapshot_dir, tmp_path):
    """A held-out decision is a task row with status held_out (owner, value at risk, reason,
    experiment period), in no email and no owner's open work; a rerun and a later day of the
    quarter record it once."""
    conf = PlanConfig.load(config.conf_dir())
    found = plan_snapshot(snapshot_dir, AS_OF, conf)
    decisions = found.decisions
    assert decisions is not None and decisions["held_out"].any()
    owners, titles = config.load_owners(), wording(load_ruleset())
    now = dt.datetime.combine(AS_OF, dt.time(2), dt.UTC)
    url = f"sqlite:///{tmp_path / 'k.db'}"
    with TaskStore(url) as store:
        first = dispatch(decisions, titles, owners, store, "run-1", now, BusinessCalendar())
        again = dispatch(decisions, titles, owners, store, "run-2", now, BusinessCalendar())
        later = dispatch(decisions, titles, owners, store, "run-3",
                         now + dt.timedelta(days=5), BusinessCalendar())
        tasks = store.list_tasks()
        held_rows = store.list_tasks(status="held_out")
        with store.session() as session:
            from sqlalchemy import text
            announced = {int(i) for (ids,) in session.execute(text(
                "SELECT task_ids FROM outbox")) for i in str(ids).split(",") if i}
    held = decisions.loc[decisions["held_out"]]
    assert first.held_out == len(held) and sum(first.held_out_by_action.values()) == len(held)
    assert again.held_out == 0 and again.held_out_before == len(held)
    assert later.held_out == 0 and later.held_out_before == len(held)
    assert sorted(f"{t.account_id}|{t.action}" for t in held_rows) == sorted(
        held["account_id"] + "|" + held["action"])
    for task in held_rows:
        assert task.open_key is None and task.released_at is None and task.closed_at is None
        assert task.experiment_period == "2026Q4"
        assert task.holdout_key == f"{task.account_id}|{task.action}|2026Q4"
        assert task.owner_email and task.reason and task.value_at_risk is not None
        assert task.id not in announced
    # the rest were raised as usual; nobody's capacity counts the held-out rows
    raised = [t for t in tasks if t.status != "held_out"]
    assert len(raised) == len(decisions) - len(held)
    assert first.created == len(raised)
    # every task records its decision's experiment period (none outside the experiment: the
    # other actions, and the accounts above the revenue cap)
    period = dict(zip(decisions["account_id"] + "|" + decisions["action"],
                      decisions["experiment_period"], strict=True))
    assert all((t.experiment_period or "") == period[f"{t.account_id}|{t.action}"]
               for t in tasks)
    assert {t.experiment_period for t in raised if t.action not in SHARES} == {None}
    assert sum(t.experiment_period == "2026Q4" for t in raised) > 0


# --------------------------------------------------------------------------- rules check

@pytest.mark.parametrize(("action", "extra", "why"), [
    ("escalate_to_key_account", "", "escalation to the department"),
    ("complaint_follow_up", "", "complaint follow-ups"),
    ("sla_review", "", "SLA reviews"),
    ("manager_visit", "    urgent: true\n", "urgent"),
])
def test_rules_check_refuses_a_holdout_on_promised_work(tmp_path, action, extra, why):
    """`holdout:` on an escalation, a complaint follow-up, an SLA review or an urgent action is
    refused with the file and the line of the holdout."""
    directory = tmp_path / "rules"
    shutil.copytree(RULES_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = directory / "actions.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, text in enumerate(lines) if text.startswith(f"  {action}:"))
    lines[at + 1:at + 1] = [extra, "    holdout: 5%\n"] if extra else ["    holdout: 5%\n"]
    path.write_text("".join(lines), encoding="utf-8")
    line = at + (3 if extra else 2)
    with pytest.raises(ConfigError) as error:
        load_ruleset(directory)
    message = str(error.value)
    assert f"actions.yaml:{line}: action {action!r}: no holdout allowed" in message, message
    assert why in message


@pytest.mark.parametrize(("value", "words"), [("50 percent", "must be a percentage"),
                                              ("80%", "at most 50%"), ("0.05", "percentage")])
def test_rules_check_refuses_a_holdout_that_is_not_a_share(tmp_path, value, words):
    directory = tmp_path / "rules"
    shutil.copytree(RULES_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = directory / "actions.yaml"
    text = path.read_text(encoding="utf-8")
    at = text.index("    holdout: 5%", text.index("  care_call:"))
    path.write_text(text[:at] + f"    holdout: {value}" + text[at + len("    holdout: 5%"):],
                    encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_ruleset(directory)
    assert "action 'care_call': holdout must be" in str(error.value)
    assert words in str(error.value)


def test_rules_check_refuses_an_unknown_period(tmp_path):
    directory = tmp_path / "rules"
    shutil.copytree(RULES_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = directory / "actions.yaml"
    text = path.read_text(encoding="utf-8")
    line = text.splitlines().index("  period: quarter              # month | quarter | half "
                                   "| year") + 1
    path.write_text(text.replace("period: quarter", "period: fortnight"), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_ruleset(directory)
    assert f"actions.yaml:{line}: holdout: period must be one of month, quarter" in \
        str(error.value)
