"""The measured effect of each action: decisions joined to their fate, released against held out
(worklist/effects.py), and `kamflow report --effects`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from kamflow.cli import main
from kamflow.worklist import TaskStore
from kamflow.worklist.effects import (
    JSON_KEYS,
    EffectsConfig,
    decision_fates,
    effects_report,
    json_rows,
    measure,
    needed_decisions,
    verdict,
)
from kamflow.worklist.models import AccountRecord, AccountRevenue, RunFigures, Task

NOW = pd.Timestamp("2026-12-01 06:00", tz="UTC")
Z95 = 1.959963984540054  # the normal quantile of a 95 % two-sided interval


def _wilson(events: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for one proportion, by its textbook formula."""
    p = events / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _fates(held: tuple[int, int], treated: tuple[int, int], action: str = "care_call",
           value_class: str = "high") -> pd.DataFrame:
    """Known fates: ``held`` = (decisions, left) held out, ``treated`` = (decisions, left)."""
    rows = []
    for status, (n, left) in (("held_out", held), ("done", treated)):
        rows += [{"action": action, "status": status, "value_class": value_class,
                  "rule_id": "complaints", "fate": "left" if i < left else "stayed",
                  "revenue_lost_yearly": 12_000.0 if i < left else 0.0,
                  "created_at": NOW - pd.Timedelta(days=200)} for i in range(n)]
    return pd.DataFrame(rows)


def test_effect_and_interval_match_a_hand_computed_case() -> None:
    """10 of 100 held-out accounts left, 5 of 100 released: held-out churn 10 %, released 5 %,
    effect +5 points (the task kept customers). Newcombe's interval from two Wilson intervals:
    [d - sqrt((p0-l0)^2 + (u1-p1)^2), d + sqrt((u0-p0)^2 + (p1-l1)^2)] = [-2.63, +12.96]."""
    [row, *_] = effects_report(_fates((100, 10), (100, 5)), NOW, EffectsConfig())
    assert (row["action"], row["segment"]) == ("care_call", "all")
    assert (row["treated"], row["held_out"]) == (100, 100)
    assert row["churn_held_out"] == pytest.approx(0.10)
    assert row["churn_treated"] == pytest.approx(0.05)
    assert row["effect_pp"] == pytest.approx(5.0)  # positive: fewer left with the task
    l0, u0 = _wilson(10, 100)
    l1, u1 = _wilson(5, 100)
    low = 0.05 - math.sqrt((0.10 - l0) ** 2 + (u1 - 0.05) ** 2)
    high = 0.05 + math.sqrt((u0 - 0.10) ** 2 + (0.05 - l1) ** 2)
    assert row["ci_low_pp"] == pytest.approx(100 * low, abs=1e-6)
    assert row["ci_high_pp"] == pytest.approx(100 * high, abs=1e-6)
    assert row["ci_low_pp"] == pytest.approx(-2.627, abs=1e-3)
    assert row["ci_high_pp"] == pytest.approx(12.962, abs=1e-3)
    assert not row["known"]  # 15.6 points wide, not 2
    # revenue kept: 10 x 12,000 lost per 100 held out, 5 x 12,000 per 100 released
    assert row["revenue_kept_per_100_tasks"] == pytest.approx(60_000.0)
    assert row["revenue_kept_per_hour"] == pytest.approx(600.0 / 0.5)  # care call: 0.5 h
    # a task that makes churn worse has a negative effect
    [worse, *_] = effects_report(_fates((100, 5), (100, 10)), NOW, EffectsConfig())
    assert worse["effect_pp"] == pytest.approx(-5.0)
    assert worse["ci_high_pp"] == pytest.approx(-row["ci_low_pp"], abs=1e-9)


