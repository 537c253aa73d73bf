"""The email outbox: emails written in the transaction of the change they announce, sent later.

The flows' drain claims unsent emails a page at a time (``claim_unsent``: a claim token and a
lease, so two drains running at once never take the same row) and marks each email (or batch)
sent right after a backend accepted it, so a crash between writing and sending loses nothing:
once the dead drain's lease has expired, the next drain sends what is still unsent
(flows/delivery.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, or_, select, update

from kamflow.worklist.db import StoreBase, utc
from kamflow.worklist.models import OutboxEmail

__all__ = ["EMAIL_CHUNK", "LEASE", "OutboxStore", "QueuedEmail", "decode_images",
           "encode_images"]

EMAIL_CHUNK = 200  # outbox rows rendered and inserted at a time (bounded memory)
# How long a drain's claim on the rows it is sending holds. Longer than one backend call can take
# (a SendGrid batch with its retries); a drain that died leaves its rows to others after it.
LEASE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class QueuedEmail:
    """An email to write into the outbox (rendered by the caller)."""

    key: str
    recipient: str
    recipient_name: str
    subject: str
    text: str
    html: str
    kind: str
    task_ids: tuple[int, ...] = ()
    # pictures the HTML shows by cid: (cid, file name, PNG bytes)
    images: tuple[tuple[str, str, bytes], ...] = ()

    def values(self, now: dt.datetime, run_id: str) -> dict[str, Any]:
        """The outbox row's column values (bulk inserts take these)."""
        return {"key": self.key, "inline_images": encode_images(self.images),
                "recipient": self.recipient,
                "recipient_name": self.recipient_name, "subject": self.subject,
                "body_text": self.text, "body_html": self.html,
                "task_ids": ",".join(map(str, self.task_ids)), "created_at": utc(now),
                "run_id": run_id, "kind": self.kind, "attempts": 0}

    def row(self, now: dt.datetime, run_id: str) -> OutboxEmail:
        return OutboxEmail(**self.values(now, run_id))


def encode_images(images: Sequence[tuple[str, str, bytes]]) -> str | None:
    """Inline images as the outbox column keeps them (JSON, the bytes base64), None if none."""
    if not images:
        return None
    return json.dumps([{"cid": cid, "filename": name, "png": base64.b64encode(data).decode()}
                       for cid, name, data in images])


def decode_images(text: str | None) -> list[tuple[str, str, bytes]]:
    """The outbox column's inline images back as (cid, file name, bytes)."""
    return [(i["cid"], i["filename"], base64.b64decode(i["png"]))
            for i in json.loads(text)] if text else []


