"""Poison values (issue 15): one odd value must not stop the night's emails."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pandas as pd
import pytest

from kamflow.core.errors import ConfigError
from kamflow.core.links import LinkSigner
from kamflow.core.settings import Settings
from kamflow.flows.delivery import (
    DrainResult,
    dispatch,
    drain_outbox,
    queue_daily_digests,
    reassign_task,
)
from kamflow.flows.report import RunSummary, markdown
from kamflow.notifications import Email, FileOutbox, SendError, SmtpBackend
from kamflow.notifications.testing import RecordingBackend
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from kamflow.worklist.roster import id_drift
from kamflow.worklist.store import QueuedEmail
from tests.conftest import SmtpSink
from tests.crash_harness import NOW, OWNERS, TITLES, decisions_of


def _store(tmp_path: Path) -> TaskStore:
    return TaskStore(f"sqlite:///{tmp_path / 'k.db'}")


# -- owner emails compared case-insensitively ------------------------------------------------
MIXED_CASE = [("KA1", "care_call", "account_manager", "Wang@op.cn"),
              ("KA2", "care_call", "account_manager", "wang@op.cn"),
              ("KA3", "care_call", "account_manager", " WANG@OP.CN ")]


def test_mixed_case_owner_gets_one_new_task_email_and_one_digest(tmp_path: Path) -> None:
    """Wang@op.cn and wang@op.cn are one owner: one new-task email, one digest listing all."""
    store = _store(tmp_path)
    calendar = BusinessCalendar()
    dispatch(decisions_of(MIXED_CASE), TITLES, OWNERS, store, "r", NOW, calendar,
             LinkSigner(b"d" * 32))
    assert {t.owner_email for t in store.list_tasks()} == {"wang@op.cn"}
    new = [e for e in store.unsent_emails() if e.kind == "new_tasks"]
    assert len(new) == 1 and len(new[0].task_ids.split(",")) == 3
    later = NOW + dt.timedelta(days=1)
    assert queue_daily_digests(store, OWNERS, calendar, later, TITLES) == 1
    digest = [e for e in store.unsent_emails() if e.kind == "daily_digest"]
    assert [d.recipient for d in digest] == ["wang@op.cn"]
    assert len(digest[0].task_ids.split(",")) == 3
    store.dispose()


def test_digest_groups_stored_mixed_case_owners_as_one(tmp_path: Path) -> None:
    """Tasks already stored under Wang@op.cn and wang@op.cn (an older run, a reassignment)
    still make one digest, not a unique-key violation that stops every digest."""
    store = _store(tmp_path)
    calendar = BusinessCalendar()
    dispatch(decisions_of(MIXED_CASE[1:2]), TITLES, OWNERS, store, "r", NOW, calendar)
    task = store.list_tasks()[0]
    dispatch(decisions_of([("KA9", "care_call", "key_account_department", "x@op.cn")]),
             TITLES, OWNERS, store, "r2", NOW, calendar)
    other = [t for t in store.list_tasks() if t.id != task.id][0]
    reassign_task(store, OWNERS, other.id, "Wang@OP.cn", "ops", NOW)
    later = NOW + dt.timedelta(days=1)
    assert queue_daily_digests(store, OWNERS, calendar, later, TITLES) == 1
    digest = [e for e in store.unsent_emails() if e.kind == "daily_digest"]
    assert len(digest) == 1 and digest[0].recipient == "wang@op.cn"
    assert sorted(map(int, digest[0].task_ids.split(","))) == sorted([task.id, other.id])
    store.dispose()


# -- one email's failure fails that email alone --------------------------------------------
def _queue(store: TaskStore, *recipients: str) -> None:
    for number, recipient in enumerate(recipients, start=1):
        store.queue_email(QueuedEmail(f"k{number}", recipient, "Wang", "Tasks", "你好", "",
                                      "new_tasks"), NOW, "r")


def test_a_non_ascii_address_fails_alone_and_does_not_wedge_the_file_outbox(
        tmp_path: Path) -> None:
    """wang@运营商.cn cannot go in an .eml header: that email fails with its reason on its row,
    the others are written, and the next drain runs again instead of raising on it."""
    store = _store(tmp_path)
    _queue(store, "a@op.cn", "wang@运营商.cn", "b@op.cn")
    outbox = FileOutbox(tmp_path / "outbox")
    result = drain_outbox(store, outbox, "kamflow@op.cn")
    assert (result.sent, result.failed) == (2, 1)
    assert sorted(p.name for p in (tmp_path / "outbox").glob("*.eml")) == ["k1.eml", "k3.eml"]
    [bad] = store.unsent_emails()
    assert bad.key == "k2" and bad.in_flight_since is None
    assert "UnicodeEncodeError" in (bad.last_error or "") and "permanent" in bad.last_error
    again = drain_outbox(store, outbox, "kamflow@op.cn")
    assert (again.sent, again.failed, again.resent_in_doubt) == (0, 1, 0)
    store.dispose()


class _Fussy(RecordingBackend):
    """A backend that raises a plain ValueError (not a SendError) for one address."""

    def send(self, email: Email) -> str:
        if email.to.startswith("bad"):
            raise ValueError("cannot encode this address")
        return super().send(email)


def test_a_backend_raising_on_one_email_fails_that_email_alone(tmp_path: Path) -> None:
    """Any exception from the backend for one email is recorded on its row; the rest go."""
    store = _store(tmp_path)
    _queue(store, "a@op.cn", "bad@op.cn", "b@op.cn")
    backend = _Fussy()
    result = drain_outbox(store, backend, "kamflow@op.cn")
    assert (result.sent, result.failed) == (2, 1)
    assert [e.to for e in backend.sent] == ["a@op.cn", "b@op.cn"]
    [bad] = store.unsent_emails()
    assert "ValueError: cannot encode this address" in (bad.last_error or "")
    store.dispose()


def test_smtp_an_unencodable_email_is_a_permanent_send_error(
        smtp_sink: tuple[SmtpSink, int]) -> None:
    """A text the message cannot encode (a lone surrogate from a bad decode) is a permanent
    SendError for that email, not a raw UnicodeEncodeError that stops the drain."""
    sink, port = smtp_sink
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    bad = Email(key="k1", sender="kamflow@op.cn", to="a@op.cn", subject="s", text="x \udc80")
    with pytest.raises(SendError) as caught:
        backend.send(bad)
    assert caught.value.permanent and "UnicodeEncodeError" in caught.value.reason
    backend.send(Email(key="k2", sender="kamflow@op.cn", to="b@op.cn", subject="s", text="ok"))
    assert [to for _, to, _ in sink.messages] == [["b@op.cn"]]


# -- dead letters --------------------------------------------------------------------------
def test_a_permanently_failing_email_becomes_a_dead_letter_and_ops_are_told_once(
        tmp_path: Path) -> None:
    """After ``dead_after`` permanent failures the email is a dead letter: not retried, not a
    failure any more (the run need not fail every hour), and ops get one alert naming it."""
    store = _store(tmp_path)
    _queue(store, "a@op.cn", "wang@运营商.cn")
    outbox = FileOutbox(tmp_path / "outbox")

    def drain() -> DrainResult:
        return drain_outbox(store, outbox, "kamflow@op.cn", dead_after=3, ops_email="ops@op.cn")

    assert [(r.failed, r.dead_lettered) for r in (drain(), drain())] == [(1, 0), (1, 0)]
    third = drain()
    assert (third.sent, third.failed, third.dead_lettered, third.ops_alerted) == (1, 0, 1, 1)
    [dead] = store.dead_letters()
    assert dead.key == "k2" and dead.permanent_failures == 3 and dead.dead_at is not None
    alerts = list((tmp_path / "outbox").glob("dead-letters-*.eml"))
    assert len(alerts) == 1
    alert = BytesParser(policy=policy.default).parsebytes(alerts[0].read_bytes())
    assert alert["To"] == "ops@op.cn" and "given up" in alert["Subject"]
    assert "k2 (new_tasks) to wang@运营商.cn" in alert.get_body(("plain",)).get_content()
    assert store.unsent_count() == 0
    fourth = drain()
    assert (fourth.sent, fourth.failed, fourth.dead_lettered, fourth.ops_alerted) == (0, 0, 0, 0)
    assert len(list((tmp_path / "outbox").glob("dead-letters-*.eml"))) == 1
    store.dispose()


def test_transient_failures_never_make_a_dead_letter(tmp_path: Path) -> None:
    """Only permanent refusals count: an email a flaky server keeps refusing stays queued."""
    store = _store(tmp_path)
    _queue(store, "a@op.cn")
    backend = RecordingBackend()
    backend.fail_next(4, permanent=False)
    for _ in range(4):
        result = drain_outbox(store, backend, "kamflow@op.cn", dead_after=2,
                              ops_email="ops@op.cn")
        assert (result.failed, result.dead_lettered) == (1, 0)
    assert store.dead_letters() == [] and store.unsent_count() == 1
    store.dispose()


def test_dead_letter_limit_is_a_setting_of_at_least_one() -> None:
    """KAMFLOW_DEAD_LETTER_AFTER defaults to 5; 0 is refused naming the variable."""
    assert Settings.from_env({}).dead_letter_after == 5
    assert Settings.from_env({"KAMFLOW_DEAD_LETTER_AFTER": "2"}).dead_letter_after == 2
    with pytest.raises(ConfigError, match="KAMFLOW_DEAD_LETTER_AFTER"):
        Settings.from_env({"KAMFLOW_DEAD_LETTER_AFTER": "0"})


def test_run_summary_shows_dead_letters() -> None:
    """The run's summary artifact counts the dead letters (and says nothing when none)."""
    summary = RunSummary(run_id="r", source="s", as_of="2026-11-25", emails_dead_lettered=2)
    assert "| emails dead-lettered (not retried; ops alerted) | 2 |" in markdown(summary)
    assert "dead-lettered" not in markdown(RunSummary(run_id="r", source="s", as_of="x"))


