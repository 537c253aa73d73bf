"""Email delivery: SendGrid batching and retries through the outbox drain, the payloads against
the project's SendGrid contract (tests/contracts) served by Prism, and the sandbox that keeps
real staff out of test and trial runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kamflow import notifications
from kamflow.core.settings import Settings
from kamflow.flows.delivery import dispatch, drain_outbox
from kamflow.notifications import Allowlist, Email, SandboxBackend, SendError, SendGridBackend
from kamflow.notifications.sendgrid_backend import batchable, build_batch
from kamflow.notifications.testing import RecordingBackend
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from tests.crash_harness import NOW, OWNERS, TITLES
from tests.fake_sendgrid import FakeSendGrid, Step
from tests.sendgrid_contract import CONTRACT

REPO = Path(__file__).resolve().parents[1]
PRISM_DIR = REPO / ".ci"
API_KEY = "SG.delivery-test.never-logged"
PRISM_MESSAGE_ID = "mock-message-id-0001"  # the contract's X-Message-Id example: prism answers it


def owners_decisions(n: int) -> pd.DataFrame:
    """One care-call decision for each of n accounts, each with its own manager: n emails."""
    return pd.DataFrame([{
        "account_id": f"KA{i:05d}", "account_name": f"客户 {i}", "account_manager": f"经理 {i}",
        "manager_email": f"m{i}@staff.example.test", "value_class": "high",
        "churn_band": "high", "churn_risk": 60.0, "rule_id": "r", "action": "care_call",
        "owner_role": "account_manager", "priority": 3, "due_in_days": 3.0,
        "cooldown_days": 30.0, "why": "why", "churn_factors": "", "ruleset_version": "v",
    } for i in range(n)])


def test_429_then_500_then_timeout_then_accept_delivers_every_email_once(tmp_path: Path) -> None:
    """Through the outbox drain, 1,200 emails go out in batches of at most 1,000; the first
    request meets 429 (Retry-After: 2), then 500, then a timeout, then acceptance: in the end
    every email is accepted exactly once, marked sent with SendGrid's X-Message-Id."""
    store = TaskStore(f"sqlite:///{tmp_path / 'k.db'}")
    dispatch(owners_decisions(1200), TITLES, OWNERS, store, "r", NOW, BusinessCalendar())
    fake = FakeSendGrid([Step(429, {"Retry-After": "2"}), Step(500), Step(stall=3.0)])
    delays: list[float] = []
    backend = SendGridBackend(API_KEY, host=fake.url, timeout=0.5, max_retries=4, backoff=0.01,
                              sleep=delays.append)
    try:
        result = drain_outbox(store, backend, "kamflow@operator.example")
    finally:
        fake.close()
    with store.session() as session:
        rows = session.execute(notifications_rows()).all()
    assert result.sent == 1200 and result.failed == 0
    assert set(fake.accepted) == {key for key, _, _ in rows}
    assert set(fake.accepted.values()) == {1}  # each accepted exactly once
    assert len(fake.requests) == 3 + 2  # three failed attempts, then 1,000 + 200
    assert delays[0] >= 2 and len(delays) == 3  # Retry-After honoured, then backoff
    assert all(sent is not None and provider.startswith("sg-") for _, sent, provider in rows)
    store.dispose()


def notifications_rows() -> Any:
    from sqlalchemy import select

    from kamflow.worklist.models import OutboxEmail

    return select(OutboxEmail.key, OutboxEmail.sent_at, OutboxEmail.provider_id)


