"""The daily retention flow end to end, on a real Prefect server, SQLite and the file outbox."""

from __future__ import annotations

import email
import json
import logging
import uuid
from email import policy
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select

from kamflow import config
from kamflow.rules import load_ruleset, load_wording
from kamflow.worklist import TaskStore
from kamflow.worklist.models import AccountRecord
from tests.conftest import AS_OF


@pytest.fixture
def run(prefect_api, kamflow_home):
    """Run retention_run in-process against the session's Prefect server; returns the state."""
    from kamflow.flows.retention import retention_run

    def _run(source: Path):
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            return retention_run(source=str(source), as_of=AS_OF.isoformat(), return_state=True)
    return _run


def store(home: Path) -> TaskStore:
    return TaskStore(f"sqlite:///{home / 'kamflow.db'}")


def outbox(home: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted((home / "outbox").glob("*.eml"))]


def test_run_creates_tasks_and_emails_then_rerun_adds_nothing(run, snapshot_dir, kamflow_home,
                                                              prefect_api, monkeypatch, caplog):
    """A run stores tasks and writes .eml files naming account, action, due date and reason
    (the rule's description in the owner's language); the same snapshot again adds no task and
    no email. Its emails are rendered by two worker
    processes, as a national run's are (the flow runs in a Prefect worker thread)."""
    monkeypatch.setenv("KAMFLOW_RENDER_WORKERS", "2")
    caplog.set_level(logging.INFO, logger="kamflow.flows.delivery")
    state = run(snapshot_dir)
    assert state.is_completed(), state.message
    assert "in 2 worker process(es)" in caplog.text
    tasks = store(kamflow_home).list_tasks()
    assert tasks, "the generated snapshot has declining accounts: tasks are expected"
    # the owners' emails (the ops alert about the calendar, if any, is tested below)
    messages = [m for m in outbox(kamflow_home) if m["To"] != "ops@operator.example"]
    words, directory = load_wording(), config.load_owners()
    owners = {t.owner_email for t in tasks}
    assert {m["To"] for m in messages} == owners  # one digest per owner
    for message in messages:
        body = message.get_body(("plain",)).get_content()
        # the tasks released to them (open); the rest wait for capacity (queued), unmailed
        mine = [t for t in tasks if t.owner_email == message["To"] and t.status == "open"]
        # priority, then the most revenue at risk, then the deadline (worklist.grouping.urgency)
        first = min(mine, key=lambda t: (t.priority, -(t.value_at_risk or 0.0), t.due_at, t.id))
        assert first.account_id in message["Subject"]
        for task in mine:
            assert task.account_id in body and task.rule_id in body
            assert task.due_at.strftime("%Y-%m-%d") in body
            language = directory.language_of(task.owner_email)
            assert words.rule_description(task.rule_id, language) in body
    counts = store(kamflow_home).counts()
    assert counts["unsent_emails"] == 0
    # the account roster: every account of the snapshot, quarantined ones too, none lost
    ids = set(pd.read_csv(snapshot_dir / "accounts.csv", dtype=str)["account_id"].dropna())
    with store(kamflow_home).session() as session:
        rows = session.execute(select(AccountRecord.account_id, AccountRecord.lost_at)).all()
    assert {a for a, _ in rows} == {i.strip() for i in ids}
    assert all(lost is None for _, lost in rows)

    again = run(snapshot_dir)
    assert again.is_completed(), again.message
    assert store(kamflow_home).counts() == counts
    assert len([m for m in outbox(kamflow_home)
                if m["To"] != "ops@operator.example"]) == len(messages)
    # AS_OF's next 60 days reach 2027, without its notice (tests/conftest.py): both runs warn,
    # ops got one email (same outbox key on the rerun)
    assert len(list((kamflow_home / "outbox").glob("calendar-gap-*.eml"))) == 1


