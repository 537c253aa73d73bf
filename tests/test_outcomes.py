"""Task outcomes (issue 23): conf/outcomes.yaml, `kamflow tasks done --outcome`, `kamflow tasks
import` of a CRM's file, and what each outcome does next (retry, follow-up, cancel, cooldown)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from kamflow import config
from kamflow.cli import main
from kamflow.core.errors import ConfigError
from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch
from kamflow.worklist import TaskStore
from kamflow.worklist.bulk import insert_rows
from kamflow.worklist.calendar import BusinessCalendar
from kamflow.worklist.effects import reported_vs_fate
from kamflow.worklist.models import Task, TaskEvent
from kamflow.worklist.outcomes import OutcomeRecord
from kamflow.worklist.tasks import HeldOutError
from tests.crash_harness import NOW, OWNERS, TITLES, decisions

OUTCOMES = config.load_outcomes()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A KAMFLOW_HOME whose task store holds the five harness tasks (ids 1-5)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("KAMFLOW_HOME", str(home))
    monkeypatch.delenv("KAMFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("KAMFLOW_CONF", raising=False)
    with TaskStore(f"sqlite:///{home / 'kamflow.db'}") as store:
        dispatch(decisions(), TITLES, OWNERS, store, "cli", NOW, BusinessCalendar(),
                 LinkSigner(b"c" * 32))
    return home


def store_of(home: Path) -> TaskStore:
    return TaskStore(f"sqlite:///{home / 'kamflow.db'}")


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- configuration

def test_shipped_outcomes_have_words_and_next_steps() -> None:
    """The seven default codes, worded in both languages through the vocabulary, each with
    what happens next."""
    assert OUTCOMES.codes == ("renewed", "offer_accepted", "problem_solved", "follow_up",
                              "intends_to_leave", "not_reached", "not_relevant")
    assert OUTCOMES.words("not_reached", "zh-CN") == "未联系上"
    assert OUTCOMES.words("follow_up", "en") == "follow-up needed"
    assert {o.code: o.then for o in OUTCOMES.outcomes}["not_relevant"] == "cancel"
    assert OUTCOMES.find("未联系上").code == "not_reached"
    assert OUTCOMES.find("Renewed or kept").code == "renewed"


@pytest.mark.parametrize(("text", "message"), [
    ("outcomes: {called: {then: close}}", "key 'outcomes.called': a code of your own needs"),
    ("outcomes: {renewed: {then: celebrate}}", "key 'outcomes.renewed.then'"),
    ("outcomes: {not_reached: {then: retry}}", "at least one outcome must be a real contact"),
    ("outcomes: {renewed: {then: close, colour: red}}", "key 'outcomes.renewed.colour' is "
                                                        "unknown"),
    ("note_max_chars: 0\noutcomes: {renewed: {then: close}}", "key 'note_max_chars'"),
])
def test_bad_outcome_files_are_refused_naming_the_key(tmp_path: Path, text: str,
                                                      message: str) -> None:
    path = tmp_path / "outcomes.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        config.load_outcomes(path)


def test_an_own_code_with_its_words(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.yaml"
    path.write_text("outcomes:\n  renewed: {then: close}\n"
                    "  visited: {zh: 已上门, en: visited on site, then: close}\n",
                    encoding="utf-8")
    found = config.load_outcomes(path)
    assert found.words("visited", "zh") == "已上门"
    assert found.words("renewed", "zh") == "已续约/保持"


# --------------------------------------------------------------------------- the CLI

def test_done_with_an_outcome_is_kept_as_fields_and_shown(home: Path, capsys) -> None:
    """`tasks done 1 --outcome renewed --minutes 20 --note ...` closes the task; `tasks show`
    prints the outcome, minutes and note; the JSON history carries them as fields."""
    code, out, err = run(capsys, "tasks", "done", "1", "--outcome", "renewed", "--minutes", "20",
                         "--note", "signed for two years\x1b[31m", "--by", "wang")
    assert code == 0, err
    assert "renewed or kept (renewed), 20 min; it is now done" in out
    code, shown, _ = run(capsys, "tasks", "show", "1")
    assert "outcome:     renewed or kept (renewed), 20 min in all" in shown
    assert "note: signed for two years\\x1b[31m" in shown and "\x1b" not in shown
    code, text, _ = run(capsys, "tasks", "show", "1", "--json")
    record = json.loads(text)
    assert (record["status"], record["outcome"], record["minutes_spent"]) == ("done", "renewed",
                                                                              20)
    last = record["history"][-1]
    assert (last["event"], last["outcome"], last["minutes_spent"]) == ("done", "renewed", 20)
    assert last["note"] == "signed for two years\x1b[31m" and last["detail"] == "by wang"


def test_done_refuses_unknown_codes_and_bad_minutes(home: Path, capsys) -> None:
    code, _, err = run(capsys, "tasks", "done", "1", "--outcome", "sold", "--minutes", "5")
    assert code == 2 and "unknown outcome 'sold'" in err and "not_reached" in err
    code, _, err = run(capsys, "tasks", "done", "1", "--outcome", "renewed")
    assert code == 2 and "--minutes N is needed" in err
    code, _, err = run(capsys, "tasks", "done", "1", "--outcome", "renewed", "--minutes",
                       "9999")
    assert code == 2 and "between 0 and 480" in err
    code, _, err = run(capsys, "tasks", "done", "1", "--outcome", "renewed", "--minutes", "5",
                       "--note", "x" * 501)
    assert code == 2 and "at most 500" in err
    with store_of(home) as store:
        assert store.get_task(1).status == "open" and store.get_task(1).outcome is None


def test_what_each_outcome_does_next(home: Path, capsys) -> None:
    """not reached: open, with a retry date, no cooldown; follow-up: done and a follow-up task
    due the day given; not relevant: cancelled, no cooldown; a real contact: cooldown."""
    assert run(capsys, "tasks", "done", "1", "--outcome", "not_reached", "--minutes", "15")[0] == 0
    tomorrow = BusinessCalendar().today() + dt.timedelta(days=3)
    assert run(capsys, "tasks", "done", "2", "--outcome", "follow_up", "--minutes", "30",
               "--follow-up", tomorrow.isoformat())[0] == 0
    assert run(capsys, "tasks", "done", "4", "--outcome", "not_relevant", "--minutes", "2")[0] == 0
    assert run(capsys, "tasks", "done", "5", "--outcome", "problem_solved", "--minutes",
               "40")[0] == 0
    with store_of(home) as store:
        retried = store.get_task(1)
        assert retried.status == "open" and retried.outcome == "not_reached"
        assert retried.retry_at is not None and retried.minutes_spent == 15
        assert store.get_task(2).status == "done"
        follow = next(t for t in store.list_tasks() if t.follow_up_of == 2)
        assert (follow.status, follow.account_id, follow.action) == ("open", "KA2", "care_call")
        assert BusinessCalendar().local_date(follow.due_at) == tomorrow
        assert "Follow-up of task 2" in follow.reason
        assert store.get_task(4).status == "cancelled"
        # raised again now: KA1 (still open) and KA2 (its follow-up open) are skipped as
        # open; KA3's not-relevant starts no cooldown: raised again; KA4's contact cools down
        again = dispatch(decisions(), TITLES, OWNERS, store, "again", NOW + dt.timedelta(hours=1),
                         BusinessCalendar(), LinkSigner(b"c" * 32))
        assert again.created == 1
        assert again.skipped_cooldown == 1
        assert any(t.account_id == "KA3" and t.run_id == "again" for t in store.list_tasks())
    code, _, err = run(capsys, "tasks", "done", "1", "--outcome", "renewed", "--minutes", "5",
                       "--follow-up", tomorrow.isoformat())
    assert code == 2 and "--follow-up goes with an outcome that raises a follow-up" in err


# --------------------------------------------------------------------------- import

OWNER_OF = ("wang@staff.example.test", "li@staff.example.test")


def many_tasks(home: Path, count: int) -> list[int]:
    """``count`` open tasks written straight into the store (half wang's, half li's)."""
    with store_of(home) as store, store.session() as session:
        start = session.query(Task).count()
        rows = [{"account_id": f"X{i}", "account_name": f"客户 {i}", "action": "care_call",
                 "action_title": "Proactive care call", "owner_role": "account_manager",
                 "owner_name": "经理", "owner_email": OWNER_OF[i % 2], "priority": 3,
                 "rule_id": "r1", "ruleset_version": "v", "reason": "r", "status": "open",
                 "created_at": NOW, "due_at": NOW + dt.timedelta(days=2), "cooldown_days": 30.0,
                 "run_id": "bulk", "open_key": f"X{i}|care_call", "escalation_level": 0,
                 "released_at": NOW} for i in range(count)]
        insert_rows(session, Task.__table__, rows)
    return list(range(start + 1, start + count + 1))


def outcome_frame(ids: list[int]) -> pd.DataFrame:
    codes = ["renewed", "未联系上", "problem_solved", "not_relevant", "offer_accepted"]
    return pd.DataFrame({
        "task_id": ids, "outcome": [codes[i % len(codes)] for i in range(len(ids))],
        "minutes": [5 + i % 40 for i in range(len(ids))],
        "note": ["<b>called</b>" if i % 7 == 0 else "" for i in range(len(ids))],
        "owner": [OWNER_OF[(t - 6) % 2] for t in ids]})


def test_a_10000_row_file_with_3_bad_rows_is_refused_then_applied_once(home: Path,
                                                                       capsys) -> None:
    """3 bad rows (unknown task, unknown outcome, bad number) and nothing applied; one of
    another owner too when fixed partially; the fixed file applies all rows; again: none."""
    ids = many_tasks(home, 10_000)
    frame = outcome_frame(ids)
    bad = frame.astype({"minutes": object})
    bad.loc[100, "task_id"] = 999_999  # file row 102
    bad.loc[2000, "outcome"] = "sold"  # row 2002
    bad.loc[7777, "minutes"] = "ten"  # row 7779
    path = home / "crm.csv"
    bad.to_csv(path, index=False)
    code, _, err = run(capsys, "tasks", "import", str(path))
    assert code == 2 and "3 bad row(s); nothing was applied" in err
    assert "row 102, field task_id: there is no task 999999" in err
    assert "row 2002, field outcome: unknown outcome 'sold'" in err
    assert "row 7779, field minutes: minutes must be a whole number, not 'ten'" in err
    assert err.count("  row ") == 3
    with store_of(home) as store, store.session() as session:
        assert session.query(TaskEvent).filter(TaskEvent.outcome.is_not(None)).count() == 0
    other = frame.copy()
    other.loc[5, "owner"] = "li@staff.example.test" if other.loc[5, "owner"] != \
        "li@staff.example.test" else "wang@staff.example.test"
    other.to_csv(path, index=False)
    code, _, err = run(capsys, "tasks", "import", str(path))
    assert code == 2 and "row 7, field owner: task" in err and "1 bad row(s)" in err
    frame.to_csv(path, index=False)
    code, out, err = run(capsys, "tasks", "import", str(path))
    assert code == 0, err
    assert "10,000 outcome(s) applied, 0 already imported before" in out
    with store_of(home) as store, store.session() as session:
        assert session.query(TaskEvent).filter(TaskEvent.outcome.is_not(None)).count() == 10_000
        statuses = dict(session.query(Task.status, Task.id).filter(Task.id.in_(ids[:5])).all())
        assert set(statuses) == {"done", "open", "cancelled"}  # not reached stays open
        assert store.get_task(ids[1]).outcome == "not_reached"
    code, out, err = run(capsys, "tasks", "import", str(path))
    assert code == 0, err
    assert "0 outcome(s) applied, 10,000 already imported before" in out
    with store_of(home) as store, store.session() as session:
        assert session.query(TaskEvent).filter(TaskEvent.outcome.is_not(None)).count() == 10_000


def test_excel_through_a_mapping(home: Path, capsys) -> None:
    """A CRM's own Excel columns and words, read through a mapping; a label the mapping does
    not know is named with its row and field."""
    crm = pd.DataFrame({"任务编号": [1, 4], "处理结果": ["已续约", "联系不上"],
                        "用时": [12, 8], "客户经理": ["wang@staff.example.test",
                                                   "li@staff.example.test"]})
    path = home / "crm.xlsx"
    crm.to_excel(path, index=False)
    mapping = home / "crm-mapping.yaml"
    mapping.write_text("columns:\n  task_id: 任务编号\n  minutes: 用时\n  owner: 客户经理\n"
                       "  outcome: {from: 处理结果,\n"
                       "            values: {已续约: renewed, 未接通: not_reached}}\n",
                       encoding="utf-8")
    code, _, err = run(capsys, "tasks", "import", str(path), "--mapping", str(mapping))
    assert code == 2 and "row 3, field outcome: not a label the mapping knows" in err
    crm.loc[1, "处理结果"] = "未接通"
    crm.to_excel(path, index=False)
    code, out, err = run(capsys, "tasks", "import", str(path), "--mapping", str(mapping))
    assert code == 0 and "2 outcome(s) applied" in out, err
    with store_of(home) as store:
        assert store.get_task(1).outcome == "renewed" and store.get_task(1).minutes_spent == 12
        assert store.get_task(4).outcome == "not_reached" and store.get_task(4).status == "open"


def test_the_store_refuses_another_owner_and_records_a_key_once(home: Path) -> None:
    with store_of(home) as store:
        not_reached = OUTCOMES.get("not_reached")
        with pytest.raises(PermissionError, match="is with wang@staff.example.test"):
            store.record_outcome(OutcomeRecord(1, not_reached, 5, owner="li@staff.example.test"),
                                 NOW, "li")
        record = OutcomeRecord(1, not_reached, 5, key="form-1", owner="WANG@staff.example.test")
        assert store.record_outcome(record, NOW, "wang")[1] is True
        assert store.record_outcome(record, NOW, "wang")[1] is False
        assert store.get_task(1).minutes_spent == 5
        assert [e.event for e in store.history(1)] == ["created", "attempted"]


# ------------------------------------------------------------- with the holdout and worth

def held_out_task(home: Path) -> int:
    """A decision of the holdout's control group (status held_out, wang's account), stored as
    dispatch stores one."""
    with store_of(home) as store, store.session() as session:
        insert_rows(session, Task.__table__, [{
            "account_id": "H1", "account_name": "客户 H1", "action": "care_call",
            "action_title": "Proactive care call", "owner_role": "account_manager",
            "owner_name": "王芳", "owner_email": "wang@staff.example.test", "priority": 3,
            "rule_id": "r1", "ruleset_version": "v", "reason": "r", "status": "held_out",
            "created_at": NOW, "due_at": NOW + dt.timedelta(days=2), "cooldown_days": 30.0,
            "run_id": "held", "open_key": None, "escalation_level": 0, "released_at": None,
            "experiment_period": "2026Q4", "holdout_key": "H1|care_call|2026Q4"}])
        return int(session.query(Task.id).filter(Task.account_id == "H1").scalar())


def test_no_outcome_on_a_held_out_decision(home: Path, capsys) -> None:
    """A held-out decision is nobody's work: `tasks done --outcome`, the store and an import
    refuse an outcome on it, saying it is held out, and record nothing."""
    task_id = held_out_task(home)
    code, _, err = run(capsys, "tasks", "done", str(task_id), "--outcome", "renewed",
                       "--minutes", "5")
    assert code == 2 and f"task {task_id} is held out (the holdout's control group" in err
    with store_of(home) as store:
        with pytest.raises(HeldOutError, match="held out"):
            store.record_outcome(OutcomeRecord(task_id, OUTCOMES.get("not_reached"), 5), NOW,
                                 "wang")
        task = store.get_task(task_id)
        assert (task.status, task.outcome, task.minutes_spent) == ("held_out", None, None)
        assert store.history(task_id) == []
    path = home / "crm.csv"
    pd.DataFrame({"task_id": [1, task_id], "outcome": ["renewed", "renewed"],
                  "minutes": [5, 5], "owner": ["wang@staff.example.test"] * 2}
                 ).to_csv(path, index=False)
    code, _, err = run(capsys, "tasks", "import", str(path))
    assert code == 2 and "1 bad row(s); nothing was applied" in err
    assert f"row 3, field task_id: task {task_id} is held out" in err
    with store_of(home) as store:
        assert store.get_task(1).outcome is None


def test_a_follow_up_continues_its_decision(home: Path, capsys) -> None:
    """The follow-up task keeps what its task is worth and its experiment period; the effects
    report reads the recorded minutes and outcome and does not count the follow-up as a
    decision of its own."""
    worth = {"effort_hours": 0.5, "expected_retained_cny_yearly": 1200.0,
             "effect_source": "prior", "must_do": False, "experiment_period": "2026Q4"}
    with store_of(home) as store, store.session() as session:
        session.query(Task).filter(Task.id == 2).update(worth)
    due = BusinessCalendar().today() + dt.timedelta(days=3)
    assert run(capsys, "tasks", "done", "2", "--outcome", "follow_up", "--minutes", "30",
               "--follow-up", due.isoformat())[0] == 0
    assert run(capsys, "tasks", "done", "1", "--outcome", "renewed", "--minutes", "10")[0] == 0
    with store_of(home) as store:
        follow = next(t for t in store.list_tasks() if t.follow_up_of == 2)
        assert {k: getattr(follow, k) for k in worth} == worth
        rows = store.decision_rows(NOW - dt.timedelta(days=1))
        volume = store.decision_volume(NOW - dt.timedelta(days=1))
    assert len(rows) == 5 and int(volume["decisions"].sum()) == 5  # the five harness tasks
    by_decision = rows.set_index(["account_id", "action"])
    assert by_decision.loc[("KA2", "care_call"), "minutes"] == 30
    assert by_decision.loc[("KA2", "care_call"), "outcome"] == "follow_up"
    assert by_decision.loc[("KA1", "care_call"), "outcome"] == "renewed"
    fates = pd.DataFrame({"action": ["care_call"] * 2, "outcome": ["renewed", "not_reached"],
                          "matured": [True, True], "fate": ["left", "left"]})
    assert reported_vs_fate(fates) == [{"action": "care_call", "reported_kept": 1,
                                        "left_anyway": 1, "left_anyway_share": 1.0}]