def test_needed_decisions_is_the_hand_computed_sample() -> None:
    """Cohen's h for 1 point around 3 % churn; at 5 % held out (19 released per held out) the
    held-out arm needs (z / h)^2 (1 + 1/19) for a half-width of 1 point, the whole 20 times
    that: about 23,400 decisions (the plain normal formula z^2 p(1-p) / (0.01^2 s(1-s))
    gives 23,535)."""
    h = 2 * math.asin(math.sqrt(0.035)) - 2 * math.asin(math.sqrt(0.025))
    held = (Z95 / h) ** 2 * (1 + 1 / 19)
    assert needed_decisions(0.03, 0.05, 2.0) == pytest.approx(20 * held, rel=1e-3)
    plain = Z95 ** 2 * 0.03 * 0.97 / (0.01 ** 2 * 0.05 * 0.95)
    assert abs(needed_decisions(0.03, 0.05, 2.0) - plain) / plain < 0.01
    assert needed_decisions(0.03, 0.20, 2.0) < needed_decisions(0.03, 0.05, 2.0)


def test_a_wide_interval_says_not_enough_data_yet_with_the_decisions_needed() -> None:
    config = EffectsConfig()
    [row, *_] = effects_report(_fates((20, 2), (380, 19)), NOW, config)
    assert not row["known"]
    pooled = 21 / 400
    assert row["needed"] == needed_decisions(pooled, 20 / 400, 2.0)
    assert row["more_needed"] == row["needed"] - 400
    text = verdict(row, config)
    assert text.startswith("not enough data yet") and f"{row['more_needed']:,}" in text
    assert "数据尚不足" in verdict(row, config, "zh-CN")
    # enough decisions: a narrow interval is known
    [big, *_] = effects_report(_fates((20_000, 600), (20_000, 400)), NOW, config)
    assert big["known"] and big["ci_high_pp"] - big["ci_low_pp"] <= 2.0
    assert verdict(big, config).startswith("known: +1.00 points")


def test_segments_break_down_by_value_class_and_reason() -> None:
    fates = pd.concat([_fates((100, 10), (100, 5), value_class="high"),
                       _fates((50, 1), (50, 1), value_class="low")], ignore_index=True)
    rows = {r["segment"]: r for r in effects_report(fates, NOW, EffectsConfig())}
    assert list(rows) == ["all", "class:high", "class:low", "reason:complaints"]
    assert (rows["all"]["treated"], rows["all"]["held_out"]) == (150, 150)
    assert rows["class:low"]["effect_pp"] == pytest.approx(0.0)
    assert rows["reason:complaints"]["treated"] == 150


def test_json_has_exactly_the_documented_keys() -> None:
    rows = effects_report(pd.concat([_fates((100, 10), (100, 5)),
                                     _fates((0, 0), (30, 1), action="renewal_talk")],
                                    ignore_index=True), NOW, EffectsConfig())
    found = json.loads(json.dumps(json_rows(rows)))
    assert list(found) == ["effects"]
    assert all(list(r) == list(JSON_KEYS) for r in found["effects"])
    renewal = next(r for r in found["effects"] if r["action"] == "renewal_talk")
    # nobody held out: no effect, not known
    assert renewal["held_out"] == 0 and renewal["effect_pp"] is None and not renewal["known"]


def _decision(account: str, days_ago: float, status: str = "done") -> dict:
    return {"account_id": account, "action": "care_call", "status": status,
            "rule_id": "complaints", "created_at": NOW - pd.Timedelta(days=days_ago)}


