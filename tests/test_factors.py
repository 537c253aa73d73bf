"""A decision's churn factors as data (issue 25): JSON on the task, words from the vocabulary.

The factors round-trip through their JSON; the emails' zh-CN and en reasons are worded from the
data and say what a task stored as text only said; migration 0015 converts the stored reasons'
text where it reads, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from kamflow.core import factors, vocabulary
from kamflow.core.factors import Factor
from kamflow.core.vocabulary import Wording
from kamflow.notifications.render import render_task_digest
from tests.postgres import temporary_database

FACTORS = (Factor("revenue_decline", "revenue_decline", 0.38, 0.95),
           Factor("complaints", "complaints_90d", 4.0, 1.0),
           Factor("contract_ending", "days_to_contract_end", -20.0, 1.0),
           Factor("signal_contract_type", "signal_contract_type", 0.0, 1.0, 1,
                  ("contract type = month-to-month", "合约类型为按月")))
WHY = "churn_band=critical"
STORED = WHY + factors.FACTORS_MARK + vocabulary.ops_factor_text(FACTORS)


def test_factors_round_trip_as_json() -> None:
    data = factors.dumps(FACTORS)
    assert factors.loads(data) == FACTORS
    assert '"合约类型为按月"' in data  # readable in the store, not \\u-escaped
    assert factors.loads("[]") == () and factors.loads(None) is None and factors.loads("") is None
    assert factors.dumps(()) == "[]"


def test_reason_text_is_worded_from_the_data() -> None:
    assert STORED == (
        "churn_band=critical. Top churn factors: revenue_decline: revenue -38% (level 0.95), "
        "complaints: 4 complaints in 90 days (level 1.00), contract_ending: contract ended 20 "
        "days ago (level 1.00), signal_contract_type: contract type = month-to-month | "
        "合约类型为按月 (level 1.00)")


@pytest.mark.parametrize("lang, expected", [
    ("zh-CN", "合同已到期：续约洽谈。主要流失因素：收入较前 9 个月下降 38%；近 90 天投诉 4 次；"
              "合同已于 20 天前到期；合约类型为按月。"),
    ("en", "Contract ended: talk renewal. Main churn factors: revenue down 38% on the previous 9 "
           "months; 4 complaints in 90 days; contract ended 20 days ago; contract type = "
           "month-to-month."),
])
def test_zh_and_en_are_worded_from_the_data(lang: str, expected: str) -> None:
    """The reason comes from the factors, not from the stored text: a reason whose text says
    nothing of them still reads them; the data as JSON or as Factors alike."""
    wording = Wording({}, {"renew": ("Contract ended: talk renewal.", "合同已到期：续约洽谈。")})
    assert wording.reason("renew", WHY + factors.FACTORS_MARK + "x", lang, FACTORS) == expected
    assert wording.reason("renew", WHY, lang, factors.dumps(FACTORS)) == expected
    # No factor: the rule's words (with "[]" the stored text is not read for any)
    assert wording.reason("renew", STORED, lang, "[]") == expected.split("主要")[0].split(
        " Main")[0]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_task_stored_as_text_only_renders_as_one_with_data(lang: str) -> None:
    """An old task (no ``factors``: NULL in the store) has its factors read from its reason:
    the email is byte for byte the one of the same task stored with its data."""
    task = {"task_id": 1, "account_id": "KA1", "account_name": "上海银行",
            "action": "renewal_talk", "action_title": "Renewal talk", "priority": 1,
            "due_at": dt.datetime(2026, 12, 1, 2, tzinfo=dt.UTC), "reason": STORED,
            "rule_id": "renew"}
    old = render_task_digest("Wang", [task], lang, "Asia/Shanghai")
    new = render_task_digest("Wang", [{**task, "factors": factors.dumps(FACTORS)}], lang,
                             "Asia/Shanghai")
    assert old == new
    assert ("合同已于 20 天前到期" if lang == "zh-CN" else "contract ended 20 days ago") in old[1]
    assert "level" not in old[1]


def test_scoring_makes_factors_the_vocabulary_words() -> None:
    """explain_factors: per account the reason's text and the JSON of the same factors, each
    distinct combination made once; an account without factors has ``[]``."""
    from kamflow.scoring.explain import explain_factors

    frame = pd.DataFrame({
        "churn_factor_1": ["revenue_decline", "complaints", "", "revenue_decline"],
        "churn_factor_1_signal": ["revenue_decline", "complaints_90d", None, "revenue_decline"],
        "churn_factor_1_value": [0.381, 4.0, np.nan, 0.379],
        "churn_factor_1_level": [0.951, 1.0, np.nan, 0.951],
        "churn_factor_2": ["complaints", "", "", "complaints"],
        "churn_factor_2_signal": ["complaints_90d", None, None, "complaints_90d"],
        "churn_factor_2_value": [4.0, np.nan, np.nan, 4.0],
        "churn_factor_2_level": [1.0, np.nan, np.nan, 1.0]})
    texts, data = explain_factors(frame)
    assert texts[0] == texts[3] == ("revenue_decline: revenue -38% (level 0.95), complaints: 4 "
                                    "complaints in 90 days (level 1.00)")
    assert factors.loads(data[0]) == (Factor("revenue_decline", "revenue_decline", 0.38, 0.95),
                                      Factor("complaints", "complaints_90d", 4.0, 1.0))
    assert (texts[2], data[2]) == ("", "[]")
    assert [factors.from_reason(t) for t in texts] == [factors.loads(d) for d in data]


def test_no_regular_expression_reads_factor_words() -> None:
    """The vocabulary and the factors module import no ``re``: words are made from data."""
    for module in (vocabulary, factors):
        tree = ast.parse(inspect.getsource(module))
        imported = {alias.name for node in ast.walk(tree)
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in node.names} | {node.module for node in ast.walk(tree)
                                                if isinstance(node, ast.ImportFrom)}
        assert "re" not in imported, module.__name__


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store migrated to 0012 (before factors), with tasks stored as text only."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        with temporary_database() as url:
            yield url


def test_migration_0015_converts_the_reasons_that_read(old_store: str) -> None:
    from alembic import command

    from kamflow.worklist.store import alembic_config

    engine = create_engine(old_store)
    reasons = {1: STORED, 2: "outage_hours 14.5 > 8", 3: WHY + factors.FACTORS_MARK + "complaints",
               4: "Follow-up of task 1: call back"}
    try:
        with engine.begin() as conn:
            cfg = alembic_config(old_store)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0012_outcomes")
        with engine.begin() as conn:
            for task_id, reason in reasons.items():
                conn.execute(text(
                    "INSERT INTO tasks (id, account_id, account_name, action, action_title, "
                    "owner_role, owner_name, owner_email, priority, rule_id, ruleset_version, "
                    "reason, status, created_at, due_at, cooldown_days, run_id, "
                    "escalation_level) VALUES (:id, 'KA1', 'A', 'care_call', 'Care call', "
                    "'account_manager', 'W', 'w@op.cn', 1, 'r', 'v', :reason, 'open', "
                    "'2026-11-25 02:00:00+00:00', '2026-11-26 02:00:00+00:00', 0, 'run', 0)"),
                    {"id": task_id, "reason": reason})
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0015_factors")
        with engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT id, factors FROM tasks")).all())
            kept = dict(conn.execute(text("SELECT id, reason FROM tasks")).all())
        assert factors.loads(stored[1]) == FACTORS
        assert stored[2] is None and stored[3] is None and stored[4] is None
        assert kept == reasons  # the text stays what ops read
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0012_outcomes")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM tasks")).scalar() == 4
    finally:
        engine.dispose()


def test_the_store_keeps_the_factors_and_hands_them_to_the_emails(tmp_path: Path) -> None:
    """A decision's factors are stored as JSON on its task; the new-task email and the daily
    digest get them; a decision without factor data (made by hand) stores NULL."""
    from kamflow.worklist import TaskStore, plan_tasks
    from kamflow.worklist.models import Task
    from tests.test_worklist import NOW, OWNERS, TITLES, decisions

    made = decisions([("KA1", "care_call", "account_manager", "wang@operator.example"),
                      ("KA2", "care_call", "account_manager", "wang@operator.example")])
    made["churn_factors"] = vocabulary.ops_factor_text(FACTORS[:2])
    made["factors"] = [factors.dumps(FACTORS[:2]), None]
    seen: list[dict] = []

    def render(name: str, email: str, tasks: list[dict]) -> tuple[str, str, str]:
        seen.extend(tasks)
        return "s", "t", "h"

    with TaskStore(f"sqlite:///{tmp_path / 'tasks.db'}") as store:
        store.raise_tasks(plan_tasks(made, OWNERS, TITLES, NOW), "run-1", render, NOW)
        with store.session() as session:
            stored = {t.account_id: t.factors for t in session.query(Task)}
        digest = [view for views in store.open_tasks_by_owner().values() for view in views]
    assert factors.loads(stored["KA1"]) == FACTORS[:2] and stored["KA2"] is None
    for views in (seen, digest):
        by_account = {v["account_id"]: v["factors"] for v in views}
        assert by_account == stored