def test_batch_payload_has_one_personalization_per_email_with_tags() -> None:
    """A batch carries each email's recipient, subject, body (as substitutions) and custom args
    (kamflow_key, task ids) in its own personalization, with the shared categories."""
    emails = [Email(key=f"k{i}", sender="kamflow@operator.example", to=f"m{i}@x.example",
                    subject=f"任务 {i}", text=f"text {i}", html=f"<p>{i}</p>",
                    categories=("kamflow", "new-tasks"), custom_args={"task_ids": str(i)})
              for i in range(3)]
    payload = build_batch(emails)
    assert payload["categories"] == ["kamflow", "new-tasks"]
    assert [p["to"][0]["email"] for p in payload["personalizations"]] == [e.to for e in emails]
    assert [p["subject"] for p in payload["personalizations"]] == [e.subject for e in emails]
    assert payload["personalizations"][1]["custom_args"] == {"task_ids": "1", "kamflow_key": "k1"}
    assert payload["personalizations"][2]["substitutions"] == {"[%kamflow_text%]": "text 2",
                                                               "[%kamflow_html%]": "<p>2</p>"}
    big = emails[0].__class__(**{**emails[0].__dict__, "text": "x" * 9500})
    assert not batchable(big) and batchable(emails[0])
    with pytest.raises(ValueError):
        build_batch([emails[0]] * 1001)
    templated = build_batch(emails, "d-0123456789abcdef0123456789abcdef")
    assert "content" not in templated and templated["template_id"].startswith("d-")
    assert templated["personalizations"][0]["dynamic_template_data"] == {
        "subject": "任务 0", "text": "text 0", "html": "<p>0</p>"}


# ------------------------------------------------------------------------------------ Prism

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prism_binary() -> Path:
    """Prism from .ci/node_modules, installed there (npm, project-local) when missing."""
    binary = PRISM_DIR / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install Prism (@stoplight/prism-cli@5) into .ci/: "
                    "install Node.js and npm (.ci/run runs the same install)")
    done = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund",
                           "--prefix", str(PRISM_DIR), "@stoplight/prism-cli@5"],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not binary.exists():
        pytest.fail(f"installing Prism into {PRISM_DIR} failed: {done.stderr[-2000:]}")
    return binary


@pytest.fixture(scope="module")
def prism() -> Iterator[str]:
    """`prism mock` of the project's mail-send contract on a free loopback port."""
    port = _free_port()
    log = open(PRISM_DIR / "prism-test.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(_prism_binary()), "mock", "-h", "127.0.0.1", "-p",
                                str(port), str(CONTRACT)], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "NO_COLOR": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            pytest.fail(f"prism exited: {(PRISM_DIR / 'prism-test.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{url}/v3/mail/send", timeout=1)
        except urllib.error.HTTPError:
            break  # it answers (405/401/...): up
        except OSError:
            time.sleep(0.3)
    else:
        process.terminate()
        pytest.fail("prism did not start within 60 s")
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _email(i: int, **changes: Any) -> Email:
    values: dict[str, Any] = {"key": f"outbox-{i}", "sender": "kamflow@operator.example",
                              "to": f"m{i}@operator.example", "subject": f"[kamflow] 任务 {i}",
                              "text": f"王经理，您好 {i}", "html": f"<p>王经理 {i}</p>",
                              "categories": ("kamflow", "new-tasks"),
                              "custom_args": {"task_ids": f"{i},{i + 1}", "run_id": "r"}}
    values.update(changes)
    return Email(**values)


def test_prism_accepts_single_and_batched_sends(prism: str) -> None:
    """The real client's requests are valid under the SendGrid contract: a single email, a batch of
    personalizations, 1,001 emails (split into 1,000 + 1) and a dynamic-template batch of large
    emails are all accepted (202), each email given the X-Message-Id Prism answers with (the
    contract's example)."""
    accepted = PRISM_MESSAGE_ID
    backend = SendGridBackend(API_KEY, host=prism, timeout=10, max_retries=0)
    assert backend.send(_email(0)) == accepted
    assert backend.send(_email(1, html=None, categories=(), custom_args={})) == accepted
    assert backend.send_many([_email(i) for i in range(1001)]) == [accepted] * 1001
    templated = SendGridBackend(API_KEY, host=prism, timeout=10, max_retries=0,
                                template_id="d-0123456789abcdef0123456789abcdef")
    large = [_email(i, text="长" * 6000) for i in range(3)]  # beyond the substitution budget
    assert templated.send_many(large) == [accepted] * 3


