"""Sizing the control group (issue 24.5): the holdout share each action needs for its effect to
be known within the configured width and time, the maintenance share once known, and what the
control group costs; ``kamflow experiment`` on a store; the sizing section of
conf/experiment.yaml checked."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from kamflow.cli import main
from kamflow.worklist import TaskStore
from kamflow.worklist.effects import (
    DAYS_PER_MONTH,
    SIZING_STEP,
    EffectsConfig,
    needed_decisions,
    size_experiment,
    sizing_statement,
)
from kamflow.worklist.models import AccountRecord, AccountRevenue, RunFigures, Task

CONFIG = EffectsConfig()  # ±1 point, 95 %, 90-day horizon, within 12 months, 2 %..20 %


def _row(action: str, per_month: float, *, known: bool = False, treated: int = 0,
         held: int = 0, churn: float | None = None, kept_per_100: float | None = None,
         worth: float | None = 1_000.0) -> dict:
    return {"action": action, "segment": "all", "treated": treated, "held_out": held,
            "churn_treated": churn if treated else None,
            "churn_held_out": churn if held else None, "known": known,
            "revenue_kept_per_100_tasks": kept_per_100, "decisions_per_month": per_month,
            "holdout_share": 0.05, "holdout_share_measured": bool(held),
            "worth_per_decision": worth}


def _available(per_month: float, config: EffectsConfig = CONFIG) -> float:
    return per_month * (config.within_months - config.horizon_days / DAYS_PER_MONTH)


def test_the_recommended_share_is_the_smallest_that_makes_the_effect_known_in_time() -> None:
    per_month = 20_000.0
    [found] = size_experiment([_row("care_call", per_month, treated=5_000, held=300,
                                    churn=0.02)], CONFIG, {"care_call": 0.05})
    assert found["status"] == "sized"
    share = found["recommended_share"]
    assert CONFIG.maintenance_share <= share <= CONFIG.max_share
    assert needed_decisions(0.02, share, 2.0) <= _available(per_month)
    # one step smaller would not be known in time (unless already at the floor)
    if share - SIZING_STEP >= CONFIG.maintenance_share:
        assert needed_decisions(0.02, share - SIZING_STEP, 2.0) > _available(per_month)
    assert found["months_to_known"] <= CONFIG.within_months
    assert found["share_configured"] == 0.05
    # the control group gives up what its decisions would keep, a quarter's worth of them
    assert found["held_out_per_quarter"] == pytest.approx(per_month * 3 * share)
    assert found["cost_per_quarter_cny_yearly"] == pytest.approx(per_month * 3 * share * 1_000)
    assert found["worth_from"] == "appraised"


def test_more_volume_needs_a_smaller_share_and_rare_actions_hit_the_cap() -> None:
    rows = [_row("care_call", 1_500.0), _row("renewal_talk", 400.0),
            _row("vip_service", 30.0)]
    found = {r["action"]: r for r in size_experiment(rows, CONFIG)}
    assert found["care_call"]["recommended_share"] < found["renewal_talk"]["recommended_share"]
    rare = found["vip_service"]
    assert rare["status"] == "too_rare"
    assert rare["recommended_share"] == CONFIG.max_share
    assert rare["months_to_known"] > CONFIG.within_months  # says how long it takes instead
    text = sizing_statement(rare, CONFIG)
    assert "too few decisions" in text and f"{rare['months_to_known']:,.1f} months" in text


def test_a_known_effect_drops_to_the_maintenance_share_never_zero() -> None:
    [found] = size_experiment([_row("care_call", 5_000.0, known=True, treated=90_000,
                                    held=10_000, churn=0.02, kept_per_100=50_000.0)],
                              CONFIG, {"care_call": 0.1})
    assert found["status"] == "known"
    assert found["recommended_share"] == CONFIG.maintenance_share > 0
    assert found["months_to_known"] is None
    # once measured, the cost is priced by the measured revenue kept, not the appraisal
    assert found["worth_from"] == "measured"
    assert found["net_kept_per_decision_cny_yearly"] == pytest.approx(500.0)
    assert "维护比例" in sizing_statement(found, CONFIG, "zh")


def test_actions_that_may_not_be_held_out_are_not_sized() -> None:
    rows = [_row("care_call", 1_000.0), _row("escalate_to_key_account", 1_000.0),
            {**_row("care_call", 1_000.0), "segment": "class:high"}]
    found = size_experiment(rows, CONFIG, {"care_call": 0.05})
    assert [r["action"] for r in found] == ["care_call"]


def test_without_fates_the_baseline_churn_sizes_it_and_a_higher_churn_needs_less() -> None:
    low = EffectsConfig(baseline_churn_yearly=0.03)
    high = EffectsConfig(baseline_churn_yearly=0.001)
    [a] = size_experiment([_row("care_call", 8_000.0)], low)
    [b] = size_experiment([_row("care_call", 8_000.0)], high)
    assert a["churn_horizon"] == pytest.approx(1 - 0.97 ** (90 / 365.25))
    # a rarer event is measured within ±1 point with fewer decisions (its variance is smaller)
    assert b["needed"] <= a["needed"]


def _seed(url: str, now: dt.datetime) -> None:
    """100 care-call decisions a day for 30 days (5 % held out, each worth 2,000 CNY a year)
    and 20 escalations, none with a known fate yet, and the run that saw them."""
    with TaskStore(url) as store, store.session() as session:
        n = 0
        for day in range(30):
            when = now - dt.timedelta(days=day)
            for i in range(100):
                n += 1
                account = f"ACC{n:05d}"
                session.add(AccountRecord(account_id=account, manager_email="m@x.cn",
                                          manager_name="M", first_seen=when,
                                          monthly_revenue=1000.0, value_class="high"))
                session.add(AccountRevenue(account_id=account, at=when, monthly_revenue=1000.0))
                session.add(Task(
                    account_id=account, account_name=account, action="care_call",
                    action_title="Care call", owner_role="account_manager", owner_name="M",
                    owner_email="m@x.cn", priority=3, rule_id="r", ruleset_version="v1",
                    reason="", status="held_out" if i < 5 else "open", created_at=when,
                    due_at=when, run_id="r1", value_at_risk=50.0,
                    expected_retained_cny_yearly=2_000.0))
        for i in range(20):
            session.add(Task(
                account_id=f"ACC{i:05d}", account_name="x", action="escalate_to_key_account",
                action_title="Escalation", owner_role="key_account_department",
                owner_name="D", owner_email="d@x.cn", priority=1, rule_id="r",
                ruleset_version="v1", reason="", status="open", created_at=now, due_at=now,
                run_id="r1", value_at_risk=50.0))
        session.add(RunFigures(run_id="last", at=now, accounts=n, accounts_lost=0,
                               churn_rate_12m=0.0, churn_ceiling_12m=0.0,
                               revenue_churn_rate_12m=0.0, revenue_lost_12m=0.0,
                               top_value_share=0.0, tasks_created=0))


@pytest.fixture
def seeded(kamflow_home: Path) -> dt.datetime:
    from kamflow.core.settings import load_settings

    now = dt.datetime(2026, 11, 30, 6, tzinfo=dt.UTC)
    kamflow_home.mkdir(parents=True, exist_ok=True)
    _seed(load_settings().database_url, now)
    return now


def test_kamflow_experiment_sizes_each_action_from_the_store(seeded, capsys) -> None:
    assert main(["experiment", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["sizing"]["maintenance_share"] == 0.02
    actions = {a["action"]: a for a in found["actions"]}
    # escalations are a promise, never held out: not sized
    assert set(actions) == {"care_call"}
    care = actions["care_call"]
    assert care["share_measured"] == pytest.approx(0.05)
    assert care["share_configured"] == pytest.approx(0.05)  # the shipped rules/actions.yaml
    assert care["decisions_per_month"] == pytest.approx(3_000 * DAYS_PER_MONTH / 29.25, rel=0.01)
    assert care["net_kept_per_decision_cny_yearly"] == pytest.approx(2_000.0)
    assert care["cost_per_quarter_cny_yearly"] == pytest.approx(
        care["decisions_per_month"] * 3 * care["recommended_share"] * 2_000.0)
    assert main(["experiment"]) == 0
    table = capsys.readouterr().out
    assert "Sizing the control group" in table and "Proactive care call: hold out" in table
    assert main(["experiment", "--lang", "zh"]) == 0
    assert "对照组规模建议" in capsys.readouterr().out


def test_kamflow_experiment_on_an_empty_store_says_what_to_do(kamflow_home, capsys) -> None:
    assert main(["experiment"]) == 0
    assert "run `kamflow run` first" in capsys.readouterr().out


@pytest.mark.parametrize(("sizing", "words"), [
    ("  maintenance_share: 0.3\n  max_share: 0.2\n", "maintenance_share must not be above"),
    ("  within_months: 2\n", "within_months must be longer than the horizon"),
])
def test_a_bad_sizing_section_is_refused_naming_the_file(kamflow_home, capsys, monkeypatch,
                                                           sizing: str, words: str) -> None:
    import shutil

    from kamflow.core.settings import DEFAULT_CONF_DIR

    conf = shutil.copytree(DEFAULT_CONF_DIR, kamflow_home.parent / "conf")
    monkeypatch.setenv("KAMFLOW_CONF", str(conf))
    (conf / "experiment.yaml").write_text("horizon_days: 90\nsizing:\n" + sizing,
                                          encoding="utf-8")
    assert main(["experiment"]) != 0
    err = capsys.readouterr().err
    assert "experiment.yaml" in err and words in err