class OutboxStore(StoreBase):
    """Reading, claiming and marking the outbox's emails; queueing a single one."""

    def unsent_emails(self, after_id: int = 0, limit: int | None = None) -> list[OutboxEmail]:
        """Unsent emails in outbox order, from the one after ``after_id``; ``limit`` of them
        (the drain pages through a big outbox rather than holding every body at once)."""
        with self.session() as session:
            query = select(OutboxEmail).where(OutboxEmail.sent_at.is_(None),
                                              OutboxEmail.dead_at.is_(None),
                                              OutboxEmail.id > after_id).order_by(OutboxEmail.id)
            return list(session.scalars(query.limit(limit) if limit else query))

    def claim_unsent(self, token: str, now: dt.datetime, lease: dt.timedelta = LEASE,
                     after_id: int = 0, limit: int | None = None) -> list[OutboxEmail]:
        """Claim for the drain ``token`` the next unsent emails after ``after_id`` (``limit``
        of them) that no other drain holds: never claimed, or under a lease that has expired
        (its drain died). Each is marked in flight under this claim until ``now + lease``. The
        rows come back as they were before the claim: ``in_flight_since`` set means an earlier
        drain was interrupted while sending it (it may have been delivered).

        PostgreSQL locks the candidates with ``FOR UPDATE SKIP LOCKED`` (a drain claiming at
        the same moment takes the next ones); SQLite claims under ``BEGIN IMMEDIATE``."""
        now = utc(now)
        query = select(OutboxEmail).where(
            OutboxEmail.sent_at.is_(None), OutboxEmail.dead_at.is_(None),
            OutboxEmail.id > after_id,
            or_(OutboxEmail.lease_until.is_(None), OutboxEmail.lease_until <= now),
        ).order_by(OutboxEmail.id)
        if limit:
            query = query.limit(limit)
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.write_session() as session:
            rows = list(session.scalars(query))
            if rows:  # the loaded rows keep their pre-claim values (no session sync)
                session.execute(update(OutboxEmail).where(
                    OutboxEmail.id.in_([row.id for row in rows])).values(
                    claim_token=token, lease_until=now + lease, in_flight_since=now),
                    execution_options={"synchronize_session": False})
        return rows

    def unsent_count(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count()).select_from(OutboxEmail).where(
                OutboxEmail.sent_at.is_(None), OutboxEmail.dead_at.is_(None))) or 0)

    def dead_letters(self) -> list[OutboxEmail]:
        """Emails given up on after too many permanent failures, oldest first."""
        with self.session() as session:
            return list(session.scalars(select(OutboxEmail).where(
                OutboxEmail.dead_at.is_not(None)).order_by(OutboxEmail.id)))

    def mark_sent(self, email_id: int, backend: str, provider_id: str,
                  now: dt.datetime) -> None:
        self.mark_sent_many([(email_id, provider_id)], backend, now)

    def mark_sent_many(self, sent: Sequence[tuple[int, str]], backend: str,
                       now: dt.datetime) -> None:
        """Record in one transaction that the backend accepted these (outbox id, provider id)."""
        if not sent:
            return
        table = cast(Table, OutboxEmail.__table__)
        statement = update(table).where(table.c.id == bindparam("email_id")).values(
            sent_at=utc(now), backend=backend, provider_id=bindparam("provider"),
            attempts=table.c.attempts + 1, last_error=None, in_flight_since=None,
            claim_token=None, lease_until=None)
        with self.session() as session:  # one executemany, not one statement per email
            session.connection().execute(statement, [
                {"email_id": email_id, "provider": (provider_id or "")[:500]}
                for email_id, provider_id in sent])

    def mark_failed(self, email_id: int, error: str, permanent: bool = False,
                    dead_after: int | None = None, now: dt.datetime | None = None) -> bool:
        """Record a failed attempt. A ``permanent`` one counts towards the dead letter: at
        ``dead_after`` permanent failures the email is dead (``dead_at``), no longer drained.
        True when this failure made it a dead letter."""
        failures = OutboxEmail.permanent_failures + (1 if permanent else 0)
        dies = permanent and dead_after is not None
        values: dict[str, Any] = {"attempts": OutboxEmail.attempts + 1,
                                  "last_error": error[:2000], "in_flight_since": None,
                                  "claim_token": None, "lease_until": None,  # claim released
                                  "permanent_failures": failures}
        if dies:
            values["dead_at"] = case((failures >= dead_after, utc(now or dt.datetime.now(dt.UTC))),
                                     else_=None)
        with self.session() as session:
            session.execute(update(OutboxEmail).where(OutboxEmail.id == email_id).values(values))
            return dies and bool(session.scalar(select(OutboxEmail.dead_at.is_not(None))
                                                .where(OutboxEmail.id == email_id)))

    def mark_in_flight(self, email_ids: Sequence[int], now: dt.datetime) -> None:
        """Note that these emails are being handed to a backend right now. If the process dies
        before ``mark_sent``/``mark_failed``, the next drain sees them still in flight: they may
        have been delivered, and are sent again (at least once, never silently lost)."""
        if not email_ids:
            return
        with self.session() as session:
            session.execute(update(OutboxEmail).where(OutboxEmail.id.in_(list(email_ids)))
                            .values(in_flight_since=now))

    def queue_email(self, email: QueuedEmail, now: dt.datetime, run_id: str = "") -> bool:
        """Put one email in the outbox unless one with the same key is there already."""
        with self.session() as session:
            if session.scalar(select(OutboxEmail.id).where(OutboxEmail.key == email.key)):
                return False
            session.add(email.row(now, run_id))
        return True