def test_run_warns_when_the_holiday_data_runs_out(prefect_api, snapshot_dir, kamflow_home,
                                                   tmp_path, monkeypatch):
    """A calendar without holiday data for the next 60 days (here: public_holidays none) is
    said in the summary, as an artifact and in one email to ops; the run still completes."""
    import shutil

    import yaml

    from kamflow.core.settings import DEFAULT_CONF_DIR

    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    calendar = yaml.safe_load((conf / "calendar.yaml").read_text(encoding="utf-8"))
    (conf / "calendar.yaml").write_text(yaml.safe_dump({**calendar, "public_holidays": "none"}),
                                        encoding="utf-8")
    monkeypatch.setenv("KAMFLOW_CONF", str(conf))
    state, summary, run_id = run_with(prefect_api, snapshot_dir)
    assert state.is_completed(), state.message
    assert "holiday arrangement (days off and make-up workdays, 调休) is missing" in \
        summary["calendar_warning"]
    assert f"**Warning:** {summary['calendar_warning']}" in summary_markdown(prefect_api, run_id)
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)])))
    assert summary["calendar_warning"] in {a.key: a for a in artifacts}["calendar-warning"].data
    alerts = list((kamflow_home / "outbox").glob("calendar-gap-*.eml"))
    assert len(alerts) == 1
    again, summary_again, _ = run_with(prefect_api, snapshot_dir)  # a rerun: no second email
    assert again.is_completed(), again.message
    assert summary_again["calendar_warning"] == summary["calendar_warning"]
    assert list((kamflow_home / "outbox").glob("calendar-gap-*.eml")) == alerts
    alert = email.message_from_bytes(alerts[0].read_bytes(), policy=policy.default)
    assert alert["To"] == "ops@operator.example"
    assert summary["calendar_warning"] in alert.get_body(("plain",)).get_content()


def test_run_publishes_summary_and_actions_artifacts(run, snapshot_dir, prefect_api):
    """Ops see a markdown summary and a table of actions on the flow run page."""
    state = run(snapshot_dir)
    assert state.is_completed(), state.message
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(state.state_details
                                                                         .flow_run_id))])))
    by_key = {a.key: a for a in artifacts}
    assert {"retention-summary", "retention-actions"} <= set(by_key)
    summary = by_key["retention-summary"].data
    assert "accounts quarantined" in summary and "tasks created" in summary
    assert by_key["retention-actions"].type == "table"


def test_missing_required_column_stops_before_any_task_or_email(run, snapshot_dir,
                                                                  kamflow_home):
    """An accounts file without manager_email fails the run, names the column, sends nothing."""
    accounts = pd.read_csv(snapshot_dir / "accounts.csv", dtype=str)
    accounts.drop(columns=["manager_email"]).to_csv(snapshot_dir / "accounts.csv", index=False)
    state = run(snapshot_dir)
    assert state.is_failed()
    assert "manager_email" in state.message and "no email was sent" in state.message
    assert store(kamflow_home).counts()["tasks"] == 0
    assert not (kamflow_home / "outbox").exists() or not list((kamflow_home / "outbox").iterdir())


# --------------------------------------------------------------------------- labelled history

@pytest.fixture
def history_dir(tmp_path: Path) -> Path:
    """Another generated snapshot (other accounts), with its ground_truth.csv outcomes."""
    from kamflow.generate import make_snapshot, write_snapshot

    out = tmp_path / "history"
    write_snapshot(make_snapshot(1500, AS_OF, seed=3), out)
    return out


def run_with(prefect_api: str, source: Path, history=None):
    from kamflow.core.settings import Settings
    from kamflow.flows.retention import retention_run, summary_path

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        state = retention_run(source=str(source), as_of=AS_OF.isoformat(), history=history,
                              return_state=True)
    run_id = str(state.state_details.flow_run_id)
    summary = summary_path(run_id, Settings.from_env()).read_text(encoding="utf-8")
    return state, json.loads(summary), run_id


def summary_markdown(prefect_api: str, run_id: str) -> str:
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)])))
    return next(a.data for a in artifacts if a.key == "retention-summary")


