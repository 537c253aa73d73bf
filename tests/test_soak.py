"""Soak: retention runs, sla_watch, daily digests and link clicks at once against one store, on
SQLite and PostgreSQL, with processes killed at random steps; afterwards every decision has one
task, every email reached the SMTP server once, and no run failed on a lock."""

from __future__ import annotations

import collections
import datetime as dt
import multiprocessing
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from kamflow.worklist import TaskStore
from kamflow.worklist.faults import CRASH_EXIT_CODE
from tests.conftest import SmtpSink
from tests.crash_harness import NOW, click, round_decisions
from tests.crash_harness import main as harness_main
from tests.postgres import temporary_database
from tests.test_crash import rows

# Its jobs are forked from the test process, so they need one that no other test has touched
# (an earlier test's after-fork hooks made forked children exit at start): .ci/run runs it in a
# pytest process of its own (`pytest -m soak`).
pytestmark = [pytest.mark.slow, pytest.mark.soak]
FORK = multiprocessing.get_context("fork")

ROUNDS = 20
BUDGET = 200.0  # seconds per database; the loop stops (and the test fails) beyond it
CRASH_SHARE = 0.3  # each job is killed at a random step in about this share of rounds
LEASE = 15.0  # the drains' claim lease (s): longer than one SMTP send on a loaded machine
LOCK_LEASE = 2.0  # the run lock's lease (s): a killed retention run's lock lapses quickly
# The steps a job may be killed at. Not "send.accepted": a kill between the provider's
# acceptance and the mark is the documented at-least-once window (tests/test_crash.py).
JOBS = {
    "retention": (["--lock", "dispatch", "send"],
                  ["dispatch.tasks_written", "dispatch.emails_written", "dispatch.committed",
                   "send.claimed", "send.claimed#2", "send.marked", "send.marked#3"]),
    "sla_watch": (["escalate", "send"],
                  ["escalate.written", "escalate.committed", "send.claimed", "send.marked#2"]),
    "digest": (["digest", "send"],
               ["digest.written", "digest.committed", "send.claimed#2", "send.marked"]),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def soak_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'soak.db'}"
    else:
        with temporary_database() as url:
            yield url


def start(db: str, logs: Path, port: int, round_: int, name: str, args: list[str],
          crash_at: str | None) -> multiprocessing.process.BaseProcess:
    """The harness with ``args`` in a process forked from this one (the imports are done
    already, so twenty rounds of three jobs fit the time budget); its stderr in ``logs``."""
    argv = ["--db", db, "--outbox", str(logs / "outbox"), "--smtp", str(port), "--round",
            str(round_), "--lease", str(LEASE), "--lock-wait", "90", "--lock-lease",
            str(LOCK_LEASE), *args]
    process = FORK.Process(target=_job, args=(argv, crash_at, logs / f"{round_}-{name}.err"),
                           name=f"{name}-{round_}")
    process.start()
    return process


def _job(argv: list[str], crash_at: str | None, errors: Path) -> None:
    os.environ.pop("KAMFLOW_TEST_CRASH_AT", None)
    if crash_at:
        os.environ["KAMFLOW_TEST_CRASH_AT"] = crash_at
    with errors.open("w") as stream:
        os.dup2(stream.fileno(), 2)
        sys.stderr = stream
        try:
            code = harness_main(argv)
        except BaseException:  # a forked child ends in os._exit: write the traceback now
            traceback.print_exc(file=stream)
            stream.flush()
            raise
        stream.flush()
        sys.exit(code)


def clicks(db: str, round_: int, stop: threading.Event, errors: list[str]) -> None:
    """Link clicks while the jobs run: a few tasks acknowledged or finished every 0.2 s."""
    rng = random.Random(round_)
    try:
        with TaskStore(db) as store:
            while not stop.wait(0.2):
                click(store, rng, NOW + dt.timedelta(days=round_), count=2)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(f"clicks in round {round_}: {exc.__class__.__name__}: {exc}")


def smtp_keys(sink: SmtpSink) -> collections.Counter[str]:
    return collections.Counter(
        BytesParser(policy=policy.default).parsebytes(content)["X-Kamflow-Key"]
        for _, _, content in list(sink.messages))