# -- account-id drift --------------------------------------------------------------------------
def test_leading_zeros_stripped_is_id_drift_naming_old_and_new_ids() -> None:
    """000123 -> 123 for every account: drift, with the old and new ids named."""
    known = [f"{n:06d}" for n in range(100, 200)]
    drift = id_drift(known, [str(n) for n in range(100, 200)], 0.2)
    assert drift is not None and (drift.known, drift.vanished, drift.appeared) == (100, 100, 100)
    assert drift.examples[0] == ("000100", "100")
    assert "'000100' -> '100'" in drift.message() and "no duplicate task" in drift.message()


def test_scientific_notation_and_float_ids_are_matched_to_the_known_ids() -> None:
    """1.23E+11 and 123.0 read as the ids they came from."""
    drift = id_drift(["123000000000", "000123"], ["1.23E+11", "123.0"], 0.2)
    assert drift is not None
    assert set(drift.examples) == {("123000000000", "1.23E+11"), ("000123", "123.0")}


def test_ordinary_churn_and_partial_exports_are_not_id_drift() -> None:
    """A few accounts gone and a few new, or many gone with none new (a partial export, the
    roster's own guard), or a first run with nothing known: no drift."""
    known = [f"{n:06d}" for n in range(1000)]
    churned = [f"{n:06d}" for n in range(100, 1100)]  # 10 % gone, 10 % new
    assert id_drift(known, churned, 0.2) is None
    assert id_drift(known, known[:300], 0.2) is None  # 70 % gone, nothing new
    assert id_drift([], churned, 0.2) is None
    assert id_drift(known, [str(int(a)) for a in known], 1.0) is None  # 1 turns it off


