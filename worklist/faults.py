"""Named crash points, for the tests that kill kamflow mid-dispatch and mid-send.

``crash_point("dispatch.emails_written")`` does nothing unless the environment variable
``KAMFLOW_TEST_CRASH_AT`` names that point; then the process ends at once with ``os._exit(70)``
(no ``finally``, no commit, no flush: as close to a power cut as a test can get). ``NAME#N``
crashes at the N-th time the point is reached (default: the first). The points are listed in
``CRASH_POINTS``; tests rerun the work afterwards and check that nothing was lost or doubled.
"""

from __future__ import annotations

import os
from collections import Counter

__all__ = ["CRASH_EXIT_CODE", "CRASH_POINTS", "crash_point"]

CRASH_EXIT_CODE = 70
CRASH_POINTS = (
    "dispatch.held_out_written",  # the holdout's control group inserted (if any), not committed
    "dispatch.tasks_written",     # tasks and history inserted, outbox not yet, not committed
    "dispatch.emails_written",    # outbox rows inserted too, not committed
    "dispatch.committed",         # tasks and outbox committed, nothing sent
    "send.claimed",               # an email (or batch) marked in flight, backend not called
    "send.accepted",              # the backend accepted it, not yet marked sent
    "send.marked",                # marked sent, the rest of the outbox not yet sent
    "digest.written",             # the daily digests inserted, not committed
    "digest.committed",           # committed, not sent
    "escalate.written",           # the run's escalations and one more batched email written,
                                  # not committed (``#N``: after the N-th email)
    "escalate.committed",         # committed, the Prefect events not yet emitted
    "housekeeping.archived",      # a batch's Parquet files durable, its rows not yet deleted
    "housekeeping.deleted",       # a batch's rows deleted and committed, the next not archived
)
_VARIABLE = "KAMFLOW_TEST_CRASH_AT"
_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """End the process here if ``KAMFLOW_TEST_CRASH_AT`` names this point (see the module doc)."""
    target = os.environ.get(_VARIABLE)
    if not target:
        return
    wanted, _, nth = target.partition("#")
    if wanted != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os._exit(CRASH_EXIT_CODE)
