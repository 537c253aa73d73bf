"""The `dispatch` benchmark: raising tasks with their outbox emails, and draining the outbox
into a local SendGrid-compatible endpoint.

    python benchmarks/run.py dispatch --accounts 100000 --json [--database-url URL]

One decision per account (20 accounts per manager, so N/20 owner emails), planned with the
shipped owners directory and business calendar and raised into a fresh task store exactly as the
flow does (`flows.delivery.dispatch`: tasks, history, one rendered email per owner with signed
one-click links, one transaction). `seconds`/`tasks_per_s` time that. Then `drain_outbox` sends
every email with the real `SendGridBackend` (batches of up to 1,000 personalizations, through a
pass-through dynamic template) to a local HTTP
server that answers 202 like SendGrid; `email_seconds`/`emails_per_s` time that, marking sent
included. Building the decisions and starting the server are not timed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.memory import peak_rss_mb
from tests.fake_sendgrid import FakeSendGrid

ACCOUNTS_PER_OWNER = 20
# Digests of 20 tasks exceed SendGrid's 10 KB substitution budget, so they batch through a
# pass-through dynamic template (KAMFLOW_SENDGRID_TEMPLATE_ID), as a production setup would.
TEMPLATE_ID = "d-0123456789abcdef0123456789abcdef"


def _decisions(accounts: int) -> Any:
    import numpy as np
    import pandas as pd

    ids = np.arange(accounts)
    owner = ids // ACCOUNTS_PER_OWNER
    actions = np.array(["care_call", "manager_visit", "renewal_talk", "payment_reminder"])
    return pd.DataFrame({
        "account_id": [f"KA{i:07d}" for i in ids],
        "account_name": [f"客户 {i}" for i in ids],
        "account_manager": [f"经理 {o}" for o in owner],
        "manager_email": [f"manager.{o}@operator.example" for o in owner],
        "value_class": "high", "churn_band": "high", "churn_risk": 61.5,
        "rule_id": "high_value_declining", "action": actions[ids % len(actions)],
        "owner_role": "account_manager", "priority": 2, "due_in_days": 3.0,
        "cooldown_days": 30.0, "why": "revenue_trend=-0.32 (< -0.2); churn_band=high",
        "churn_factors": "revenue_decline, complaints", "ruleset_version": "bench",
    })


def run(accounts: int, database_url: str | None) -> dict[str, Any]:
    from kamflow import config
    from kamflow.core.links import LinkSigner
    from kamflow.flows.delivery import dispatch, drain_outbox
    from kamflow.notifications import SendGridBackend
    from kamflow.rules import load_ruleset
    from kamflow.worklist import TaskStore

    work = Path(tempfile.mkdtemp(prefix="kamflow-bench-dispatch-"))
    decisions = _decisions(accounts)
    owners, calendar = config.load_owners(), config.load_calendar()
    titles = {k: (a.title_en, a.title_zh) for k, a in load_ruleset().actions.items()}
    links = LinkSigner(b"benchmark-secret-0123456789abcdef")
    sink = FakeSendGrid(keep=False)  # the tests' SendGrid stand-in, keeping counts only
    try:
        with TaskStore(database_url or f"sqlite:///{work / 'kamflow.db'}") as store:
            now = dt.datetime.now(dt.UTC)
            started = time.perf_counter()
            raised = dispatch(decisions, titles, owners, store, "bench", now, calendar, links)
            seconds = time.perf_counter() - started
            backend = SendGridBackend("SG.benchmark", host=sink.url, timeout=30, max_retries=2,
                                      template_id=TEMPLATE_ID)
            started = time.perf_counter()
            drained = drain_outbox(store, backend, "kamflow@operator.example")
            email_seconds = time.perf_counter() - started
    finally:
        sink.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"benchmark": "dispatch", "accounts": accounts,
            "database": (database_url or "sqlite").split(":")[0].split("+")[0],
            "tasks_created": raised.created, "emails": raised.emails,
            "seconds": round(seconds, 3), "tasks_per_s": round(raised.created / seconds),
            "emails_sent": drained.sent, "sendgrid_requests": sink.received,
            "personalizations_accepted": sum(sink.accepted.values()),
            "email_seconds": round(email_seconds, 3),
            "emails_per_s": round(drained.sent / email_seconds) if email_seconds else None,
            "peak_rss_mb": round(peak_rss_mb())}