def test_prism_refuses_invalid_requests(prism: str) -> None:
    """An invalid address is refused (400, permanent, one request); in a batch it is isolated:
    the batch is resent one by one and only the bad email fails."""
    backend = SendGridBackend(API_KEY, host=prism, timeout=10, max_retries=0)
    with pytest.raises(SendError) as caught:
        backend.send(_email(0, to="wang li@operator.example"))
    assert caught.value.permanent and caught.value.status == 400
    results = backend.send_many([_email(1), _email(2, to="li@operator"), _email(3)])
    with pytest.raises(SendError, match="cannot build"):  # not even a request can be made
        backend.send(_email(4, to="wang@@operator.example"))
    good, bad, also_good = results
    assert good == also_good == PRISM_MESSAGE_ID
    assert isinstance(bad, SendError) and (bad.key, bad.recipient, bad.status, bad.permanent) == (
        "outbox-2", "li@operator", 400, True)


# ---------------------------------------------------------------------------------- sandbox

@pytest.mark.parametrize(("entries", "address", "allowed"), [
    ("qa@operator.example", "qa@operator.example", True),
    ("qa@operator.example", "QA@Operator.Example", True),
    ("qa@operator.example", "wang@operator.example", False),
    ("@example.test", "anyone@example.test", True),
    ("example.test", "anyone@example.test", True),
    ("example.test", "anyone@sub.example.test", False),
    ("*@*.example.test", "anyone@sub.example.test", True),
    ("*@*.example.test", "anyone@example.test", False),
    ("", "qa@operator.example", False),
    (" a@x.example , @y.example ", "b@y.example", True),
])
def test_allowlist_decision_table(entries: str, address: str, allowed: bool) -> None:
    """Allowlist entries: exact address, @domain or bare domain, shell pattern; empty allows
    nobody."""
    assert Allowlist.parse(entries).allows(address) is allowed


def test_sandbox_redirects_or_holds_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """In the sandbox an allowlisted recipient gets the email; others are redirected (marked with
    the original recipient) or, without a redirect, held; each is logged."""
    inner = RecordingBackend()
    held = SandboxBackend(inner, Allowlist.parse("@example.test"))
    assert held.send(_email(1, to="qa@example.test")) == "rec-1"
    assert held.send(_email(2, to="wang@operator.example")) == notifications.HELD
    assert [e.to for e in inner.sent] == ["qa@example.test"]
    redirecting = SandboxBackend(inner, Allowlist.parse(""), redirect_to="qa@example.test")
    results = redirecting.send_many([_email(3, to="li@operator.example")])
    assert results == ["rec-2"]
    moved = inner.sent[-1]
    assert moved.to == "qa@example.test" and "li@operator.example" in moved.subject
    assert moved.custom_args["sandbox_original_to"] == "li@operator.example"
    assert "held email 'outbox-2' to wang@operator.example" in caplog.text
    assert "redirected email 'outbox-3' for li@operator.example" in caplog.text


def test_sandbox_from_env_keeps_staff_out_of_a_drain(tmp_path: Path) -> None:
    """KAMFLOW_EMAIL_SANDBOX=1 with an allowlist: the drain writes only the allowlisted
    recipient's email; the others are recorded as held and never sent later."""
    env = {"KAMFLOW_EMAIL_SANDBOX": "1", "KAMFLOW_EMAIL_ALLOWLIST": "m1@staff.example.test"}
    backend = notifications.backend_from_env(tmp_path / "outbox", Settings.from_env(env))
    assert isinstance(backend, SandboxBackend) and backend.name == "sandbox+file"
    store = TaskStore(f"sqlite:///{tmp_path / 'k.db'}")
    dispatch(owners_decisions(3), TITLES, OWNERS, store, "r", NOW, BusinessCalendar())
    result = drain_outbox(store, backend, "kamflow@operator.example")
    assert (result.sent, result.held) == (1, 2)
    written = list((tmp_path / "outbox").glob("*.eml"))
    assert len(written) == 1 and b"m1@staff.example.test" in written[0].read_bytes()
    assert store.unsent_emails() == []  # held ones are not retried
    off = Settings.from_env({})  # off unless asked
    assert notifications.backend_from_env(tmp_path, off).name == "file"
    store.dispose()