def test_fate_join_counts_only_what_left_within_the_horizon() -> None:
    """Decided 200 days ago: lost at day 30 is churn, lost at day 100 is not (it stayed within
    90 days); decided 10 days ago and still here: pending; lost 5 days after a decision 10 days
    ago: left. Revenue down 60 % within the horizon: partial churn."""
    decided = NOW - pd.Timedelta(days=200)
    roster = pd.DataFrame({
        "account_id": ["A", "B", "C", "D", "E"],
        "lost_at": [decided + pd.Timedelta(days=30), decided + pd.Timedelta(days=100), pd.NaT,
                    NOW - pd.Timedelta(days=5), pd.NaT],
        "monthly_revenue": [1000.0, 1000.0, 1000.0, 500.0, 400.0],
        "value_class": ["high", "low", "high", "low", "high"]})
    revenue = pd.DataFrame({"account_id": ["A", "B", "C", "D", "E", "E"],
                            "at": [decided - pd.Timedelta(days=1)] * 5
                            + [decided + pd.Timedelta(days=40)],
                            "monthly_revenue": [1000.0, 1000.0, 1000.0, 500.0, 1000.0, 400.0]})
    decisions = pd.DataFrame([_decision("A", 200), _decision("B", 200), _decision("C", 10),
                              _decision("D", 10), _decision("E", 200, "held_out")])
    fates = decision_fates(decisions, roster, revenue, NOW, 90, 0.5).set_index("account_id")
    assert fates["fate"].to_dict() == {"A": "left", "B": "stayed", "C": "pending",
                                       "D": "left", "E": "partial"}
    assert fates.loc["A", "lost_at"] == decided + pd.Timedelta(days=30)
    assert pd.isna(fates.loc["B", "lost_at"])
    assert fates.loc["A", "revenue_lost_yearly"] == 12_000.0
    assert fates.loc["E", "revenue_lost_yearly"] == 12 * 600.0
    assert fates.loc["E", "value_class"] == "high"  # from the roster
    # D left, but its horizon is not over: not counted yet, as C (pending) is not
    assert fates["matured"].to_dict() == {"A": True, "B": True, "C": False, "D": False,
                                          "E": True}
    [row] = [r for r in effects_report(fates.reset_index(), NOW) if r["segment"] == "all"]
    assert (row["treated"], row["held_out"]) == (2, 1)  # A, B released; E held out
    assert row["churn_treated"] == pytest.approx(0.5) and row["churn_held_out"] == 0.0
    # a longer horizon makes B's loss churn
    longer = decision_fates(decisions, roster, revenue, NOW, 120, 0.5).set_index("account_id")
    assert longer.loc["B", "fate"] == "left"