def test_store_compares_a_snapshot_with_the_roster_and_open_tasks(tmp_path: Path) -> None:
    """The store's check reads the roster (and open tasks' accounts) against a snapshot whose
    id column turned numeric, as a Parquet export or Excel would make it."""
    store = _store(tmp_path)
    accounts = pd.DataFrame({"account_id": [f"{n:06d}" for n in range(1, 51)],
                             "account_manager": "王", "manager_email": "wang@op.cn"})
    store.record_accounts(accounts, NOW)
    assert store.check_id_drift(accounts) is None
    numeric = accounts.assign(account_id=range(1, 51))
    drift = store.check_id_drift(numeric, 0.2)
    assert drift is not None and drift.examples[0] == ("000001", "1")
    store.dispose()


def test_pipeline_guard_threshold_is_read_and_checked(tmp_path: Path) -> None:
    """guards.max_id_drift_share defaults to 0.2, is read from conf/pipeline.yaml, and a value
    outside (0, 1] is refused naming the key."""
    from kamflow.config import load_pipeline

    path = tmp_path / "pipeline.yaml"
    path.write_text("validation: {}\n", encoding="utf-8")
    assert load_pipeline(path).max_id_drift_share == 0.2
    path.write_text("guards:\n  max_id_drift_share: 0.5\n", encoding="utf-8")
    assert load_pipeline(path).max_id_drift_share == 0.5
    path.write_text("guards:\n  max_id_drift_share: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="guards.max_id_drift_share"):
        load_pipeline(path)


def test_retention_run_stops_before_dispatch_when_the_ids_lost_their_leading_zeros(
        prefect_api: str, kamflow_home: Path, frames: dict, tmp_path: Path) -> None:
    """Yesterday's snapshot had ids 0000001...; today's export stripped the zeros: the run
    ends Failed naming old and new ids, with no new task, email or roster account."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kamflow.flows.retention import retention_run
    from kamflow.generate import write_snapshot
    from tests.conftest import AS_OF

    def snapshot(name: str, rename: Callable[[str], str]) -> str:
        out = tmp_path / name
        write_snapshot({table: frame.assign(account_id=frame["account_id"].map(rename))
                        if "account_id" in frame else frame
                        for table, frame in frames.items()}, out)
        return str(out)

    padded = snapshot("padded", lambda a: a.removeprefix("KA"))
    stripped = snapshot("stripped", lambda a: a.removeprefix("KA").lstrip("0"))
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        first = retention_run(source=padded, as_of=AS_OF.isoformat(), return_state=True)
        store = TaskStore(f"sqlite:///{kamflow_home / 'kamflow.db'}")
        tasks, emails = len(store.list_tasks()), len(list((kamflow_home / "outbox").iterdir()))
        ids = store.known_account_ids()
        second = retention_run(source=stripped, as_of=AS_OF.isoformat(), return_state=True)
    assert first.is_completed() and tasks > 0
    assert second.is_failed() and "account ids changed format" in second.message
    assert "'0000001' -> '1'" in second.message
    assert len(store.list_tasks()) == tasks and store.known_account_ids() == ids
    assert len(list((kamflow_home / "outbox").iterdir())) == emails
    store.dispose()


def test_escalation_stores_the_new_owner_lower_case(tmp_path: Path) -> None:
    """A supervisor written Zhao@OP.cn in owners.yaml gets escalated tasks as zhao@op.cn, the
    form every other task of theirs has, so their digest stays one email."""
    from kamflow.flows.delivery import escalate_overdue
    from kamflow.worklist import Owner, OwnerDirectory
    from tests.crash_harness import LATER

    owners = OwnerDirectory(roles=OWNERS.roles, fallback=OWNERS.fallback,
                            people={"zhao@op.cn": Owner("赵主管", "Zhao@OP.cn", "zh-CN")},
                            default_supervisor="Zhao@OP.cn")
    store = _store(tmp_path)
    calendar = BusinessCalendar()
    dispatch(decisions_of(MIXED_CASE[:1]), TITLES, owners, store, "r", NOW, calendar)
    result = escalate_overdue(store, owners, calendar, 1.0, LATER, TITLES)
    assert len(result.escalated) == 1
    assert [t.owner_email for t in store.list_tasks()] == ["zhao@op.cn"]
    store.dispose()