def test_overlapping_jobs_with_kills_send_everything_once(
        soak_url: str, smtp_sink: tuple[SmtpSink, int], tmp_path: Path) -> None:
    """Twenty rounds of retention (dispatch+send under the run lock), sla_watch, the digest and
    link clicks at once, some jobs killed at random steps; then a clean run and drain: one task
    per decision, each email key at the SMTP server exactly once, no job failed on a lock."""
    sink, port = smtp_sink
    rng = random.Random(15)
    deadline = time.monotonic() + BUDGET
    failures: list[str] = []
    killed = 0
    TaskStore(soak_url).dispose()  # migrated once here, not by three jobs at once
    for round_ in range(1, ROUNDS + 1):
        assert time.monotonic() < deadline, f"soak over its time budget at round {round_}"
        stop = threading.Event()
        clicker = threading.Thread(target=clicks, args=(soak_url, round_, stop, failures))
        jobs = {}
        for name, (args, points) in JOBS.items():
            crash = rng.choice(points) if rng.random() < CRASH_SHARE else None
            jobs[name] = (start(soak_url, tmp_path, port, round_, name, args, crash), crash)
        clicker.start()  # after the forks: a forked child gets no thread of this process
        for name, (process, crash) in jobs.items():
            process.join(timeout=max(5.0, deadline - time.monotonic()))
            stderr = (tmp_path / f"{round_}-{name}.err").read_text(errors="replace")
            if process.exitcode is None:
                process.kill()
                process.join()
                failures.append(f"round {round_}: {name} did not finish in the time budget")
            elif crash and process.exitcode == CRASH_EXIT_CODE:
                killed += 1
            elif process.exitcode != 0:
                failures.append(f"round {round_}: {name} (crash at {crash}) exited "
                                f"{process.exitcode}: {stderr[-2000:]}")
            elif "lock" in stderr.lower() and "waiting" not in stderr.lower():
                failures.append(f"round {round_}: {name} logged about a lock: {stderr[-500:]}")
        stop.set()
        clicker.join(timeout=60)
    assert failures == []
    assert killed > 0  # the rounds did kill jobs

    # The operator's clean rerun, then a drain once every dead drain's lease has expired.
    for name, args in (("rerun", ["--lock", "dispatch", "send"]), ("drain", ["send"])):
        final = start(soak_url, tmp_path, port, ROUNDS, name, args, None)
        final.join(timeout=120)
        assert final.exitcode == 0, (tmp_path / f"{ROUNDS}-{name}.err").read_text()
        time.sleep(LEASE + 1 if name == "rerun" else 0)  # every dead drain's lease expired

    tasks = collections.Counter(rows(soak_url, "SELECT account_id, action FROM tasks"))
    assert tasks == {(a, b): 1 for a, b, _, _ in round_decisions(ROUNDS)}
    outbox_keys = {k for (k,) in rows(soak_url, "SELECT key FROM outbox")}
    assert rows(soak_url, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
    received = smtp_keys(sink)
    assert set(received) == outbox_keys
    assert {k: n for k, n in received.items() if n != 1} == {}
    assert {"daily_digest", "escalation", "new_tasks"} <= {
        k for (k,) in rows(soak_url, "SELECT DISTINCT kind FROM outbox")}


def test_a_second_retention_run_waits_then_stops_naming_the_first(
        prefect_api: str, snapshot_dir: Path, kamflow_home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """retention_run while another run holds the store's run lock: it waits
    KAMFLOW_RUN_LOCK_WAIT seconds, then fails with one message naming that run, and raises no
    task and queues no email."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kamflow.flows.retention import retention_run
    from kamflow.worklist.locks import lock_owner, run_lock
    from tests.conftest import AS_OF

    monkeypatch.setenv("KAMFLOW_RUN_LOCK_WAIT", "2")
    kamflow_home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{kamflow_home / 'kamflow.db'}"
    with TaskStore(url) as store, run_lock(store, "retention_run", lock_owner("nightly-A")):
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            state = retention_run(source=str(snapshot_dir), as_of=AS_OF.isoformat(),
                                  return_state=True)
    assert state.is_failed()
    assert "another retention_run is running" in state.message
    assert "run nightly-A" in state.message
    with TaskStore(url) as store:
        assert store.counts()["tasks"] == 0 and store.counts()["emails"] == 0
