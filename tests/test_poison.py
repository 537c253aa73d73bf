"""Poison values (issue 15): one odd value must not stop the night's emails."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

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
from kamflow.worklist.store import QueuedEmail
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


class _Sink:
    def __init__(self) -> None:
        self.received: list[list[str]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.received.append(list(envelope.rcpt_tos))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[_Sink, int]]:
    from tests.conftest import free_port

    sink, port = _Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def test_smtp_an_unencodable_email_is_a_permanent_send_error(
        smtp_sink: tuple[_Sink, int]) -> None:
    """A text the message cannot encode (a lone surrogate from a bad decode) is a permanent
    SendError for that email, not a raw UnicodeEncodeError that stops the drain."""
    sink, port = smtp_sink
    backend = SmtpBackend("127.0.0.1", port, timeout=5)
    bad = Email(key="k1", sender="kamflow@op.cn", to="a@op.cn", subject="s", text="x \udc80")
    with pytest.raises(SendError) as caught:
        backend.send(bad)
    assert caught.value.permanent and "UnicodeEncodeError" in caught.value.reason
    backend.send(Email(key="k2", sender="kamflow@op.cn", to="b@op.cn", subject="s", text="ok"))
    assert sink.received == [["b@op.cn"]]


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