def _seed(url: str, now: dt.datetime, snapshot_ids: bool = False) -> None:
    """A store: 40 care-call decisions 120 days ago (20 released, 20 held out; 2 and 6 of their
    accounts left 30 days later), one queued task (treated: intent to treat), one decision 10
    days ago
    (pending) and the run that saw it all."""
    decided = now - dt.timedelta(days=120)
    with TaskStore(url) as store, store.session() as session:
        for i in range(42):
            status = "held_out" if i % 2 else "done"
            if i == 40:
                status = "queued"
            # snapshot_ids: the generated snapshot's own ids, so a run on it finds its accounts
            account = f"KA{i + 1:07d}" if snapshot_ids else f"ACC{i:03d}"
            left = (status == "done" and i < 4) or (status == "held_out" and i < 12)
            when = now - dt.timedelta(days=10) if i == 41 else decided
            session.add(AccountRecord(
                account_id=account, manager_email="m@x.cn", manager_name="M",
                first_seen=decided - dt.timedelta(days=1), monthly_revenue=1000.0,
                value_class="high" if i < 20 else "low",
                lost_at=decided + dt.timedelta(days=30) if left else None))
            session.add(AccountRevenue(account_id=account, at=decided - dt.timedelta(days=1),
                                       monthly_revenue=1000.0))
            session.add(Task(
                account_id=account, account_name=account, action="care_call",
                action_title="Care call", owner_role="account_manager", owner_name="M",
                owner_email="m@x.cn", priority=3, rule_id="complaints", ruleset_version="v1",
                reason="", status=status, created_at=when, due_at=when, run_id="r1",
                value_at_risk=50.0))
        session.add(RunFigures(run_id="last", at=now, accounts=42, accounts_lost=0,
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


def test_report_effects_json_from_the_store(seeded, capsys) -> None:
    assert main(["report", "--effects", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    everything = next(r for r in found["effects"] if r["segment"] == "all")
    assert everything["action"] == "care_call"
    # the queued one is treated (intent to treat), the pending one is not counted yet
    assert (everything["treated"], everything["held_out"]) == (21, 20)
    assert everything["churn_treated"] == pytest.approx(2 / 21)
    assert everything["churn_held_out"] == pytest.approx(6 / 20)
    assert everything["effect_pp"] == pytest.approx(100 * (6 / 20 - 2 / 21))
    assert everything["known"] is False
    assert {r["segment"] for r in found["effects"]} == {"all", "class:high", "class:low",
                                                         "reason:complaints"}


def test_report_effects_table_and_csv(seeded, capsys) -> None:
    assert main(["report", "--effects"]) == 0
    out = capsys.readouterr().out
    assert "The measured effect of each action" in out
    assert "not enough data yet" in out and "more decisions needed" in out
    assert "Done vs not done is biased" in out
    assert "decisions are needed to know its effect within ±1 pp" in out
    assert "Decisions: 42 (horizon not over yet, not counted: 1)" in out
    assert main(["report", "--effects", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["segment"] == "all" and rows[0]["treated"] == "21"
    assert float(rows[0]["revenue_kept_per_100_tasks"]) == pytest.approx(
        100 * (6 / 20 - 2 / 21) * 12_000.0)


def test_measure_on_an_empty_store_says_there_is_nothing_yet(kamflow_home, capsys) -> None:
    assert main(["report", "--effects"]) == 0
    assert "No decision to measure yet" in capsys.readouterr().out
    found = measure(pd.DataFrame(columns=["account_id", "action", "status", "created_at"]),
                    pd.DataFrame(columns=["account_id", "lost_at"]), None, NOW)
    assert found.rows == [] and found.decisions == 0


@pytest.mark.parametrize(("language", "words"), [
    ("en", ("The measured effect of each action", "Proactive care call", "not enough data yet",
            "released 21 / held out 20", "More than a year")),
    ("zh-CN", ("各项动作的实测效果", "主动关怀回访", "数据尚不足", "已下发 21 / 对照组 20",
               "超过一年"))])
def test_weekly_email_has_the_effects_section_in_the_heads_language(
        seeded, language: str, words: tuple[str, ...]) -> None:
    import dataclasses

    from kamflow import config
    from kamflow.core.settings import load_settings
    from kamflow.flows.effects import read_effects
    from kamflow.flows.weekly_report import KIND, queue_weekly_report
    from kamflow.worklist.measures import Ceilings

    owners = config.load_owners()
    owners = dataclasses.replace(owners, department_head=dataclasses.replace(
        owners.department_head, language=language))
    home = load_settings()
    with TaskStore(home.database_url) as store:
        queue_weekly_report(store, seeded, owners, "Asia/Shanghai", Ceilings(),
                            read_effects(store, home.conf_dir))
        [email] = [e for e in store.unsent_emails() if e.kind == KIND]
    for text in (email.body_text, email.body_html):
        for word in words:
            assert word.lower() in text.lower(), (word, language)


def test_the_run_artifact_shows_each_action_and_what_it_still_needs(seeded) -> None:
    from kamflow.core.settings import load_settings
    from kamflow.flows.effects import effects_markdown, read_effects

    home = load_settings()
    with TaskStore(home.database_url) as store:
        found = read_effects(store, home.conf_dir)
    text = effects_markdown(found)
    assert "| care_call | all | 21 | 20 | 9.52 % | 30.00 % | +20.48 |" in text
    assert "not enough data yet" in text and "Done vs not done is biased" in text
    assert "decisions are needed to know its effect within ±1 pp" in text


def test_shipped_effects_config_loads_and_bad_keys_are_named(tmp_path: Path) -> None:
    from kamflow import config
    from kamflow.core.errors import ConfigError

    shipped = config.load_experiment(Path(config.conf_dir()) / "experiment.yaml")
    assert (shipped.horizon_days, shipped.confidence, shipped.ci_width_pp) == (90, 0.95, 2.0)
    assert shipped.hours("care_call") == 0.5 and shipped.hours("unheard_of") == 1.0
    assert config.load_experiment(tmp_path / "absent.yaml") == EffectsConfig()
    for text, key in (("horizon_days: 0\n", "horizon_days"), ("method: wald\n", "method"),
                      ("confidence: 1.5\n", "confidence"), ("horizon: 90\n", "horizon"),
                      ("effort_hours: {care_call: -1}\n", "effort_hours.care_call")):
        bad = tmp_path / "experiment.yaml"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as caught:
            config.load_experiment(bad)
        assert str(bad) in str(caught.value)


def test_measured_effects_move_the_beliefs_the_plan_ranks_by(seeded) -> None:
    """What the holdout measured (here care calls: 6 of 20 held out left, 2 of 21 treated) moves
    conf/effects.yaml's prior by its evidence, overall and per value class, and a decision
    appraised with the learnt beliefs says so."""
    from kamflow import config
    from kamflow.core.settings import load_settings
    from kamflow.flows.effects import learnt_beliefs, read_effects
    from kamflow.worklist.worth import appraise

    home = load_settings()
    with TaskStore(home.database_url) as store:
        found = read_effects(store, home.conf_dir)
    prior = config.load_effects(home.conf_dir / "effects.yaml")
    assert prior is not None
    learnt, measured = learnt_beliefs(prior, found)
    assert learnt is not None and measured == {"care_call": 41}
    call, before = learnt.actions["care_call"], prior.actions["care_call"]
    relative = (6 / 20 - 2 / 21) / (6 / 20)  # the relative effect measured
    noise = (0.3 * 0.7 / 20 + 2 / 21 * (1 - 2 / 21) / 21) / 0.3 ** 2  # its sampling variance
    assert before.effect.low is not None and before.effect.high is not None
    spread = ((before.effect.high - before.effect.low) / 3.92) ** 2  # the prior's, its range
    weight = spread / (spread + noise)
    assert 0 < weight < 0.1  # 41 decisions are little evidence against a stated range
    assert call.effect.relative == pytest.approx(
        (1 - weight) * before.effect.relative + weight * relative)
    # the value-class rows of the report ("class:high") move that class's effect too
    assert call.measured_n["value_class:high"] == 20  # no low-class held-out account left
    assert "value_class:low" not in call.measured_n
    frame = appraise(pd.DataFrame({"account_id": ["X"], "action": ["care_call"],
                                   "value_at_risk": [100.0], "monthly_revenue": [1000.0],
                                   "rule_id": ["other"], "value_class": ["secondary"],
                                   "churn_band": ["high"]}), learnt).kept
    assert frame["effect_source"].tolist() == ["measured n=41"]
    # nothing measured: the priors as they are
    empty = measure(pd.DataFrame(columns=["account_id", "action", "status", "created_at"]),
                    pd.DataFrame(columns=["account_id", "lost_at"]), None, NOW)
    assert learnt_beliefs(prior, empty) == (prior, {})


def test_the_run_ranks_by_the_measured_effects_and_says_so(kamflow_home, prefect_api,
                                                           snapshot_dir) -> None:
    from kamflow.core.settings import load_settings
    from tests.test_flow import run_with

    kamflow_home.mkdir(parents=True, exist_ok=True)
    _seed(load_settings().database_url, dt.datetime(2026, 11, 30, 6, tzinfo=dt.UTC), True)

    state, summary, run_id = run_with(prefect_api, snapshot_dir)
    assert state.is_completed(), state.message
    assert summary["effects_measured"] == {"care_call": 41}
    with TaskStore(load_settings().database_url) as store:
        calls = [t for t in store.list_tasks() if t.run_id == run_id and t.action == "care_call"]
        others = [t for t in store.list_tasks() if t.run_id == run_id
                  and t.action == "renewal_talk"]
    # overall (41 decisions) or, for high-value accounts, their class's 20
    assert calls and {t.effect_source for t in calls} <= {"measured n=41", "measured n=20"}
    assert "measured n=41" in {t.effect_source for t in calls}
    assert others and {t.effect_source for t in others} == {"prior"}
