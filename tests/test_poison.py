"""Poison values (issue 15): one odd value must not stop the night's emails."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch, drain_outbox, queue_daily_digests, reassign_task
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