def test_run_scores_with_a_model_learnt_from_the_history(prefect_api, snapshot_dir,
                                                         history_dir, kamflow_home):
    """Given a labelled history, the run scores with the logistic model learnt from it (the
    churn bands change), records what was learnt and its held-out metrics in the summary and
    its artifact, and every task still names its churn factors with their values."""
    from kamflow.flows.history import HistorySource

    plain, configured, _ = run_with(prefect_api, snapshot_dir)
    assert plain.is_completed(), plain.message
    assert configured["churn_risk_from"].startswith("configured factor weights")
    assert configured["churn_learning"] == {}

    state, summary, run_id = run_with(prefect_api, snapshot_dir,
                                      HistorySource(str(history_dir)))
    assert state.is_completed(), state.message
    learning = summary["churn_learning"]
    assert learning["method"] == "best_model" and learning["model_kind"] == "logistic_regression"
    assert learning["history"] == str(history_dir)
    assert learning["labels"] == str(history_dir / "ground_truth.csv")
    assert learning["accounts"] > 1400 and learning["held_out_accounts"] > 400
    assert learning["learnt"]["auc"] >= 0.95 and learning["configured"]["auc"] >= 0.95
    assert learning["coefficients"]["revenue_decline level"] > 0
    assert summary["churn_risk_from"].startswith(
        f"churn model (logistic regression) learnt from {learning['accounts']:,} labelled "
        "accounts")
    assert "learn" in summary["seconds"]
    assert summary["churn_bands"] != configured["churn_bands"]  # the model rated the accounts
    text = summary_markdown(prefect_api, run_id)
    assert f"**Churn risk:** {summary['churn_risk_from']}" in text
    assert f"| AUC | {learning['learnt']['auc']:.3f} |" in text
    # the emailed (open) tasks, risk-driven: queued ones carry the latest run's reason, and
    # proactive care (rules/care.yaml) is due on healthy accounts whose risk names no factor
    ruleset = load_ruleset()
    tasks = [t for t in store(kamflow_home).list_tasks(status="open")
             if not ruleset.rule(t.rule_id).proactive]
    assert tasks and all("Top churn factors:" in t.reason for t in tasks)
    at_risk = summary["value_at_risk"]
    assert at_risk["probability_from"].startswith("the learnt churn model's calibrated "
                                                  "probability")
    assert at_risk["monthly_cny"] > 0
    assert at_risk["yearly_cny"] == pytest.approx(12 * at_risk["monthly_cny"], abs=0.1)
    assert configured["value_at_risk"]["probability_from"].startswith(
        "churn risk through the logistic calibration a=-5.3, b=7, churn.calibration")
    assert "**Value at risk**" in text


def test_run_can_learn_information_gain_weights_or_nothing(prefect_api, snapshot_dir,
                                                          history_dir, kamflow_home, tmp_path,
                                                          monkeypatch):
    """churn.learn: information_gain records the learnt factor weights; none leaves churn risk
    to the configured weights and says that the history is not used."""
    import shutil

    import yaml

    from kamflow.core.settings import DEFAULT_CONF_DIR
    from kamflow.flows.history import HistorySource

    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    monkeypatch.setenv("KAMFLOW_CONF", str(conf))
    scoring = yaml.safe_load((conf / "scoring.yaml").read_text(encoding="utf-8"))
    for method in ("information_gain", "none"):
        scoring["churn"]["learn"] = method
        (conf / "scoring.yaml").write_text(yaml.safe_dump(scoring), encoding="utf-8")
        state, summary, run_id = run_with(prefect_api, snapshot_dir,
                                          HistorySource(str(history_dir)))
        assert state.is_completed(), state.message
        if method == "none":
            assert summary["churn_learning"] == {}
            assert "the labelled history is not used" in summary["churn_risk_from"]
            continue
        weights = summary["churn_learning"]["factor_weights"]
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-3)
        assert max(weights, key=weights.get) == "revenue_decline"
        assert summary["churn_risk_from"].startswith("churn weights (information gain) learnt")
        # weights only: value at risk still rests on the history, through the refitted
        # calibration of the (learnt-weight) risk score
        calibration = summary["churn_learning"]["calibration"]
        assert calibration["b"] > 0 and calibration["a"] != -5.3
        assert summary["value_at_risk"]["probability_from"] == (
            f"churn risk through the logistic calibration a={calibration['a']:g}, "
            f"b={calibration['b']:g}, refitted on the labelled history (Platt scaling)")
        assert "| revenue_decline | " in summary_markdown(prefect_api, run_id)


