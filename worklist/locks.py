"""Run locks: a job that must not run twice at once on one task store (``retention_run``).

A row of ``run_locks`` per job name holds its owner (the run id, process and host) and an
expiry the holder renews from a background thread while it works. A second run waits for the
lock up to a configurable time, then stops with one message naming the run that holds it. A
holder that was killed stops renewing, so its lock lapses after the lease by itself.

Taking the lock is a read-then-write in one transaction that holds the write lock from its
start: ``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite (``StoreBase.write_session``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.exc import IntegrityError

from kamflow.core.errors import KamflowError
from kamflow.worklist.db import StoreBase, aware, utc
from kamflow.worklist.models import RunLock

__all__ = ["LOCK_LEASE", "LOCK_WAIT", "RunLocked", "lock_owner", "run_lock"]

log = logging.getLogger(__name__)

LOCK_LEASE = dt.timedelta(minutes=10)  # renewed every tenth of it; a dead holder's lapses
LOCK_WAIT = 1800.0  # seconds a second run waits for the first before it stops


class RunLocked(KamflowError):
    """Another run of the same job holds the store's run lock and did not finish in time."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def lock_owner(run_id: str) -> str:
    """Who holds a lock, as the waiting run's message shows it."""
    return f"run {run_id} (pid {os.getpid()} on {socket.gethostname()})"[:200]


@contextmanager
def run_lock(store: StoreBase, name: str, owner: str, wait: float = LOCK_WAIT,
             lease: dt.timedelta = LOCK_LEASE, poll: float = 1.0,
             clock: Callable[[], dt.datetime] = _utcnow) -> Iterator[None]:
    """Hold the run lock ``name`` on ``store`` for the ``with`` block, renewing it every tenth
    of ``lease``. Held by another: wait up to ``wait`` seconds, then raise `RunLocked`."""
    deadline = time.monotonic() + wait
    announced = False
    while (holder := _take(store, name, owner, clock(), lease)) is not None:
        held_by, since, until = holder
        if time.monotonic() >= deadline:
            raise RunLocked(
                f"another {name} is running on this task store: {held_by}, since "
                f"{since:%Y-%m-%d %H:%M:%S} UTC. This run waited {wait:.0f} s for it and "
                "stopped before raising any task or sending any email. Let that run finish, then "
                f"start this one again; if it was killed, its lock lapses by itself at "
                f"{until:%H:%M:%S} UTC.")
        if not announced:
            log.warning("%s: waiting up to %.0f s for %s, which holds the run lock", name, wait,
                        held_by)
            announced = True
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))
    stop = threading.Event()
    beat = threading.Thread(target=_renew, args=(store, name, owner, lease, stop, clock),
                            name=f"{name}-lock", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        _release(store, name, owner)


def _take(store: StoreBase, name: str, owner: str, now: dt.datetime,
          lease: dt.timedelta) -> tuple[str, dt.datetime, dt.datetime] | None:
    """Take the lock (free, lapsed, or already ours): None; else (holder, since, until)."""
    now = utc(now)
    try:
        with store.write_session() as session:
            row = session.get(RunLock, name, with_for_update=True)
            if row is None:
                session.add(RunLock(name=name, owner=owner, acquired_at=now,
                                    expires_at=now + lease))
                return None
            if row.owner != owner and aware(row.expires_at) > now:
                return row.owner, aware(row.acquired_at), aware(row.expires_at)
            row.owner, row.acquired_at, row.expires_at = owner, now, now + lease
            return None
    except IntegrityError:  # PostgreSQL: another run inserted the row first; look again
        return "another run (taking the lock right now)", now, now + lease


def _renew(store: StoreBase, name: str, owner: str, lease: dt.timedelta,
           stop: threading.Event, clock: Callable[[], dt.datetime]) -> None:
    while not stop.wait(lease.total_seconds() / 10):
        try:
            with store.session() as session:
                result = cast(CursorResult[Any], session.execute(update(RunLock).where(
                    RunLock.name == name, RunLock.owner == owner).values(
                    expires_at=utc(clock()) + lease)))
                renewed = result.rowcount
            if not renewed:
                log.error("%s: the run lock was taken over by another run", name)
        except Exception as exc:  # noqa: BLE001 - a busy store now is retried next beat
            log.warning("%s: could not renew the run lock (%s); retrying", name, exc)


def _release(store: StoreBase, name: str, owner: str) -> None:
    with store.session() as session:
        session.execute(delete(RunLock).where(RunLock.name == name, RunLock.owner == owner))