def test_value_at_risk_is_summed_per_value_class_and_churn_band():
    """The run summary's value at risk: the total a month and a year, and the totals per
    value class and churn band; the artifact table crosses them in CNY a year."""
    from kamflow.flows.report import (
        RunSummary,
        markdown,
        value_at_risk_summary,
        value_at_risk_table,
    )
    from kamflow.scoring import CHURN_BANDS, VALUE_CLASSES

    scored = pd.DataFrame({
        "value_class": ["high", "high", "low", "secondary"],
        "churn_band": ["critical", "low", "critical", "low"],
        "churn_probability": [0.5, 0.01, 0.4, 0.02],
        "value_at_risk": [100_000.0, 2_000.0, 400.0, 600.0]})
    figures = value_at_risk_summary(scored, VALUE_CLASSES, CHURN_BANDS)
    assert (figures["monthly_cny"], figures["yearly_cny"]) == (103_000.0, 1_236_000.0)
    assert figures["mean_churn_probability"] == pytest.approx(0.2325)
    assert figures["by_value_class"] == {
        "high": {"monthly_cny": 102_000.0, "yearly_cny": 1_224_000.0},
        "secondary": {"monthly_cny": 600.0, "yearly_cny": 7_200.0},
        "low": {"monthly_cny": 400.0, "yearly_cny": 4_800.0}}
    assert list(figures["by_churn_band"]) == ["low", "critical"]
    assert figures["by_churn_band"]["critical"]["monthly_cny"] == 100_400.0
    rows = {row["value class"]: row for row in value_at_risk_table(scored)}
    assert rows["high value (高价值)"]["critical risk (极高风险), CNY/year"] == "1,200,000"
    assert rows["high value (高价值)"]["total CNY/month"] == "102,000"
    assert rows["potential value (潜在价值)"]["total CNY/year"] == "0"
    text = markdown(RunSummary(run_id="r", source="s", as_of="2026-11-25",
                               value_at_risk=figures))
    assert "103,000 CNY a month, 1,236,000 CNY a year" in text
    assert "| high value (高价值) | 102,000 | 1,224,000 |" in text
    assert value_at_risk_summary(scored.drop(columns="value_at_risk")) == {}


def test_run_learns_from_operator_signals_and_names_them(prefect_api, tmp_path, kamflow_home):
    """A realistic history and today's snapshot, both read through a mapping that declares
    operator signals: the run's model learns from them, tasks name them among the top churn
    factors, and emails word them in their reader's language from the mapping's labels."""
    from kamflow.flows.history import HistorySource
    from kamflow.flows.retention import retention_run, summary_path
    from kamflow.generate import make_snapshot, write_snapshot

    mapping = Path(__file__).resolve().parents[1] / "docs" / "examples" / \
        "realistic-signals.mapping.yaml"
    write_snapshot(make_snapshot(1500, AS_OF, seed=3, bad_share=0.0, mode="realistic"),
                   tmp_path / "history")
    write_snapshot(make_snapshot(600, AS_OF, seed=11, bad_share=0.0, mode="realistic"),
                   tmp_path / "today")
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        state = retention_run(source=str(tmp_path / "today"), as_of=AS_OF.isoformat(),
                              mapping=str(mapping),
                              history=HistorySource(str(tmp_path / "history")),
                              return_state=True)
    assert state.is_completed(), state.message
    from kamflow.core.settings import Settings

    summary = json.loads(summary_path(str(state.state_details.flow_run_id),
                                      Settings.from_env()).read_text(encoding="utf-8"))
    coefficients = summary["churn_learning"]["coefficients"]
    assert coefficients["signal_auto_pay"] < 0
    tasks = store(kamflow_home).list_tasks()
    named = [t for t in tasks if "signal_auto_pay: automatic payment = no | 自动扣款为否"
             in t.reason or "signal_contract_type: contract type" in t.reason]
    assert named, [t.reason for t in tasks[:3]]
    bodies = [m.get_body(("plain",)).get_content() for m in outbox(kamflow_home)]
    assert any("自动扣款为否" in b or "合约类型为" in b for b in bodies)
    # Each reader gets one language: never the stored two-language text.
    assert not any("自动扣款为否" in b and "automatic payment" in b for b in bodies)
