"""Tests of the notifications package against real local servers (SMTP sink, HTTP stand-in for
SendGrid): no mocks of sendgrid or smtplib."""

from __future__ import annotations

import ast
import logging
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from kamflow import notifications
from kamflow.core.errors import ConfigError
from kamflow.core.settings import Settings
from kamflow.notifications import (
    Email,
    EmailBackend,
    FileOutbox,
    SendError,
    SendGridBackend,
    SmtpBackend,
    backend_from_env,
    render_task_digest,
    sender_from_env,
)
from kamflow.notifications.message import base64_lines, message_bytes
from kamflow.notifications.testing import RecordingBackend
from tests.conftest import SmtpSink, free_port
from tests.fake_sendgrid import FakeSendGrid, Step
from tests.sendgrid_contract import request_validator

REPO = Path(__file__).resolve().parents[1]
API_KEY = "SG.kamflow-test-secret.do-not-log-me"


def make_email(**overrides: Any) -> Email:
    values: dict[str, Any] = {
        "key": "outbox-42",
        "sender": "kamflow@operator.example",
        "to": "wang.li@operator.example",
        "subject": "[kamflow] 1 项新的大客户维系任务：上海银行（KA0000012）",
        "text": "王经理，您好：\n请在 2026-11-27 前回访上海银行。\n",
        "html": "<p>王经理，您好：</p><p>请在 <b>2026-11-27</b> 前回访上海银行。</p>",
        "categories": ("kamflow", "task_digest"),
        "custom_args": {"owner_id": "u-7"},
    }
    values.update(overrides)
    return Email(**values)


def parse_eml(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def body_of(message: EmailMessage, subtype: str) -> str:
    """The decoded text/<subtype> body of `message`."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


# --------------------------------------------------------------------------------------------
# Email, SendError, the interface and the recording fake


def test_every_backend_implements_the_interface(tmp_path: Path) -> None:
    """FileOutbox, SmtpBackend, SendGridBackend and RecordingBackend all satisfy EmailBackend."""
    backends: list[EmailBackend] = [
        FileOutbox(tmp_path),
        SmtpBackend("127.0.0.1", 25),
        SendGridBackend(API_KEY, host="http://127.0.0.1:9"),
        RecordingBackend(),
    ]
    assert [b.name for b in backends] == ["file", "smtp", "sendgrid", "recording"]
    assert all(isinstance(b, EmailBackend) for b in backends)


def test_email_is_immutable_including_custom_args() -> None:
    """An Email copies its custom_args: changing the caller's dict later does not change it."""
    args = {"owner_id": "u-7"}
    email = make_email(custom_args=args, categories=["a", "b"])
    args["owner_id"] = "changed"
    assert email.custom_args == {"owner_id": "u-7"}
    assert email.categories == ("a", "b")
    with pytest.raises(TypeError):
        email.custom_args["x"] = "y"  # type: ignore[index]
    assert hash(email) == hash(make_email(custom_args={"other": "v"}, categories=("a", "b")))


@pytest.mark.parametrize(
    "overrides",
    [
        {"key": ""},
        {"to": "nobody"},
        {"subject": "a\r\nBcc: x@evil.example"},
        {"custom_args": {"n": 1}},
    ],
)
def test_email_rejects_invalid_fields(overrides: dict[str, Any]) -> None:
    """An empty key, an address without @, a subject with CRLF or non-str args are refused."""
    with pytest.raises((ValueError, TypeError)):
        make_email(**overrides)


def test_send_error_names_the_failure_and_survives_pickling() -> None:
    """SendError's message names backend, key, recipient and status, and it pickles (Prefect)."""
    error = SendError(
        backend="sendgrid",
        recipient="a@b.example",
        key="k1",
        status=503,
        reason="busy",
        permanent=False,
    )
    text = str(error)
    assert all(part in text for part in ("sendgrid", "'k1'", "a@b.example", "503", "busy"))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.permanent, copy.status, copy.key, str(copy)) == (False, 503, "k1", text)


def test_recording_backend_records_and_fails_on_request() -> None:
    """RecordingBackend returns rec-<n>, and fail_next(n) makes exactly the next n sends fail."""
    backend = RecordingBackend()
    assert backend.send(make_email(key="a")) == "rec-1"
    backend.fail_next(2, permanent=True)
    for _ in range(2):
        with pytest.raises(SendError) as caught:
            backend.send(make_email(key="b"))
        assert caught.value.permanent is True
    assert backend.send(make_email(key="b")) == "rec-2"
    assert [e.key for e in backend.sent] == ["a", "b"]
    assert [e.key for e in backend.attempts] == ["a", "b", "b", "b"]


def test_package_is_a_leaf_and_imports_sendgrid_lazily() -> None:
    """notifications imports no other stage (core only), and importing it skips sendgrid."""
    package_dir = Path(notifications.__file__).parent
    for source in package_dir.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            stages = {".".join(n.split(".")[:2]) for n in names if n.startswith("kamflow.")}
            assert stages <= {"kamflow.notifications", "kamflow.core"}, \
                f"{source.name} imports {stages}"
    probe = "import sys, kamflow.notifications; print('sendgrid' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# FileOutbox


def test_outbox_writes_a_parseable_eml_with_chinese_and_html(tmp_path: Path) -> None:
    """FileOutbox writes <key>.eml: RFC 5322, Chinese subject and body intact, HTML alternative."""
    email = make_email()
    path = Path(FileOutbox(tmp_path).send(email))
    assert path == tmp_path / "outbox-42.eml"
    raw = path.read_bytes()
    assert b"\r\n" in raw and raw.isascii()  # CRLF, 7-bit clean: any relay accepts it
    message = parse_eml(raw)
    assert message["Subject"] == email.subject
    assert message["From"] == email.sender
    assert message["To"] == email.to
    assert message["X-Kamflow-Key"] == "outbox-42"
    assert message["Date"] and message["Message-ID"].endswith("@operator.example>")
    assert message.get_content_type() == "multipart/alternative"
    assert body_of(message, "plain") == email.text
    assert body_of(message, "html").rstrip("\n") == email.html


def test_outbox_plain_email_is_a_single_part(tmp_path: Path) -> None:
    """Without html the .eml is a single text/plain part."""
    path = FileOutbox(tmp_path).send(make_email(html=None))
    message = parse_eml(Path(path).read_bytes())
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == make_email().text


def test_outbox_resend_overwrites_one_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    """Re-sending a key replaces its file (same Message-ID); no temporary files stay behind."""
    outbox = FileOutbox(tmp_path / "outbox")  # created on first send
    first = outbox.send(make_email(text="first\n"))
    second = outbox.send(make_email(text="second\n"))
    outbox.send(make_email(key="outbox-43"))
    assert first == second
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == [
        "outbox-42.eml",
        "outbox-43.eml",
    ]
    body = body_of(parse_eml(Path(second).read_bytes()), "plain")
    assert body.splitlines() == ["second"]  # 7bit part: CRLF line ends on disk


def test_outbox_failed_write_keeps_previous_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash before the rename leaves the previous file intact and no temporary file."""
    outbox = FileOutbox(tmp_path)
    path = Path(outbox.send(make_email(text="good\n")))
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(SendError) as caught:
        outbox.send(make_email(text="never written\n"))
    assert caught.value.permanent is False
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["outbox-42.eml"]


def test_outbox_keys_cannot_escape_or_collide(tmp_path: Path) -> None:
    """Unsafe keys stay inside the directory, and keys that sanitise alike get distinct files."""
    outbox = FileOutbox(tmp_path)
    paths = {outbox.send(make_email(key=key)) for key in ("../evil", "a/b", "a_b", ".hidden")}
    assert len(paths) == 4
    assert all(Path(p).parent == tmp_path and not Path(p).name.startswith(".") for p in paths)


@pytest.mark.parametrize("overrides", [
    {"text": "王经理，您好：\n" + "1. 上海银行 https://kamflow.example/t/v1.abc\n" * 400,
     "html": "<p>你好</p>\n" * 300},
    {"text": "plain ascii\nline two", "html": None, "subject": "ASCII subject"},
    {"text": "ascii with a very long line " + "x" * 200, "html": "<p>ascii</p>"},
    {"text": "héllo\r\nline2\rx\n你", "to": "王丽 <wang.li@operator.example>",
     "subject": "[kamflow] 106 项新的大客户维系任务：宁波远金集团股份有限公司（KA0014034）等" * 3},
    {"key": "key with spaces/and ümlauts", "sender": "Kamflow Ops <kamflow@operator.example>"},
])
def test_email_bytes_read_back_as_the_standard_message(overrides: dict[str, Any]) -> None:
    """The outbox's directly written bytes parse to the same message as the email package's
    (headers, structure, transfer encodings and bodies); CRLF, 7-bit clean."""
    email = make_email(**overrides)
    now = datetime(2026, 11, 25, tzinfo=UTC)
    data = notifications.message.email_bytes(email, now=now)
    assert data.isascii() and b"\n" not in data.replace(b"\r\n", b"")
    ours = parse_eml(data)
    standard = parse_eml(message_bytes(notifications.to_email_message(email, now=now)))
    for header in ("From", "To", "Subject", "Date", "Message-ID", "X-Kamflow-Key",
                   "MIME-Version", "Content-Type"):
        if header == "Content-Type":
            assert ours.get_content_type() == standard.get_content_type()
        else:
            assert str(ours[header]) == str(standard[header]), header
    ours_parts, standard_parts = list(ours.walk()), list(standard.walk())
    assert len(ours_parts) == len(standard_parts)
    for mine, theirs in zip(ours_parts, standard_parts, strict=True):
        assert mine.get_content_type() == theirs.get_content_type()
        assert mine["Content-Transfer-Encoding"] == theirs["Content-Transfer-Encoding"]
        if not mine.is_multipart():
            assert mine.get_content() == theirs.get_content()


def test_outbox_send_many_writes_every_file_and_reports_each_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch: one result per email in order; a failed write is that email's SendError only,
    the others are written and no temporary file stays behind."""
    outbox = FileOutbox(tmp_path)
    real_replace = os.replace

    def full_disk_for_43(src: str, dst: str) -> None:
        if str(dst).endswith("outbox-43.eml"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk_for_43)
    results = outbox.send_many([make_email(key=f"outbox-{i}") for i in (42, 43, 44)])
    assert results[0] == str(tmp_path / "outbox-42.eml")
    assert isinstance(results[1], SendError) and "No space left" in str(results[1])
    assert results[2] == str(tmp_path / "outbox-44.eml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox-42.eml", "outbox-44.eml"]
    assert body_of(parse_eml((tmp_path / "outbox-44.eml").read_bytes()), "plain") == \
        make_email().text


# --------------------------------------------------------------------------------------------
# SMTP against a real aiosmtpd server


def test_smtp_delivers_the_message(smtp_sink: tuple[SmtpSink, int]) -> None:
    """SmtpBackend delivers envelope, subject and both bodies and returns the Message-ID."""
    sink, port = smtp_sink
    email = make_email()
    message_id = SmtpBackend("127.0.0.1", port, timeout=5).send(email)
    [(mail_from, rcpts, content)] = sink.messages
    assert (mail_from, rcpts) == (email.sender, [email.to])
    message = parse_eml(content)
    assert message["Message-ID"] == message_id
    assert message["Subject"] == email.subject
    assert message["X-Kamflow-Key"] == email.key
    assert body_of(message, "plain") == email.text
    assert "回访上海银行" in body_of(message, "html")
    assert SmtpBackend("127.0.0.1", port).send(email) == message_id  # same key, same Message-ID


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("550 5.1.1 no such user", True), ("450 4.2.1 mailbox busy, try later", False)],
)
def test_smtp_refused_recipient(
    smtp_sink: tuple[SmtpSink, int], reply: str, permanent: bool
) -> None:
    """A 5xx recipient refusal is a permanent SendError, a 4xx one a transient one."""
    sink, port = smtp_sink
    sink.refuse["gone@operator.example"] = reply
    with pytest.raises(SendError) as caught:
        SmtpBackend("127.0.0.1", port, timeout=5).send(make_email(to="gone@operator.example"))
    assert caught.value.permanent is permanent
    assert caught.value.status == int(reply[:3])
    assert "gone@operator.example" in str(caught.value)
    assert sink.messages == []


def test_smtp_connection_refused_is_transient() -> None:
    """Nobody listening on the port: SendError(permanent=False) naming host and port."""
    port = free_port()
    with pytest.raises(SendError) as caught:
        SmtpBackend("127.0.0.1", port, timeout=2).send(make_email())
    assert caught.value.permanent is False
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_smtp_login(tmp_path: Path) -> None:
    """With username/password the backend logs in; a wrong password is a permanent SendError."""

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"kam",
            b"s3cret pass",
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535

    sink = SmtpSink()
    port = free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        SmtpBackend("127.0.0.1", port, "kam", "s3cret pass", timeout=5).send(make_email())
        with pytest.raises(SendError) as caught:
            SmtpBackend("127.0.0.1", port, "kam", "wrong", timeout=5).send(make_email())
    finally:
        controller.stop()
    assert len(sink.messages) == 1
    assert caught.value.permanent is True and caught.value.status == 535
    assert "wrong" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# SendGrid against a local HTTP server speaking the v3 mail-send API


def client(fake: FakeSendGrid, delays: list[float], **kwargs: Any) -> SendGridBackend:
    """The real client against ``fake``, recording its back-off sleeps in ``delays``."""
    options: dict[str, Any] = {"timeout": 5.0, "max_retries": 3, "backoff": 0.01}
    options.update(kwargs)
    return SendGridBackend(API_KEY, host=fake.url, sleep=delays.append, **options)


def test_sendgrid_retries_429_and_5xx_honouring_retry_after(sendgrid_server: FakeSendGrid) -> None:
    """429 (Retry-After: 1), then 500, then 202: returns X-Message-Id after 3 requests."""
    sendgrid_server.script = [
        Step(429, {"Retry-After": "1"}, b'{"errors":[{"message":"too many"}]}'),
        Step(500, {}, b"oops"),
        Step(202, {"X-Message-Id": "sg-msg-123"}),
    ]
    delays: list[float] = []
    message_id = client(sendgrid_server, delays).send(make_email())
    assert message_id == "sg-msg-123"
    assert len(sendgrid_server.requests) == 3
    assert len(delays) == 2
    assert delays[0] >= 1  # Retry-After honoured although the backoff would be 0.01 s
    assert delays[1] == pytest.approx(0.02)  # exponential backoff: 0.01 * 2 ** 1
    assert {r["json"]["custom_args"]["kamflow_key"] for r in sendgrid_server.requests} == {
        "outbox-42"
    }


def test_sendgrid_400_is_permanent_without_retry(sendgrid_server: FakeSendGrid) -> None:
    """A 400 raises a permanent SendError carrying SendGrid's message, after one request."""
    sendgrid_server.script = [
        Step(
            400,
            {},
            b'{"errors":[{"message":"The from address does not match a verified'
            b' Sender Identity"}]}',
        )
    ]
    delays: list[float] = []
    with pytest.raises(SendError) as caught:
        client(sendgrid_server, delays).send(make_email())
    error = caught.value
    assert (error.permanent, error.status, error.backend) == (True, 400, "sendgrid")
    assert "verified Sender" in str(error)
    assert len(sendgrid_server.requests) == 1 and delays == []


def test_sendgrid_timeout_is_retried_then_transient(sendgrid_server: FakeSendGrid) -> None:
    """A server that never answers within the timeout: retried, then SendError(permanent=False)."""
    sendgrid_server.script = [Step(stall=5.0), Step(stall=5.0)]
    delays: list[float] = []
    backend = client(sendgrid_server, delays, timeout=0.5, max_retries=1)
    with pytest.raises(SendError) as caught:
        backend.send(make_email())
    assert caught.value.permanent is False
    assert "timed out" in str(caught.value) and "2 attempts" in str(caught.value)
    assert len(sendgrid_server.requests) == 2 and len(delays) == 1


def test_sendgrid_persistent_5xx_gives_up_after_max_retries(sendgrid_server: FakeSendGrid) -> None:
    """503 on every attempt: max_retries + 1 requests with doubling delays, then transient error."""
    sendgrid_server.script = [Step(503) for _ in range(4)]
    delays: list[float] = []
    with pytest.raises(SendError) as caught:
        client(sendgrid_server, delays, max_retries=3).send(make_email())
    assert caught.value.permanent is False and caught.value.status == 503
    assert len(sendgrid_server.requests) == 4
    assert delays == pytest.approx([0.01, 0.02, 0.04])


def test_sendgrid_retry_after_beyond_max_delay_gives_up_at_once(
    sendgrid_server: FakeSendGrid,
) -> None:
    """Retry-After longer than max_delay: a transient SendError now instead of a long block."""
    sendgrid_server.script = [Step(429, {"Retry-After": "3600"})]
    delays: list[float] = []
    with pytest.raises(SendError) as caught:
        client(sendgrid_server, delays, max_delay=60).send(make_email())
    assert caught.value.permanent is False and "3600" in str(caught.value)
    assert len(sendgrid_server.requests) == 1 and delays == []


def test_sendgrid_connection_refused_is_transient() -> None:
    """Nothing listening: retried, then SendError(permanent=False)."""
    delays: list[float] = []
    backend = SendGridBackend(
        API_KEY,
        host=f"http://127.0.0.1:{free_port()}",
        max_retries=2,
        backoff=0.01,
        sleep=delays.append,
    )
    with pytest.raises(SendError) as caught:
        backend.send(make_email())
    assert caught.value.permanent is False and len(delays) == 2


def test_sendgrid_payload_and_authorization(sendgrid_server: FakeSendGrid) -> None:
    """POST /v3/mail/send with Bearer auth, to, subject, text then html, categories, custom_args."""
    email = make_email()
    client(sendgrid_server, []).send(email)
    [request] = sendgrid_server.requests
    assert request["path"] == "/v3/mail/send"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    payload = request["json"]
    assert payload["from"] == {"email": email.sender}
    assert payload["personalizations"][0]["to"][0]["email"] == email.to
    assert payload["subject"] == email.subject
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert [c["value"] for c in payload["content"]] == [email.text, email.html]
    assert payload["categories"] == ["kamflow", "task_digest"]
    assert payload["custom_args"] == {"owner_id": "u-7", "kamflow_key": "outbox-42"}


def test_sendgrid_never_logs_the_api_key(
    sendgrid_server: FakeSendGrid, caplog: pytest.LogCaptureFixture
) -> None:
    """With DEBUG logging on (the HTTP client logs headers), the API key appears in no log line."""
    caplog.set_level(logging.DEBUG)
    sendgrid_server.script = [Step(429, {"Retry-After": "0"}), Step(202), Step(401, {}, b"{}")]
    backend = client(sendgrid_server, [])
    backend.send(make_email())
    with pytest.raises(SendError) as caught:
        backend.send(make_email(key="outbox-43"))
    assert "Bearer [redacted]" in caplog.text  # the client's header dump was there, redacted
    assert API_KEY not in caplog.text
    assert API_KEY not in str(caught.value) and API_KEY not in repr(backend)


def test_sendgrid_payload_matches_the_openapi_contract(sendgrid_server: FakeSendGrid) -> None:
    """The recorded request bodies validate against the POST /v3/mail/send schema of the
    project's SendGrid contract (tests/contracts)."""
    validator = request_validator()
    backend = client(sendgrid_server, [])
    backend.send(make_email())
    backend.send(make_email(key="plain", html=None, categories=(), custom_args={}))
    for request in sendgrid_server.requests:
        errors = [e.message for e in validator.iter_errors(request["json"])]
        assert errors == [], errors
    # The schema is really applied: a request without a sender is refused.
    broken = {k: v for k, v in sendgrid_server.requests[0]["json"].items() if k != "from"}
    assert not validator.is_valid(broken)


# --------------------------------------------------------------------------------------------
# The task digest


def digest_tasks() -> list[dict[str, Any]]:
    return [
        {
            "task_id": 103,
            "account_id": "KA0000031",
            "account_name": "杭州市政务服务中心",
            "action": "sla_review",
            "action_title": "SLA review",
            "priority": 2,
            "due_at": datetime(2026, 11, 26, 9, 0),
            "reason": "outage_hours 14.5 > 8 in the last 30 days",
            "rule_id": "sla_breach",
        },
        {
            "task_id": 101,
            "account_id": "KA0000012",
            "account_name": "上海银行",
            "action": "care_call",
            "action_title": "Care call",
            "priority": 1,
            "due_at": datetime(2026, 11, 27, 18, 0),
            "reason": "churn_risk 0.82 >= 0.7 and value_tier high",
            "rule_id": "high_value_at_risk",
        },
        {
            "task_id": 102,
            "account_id": "KA0000020",
            "account_name": "<script>alert(1)</script> Ltd",
            "action": "payment_reminder",
            "action_title": "Payment reminder",
            "priority": 2,
            "due_at": datetime(2026, 11, 25, 12, 30),
            "reason": "arrears 3 months > 2",
            "rule_id": "arrears",
        },
    ]


def test_digest_en_subject_and_bodies() -> None:
    """English digest: subject names count and first task; bodies list every task, sorted."""
    subject, text, html = render_task_digest("Li Wang", digest_tasks(), "en")
    assert subject == (
        "[kamflow] 3 new retention tasks: Care call for 上海银行 (KA0000012) due 2026-11-27"
    )
    for body in (text, html):
        for snippet in (
            "上海银行",
            "KA0000012",
            "Care call",
            "2026-11-27 18:00",
            "churn_risk 0.82",
            "high_value_at_risk",
            "101",
            "SLA review",
            "2026-11-26 09:00",
            "sla_breach",
            "Payment reminder",
            "2026-11-25 12:30",
        ):
            assert snippet in body, (snippet, body)
    # priority 1 first, then priority 2 by due time
    order = [text.index(account) for account in ("KA0000012", "KA0000020", "KA0000031")]
    assert order == sorted(order)
    assert "Hello Li Wang" in text


def test_digest_zh_cn_subject_and_bodies() -> None:
    """Chinese digest: Chinese wording, the same data and dates; a reason without the rule
    set's words names the rule instead of showing its raw conditions."""
    subject, text, html = render_task_digest("王经理", digest_tasks(), "zh-CN")
    assert subject.startswith("[kamflow] 3 项新的大客户维系任务")
    assert all(s in subject for s in ("上海银行", "KA0000012", "Care call", "2026-11-27"))
    for body in (text, html):
        for snippet in (
            "王经理",
            "截止",
            "原因",
            "上海银行",
            "Care call",
            "2026-11-27 18:00",
            "由规则 high_value_at_risk 触发",
        ):
            assert snippet in body, (snippet, body)
        assert "churn_risk" not in body
    assert render_task_digest("王经理", digest_tasks(), "zh_CN")[0] == subject


def test_digest_html_escapes_customer_data() -> None:
    """An account name with <script> is escaped in the HTML body (text keeps it verbatim)."""
    for language in ("en", "zh-CN"):
        _, text, html = render_task_digest("Li Wang", digest_tasks(), language)
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Ltd" in html
        assert "<script>alert(1)</script> Ltd" in text


def test_digest_unknown_language_falls_back_to_english() -> None:
    """An unsupported language renders the English templates."""
    assert render_task_digest("Li", digest_tasks(), "fr") == render_task_digest(
        "Li", digest_tasks(), "en"
    )


def test_digest_single_task_and_bad_input() -> None:
    """One task reads "1 new retention task"; no tasks or a task missing fields is a ValueError."""
    subject, _, _ = render_task_digest("Li", digest_tasks()[1:2])
    assert subject.startswith("[kamflow] 1 new retention task: Care call")
    with pytest.raises(ValueError, match="at least one task"):
        render_task_digest("Li", [])
    incomplete = {k: v for k, v in digest_tasks()[0].items() if k != "reason"}
    with pytest.raises(ValueError, match="reason"):
        render_task_digest("Li", [incomplete])


def test_digest_can_be_sent_through_the_outbox(tmp_path: Path) -> None:
    """A rendered digest round-trips through FileOutbox with subject and HTML intact."""
    subject, text, html = render_task_digest("王经理", digest_tasks(), "zh-CN")
    email = Email(
        key="digest-u7-2026-11-25",
        sender=sender_from_env(Settings.from_env({})),
        to="wang@op.example",
        subject=subject,
        text=text,
        html=html,
    )
    message = parse_eml(Path(FileOutbox(tmp_path).send(email)).read_bytes())
    assert message["Subject"] == subject
    assert body_of(message, "html") == html


# --------------------------------------------------------------------------------------------
# Configuration from the environment


def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def test_backend_from_env_defaults_to_the_file_outbox(tmp_path: Path) -> None:
    """No KAMFLOW_EMAIL_BACKEND: a FileOutbox in the given directory."""
    backend = backend_from_env(tmp_path, settings({}))
    assert isinstance(backend, FileOutbox) and backend.directory == tmp_path
    assert isinstance(backend_from_env(tmp_path, settings({"KAMFLOW_EMAIL_BACKEND": " FILE "})),
                      FileOutbox)


def test_backend_from_env_smtp(tmp_path: Path) -> None:
    """smtp: host, port, login and STARTTLS from the environment; defaults 127.0.0.1:25."""
    default = backend_from_env(tmp_path, settings({"KAMFLOW_EMAIL_BACKEND": "smtp"}))
    assert isinstance(default, SmtpBackend)
    assert (default.host, default.port, default.username, default.starttls) == (
        "127.0.0.1",
        25,
        None,
        False,
    )
    env = {
        "KAMFLOW_EMAIL_BACKEND": "smtp",
        "KAMFLOW_SMTP_HOST": "relay.operator.example",
        "KAMFLOW_SMTP_PORT": "587",
        "KAMFLOW_SMTP_USER": "kam",
        "KAMFLOW_SMTP_PASSWORD": "pw",
        "KAMFLOW_SMTP_STARTTLS": "1",
    }
    configured = backend_from_env(tmp_path, settings(env))
    assert isinstance(configured, SmtpBackend)
    assert (configured.host, configured.port, configured.username, configured.starttls) == (
        "relay.operator.example",
        587,
        "kam",
        True,
    )
    assert "pw" not in repr(configured) and "pw" not in repr(settings(env))
    with pytest.raises(ConfigError, match="KAMFLOW_SMTP_PORT must be a whole number, not 'smtp'"):
        settings({**env, "KAMFLOW_SMTP_PORT": "smtp"})
    with pytest.raises(ValueError, match="KAMFLOW_SMTP_USER and KAMFLOW_SMTP_PASSWORD"):
        backend_from_env(tmp_path, settings({**env, "KAMFLOW_SMTP_PASSWORD": ""}))


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (the test's own CA)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_smtp_implicit_tls_logs_in_over_tls(tmp_path: Path) -> None:
    """KAMFLOW_SMTP_SSL: TLS from the first byte (SMTPS, as on port 465), the login inside it;
    a server certificate the client does not trust is a failure, not a fallback to clear."""
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    logins: list[tuple[bytes, bytes, bool]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        # the password arrives inside TLS (aiosmtpd's auth_require_tls knows only STARTTLS)
        logins.append((auth_data.login, auth_data.password,
                       server.transport.get_extra_info("ssl_object") is not None))
        return AuthResult(success=True)

    sink, port = SmtpSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ssl_context=server_tls,
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        trusted = ssl.create_default_context(cafile=str(cert_file))
        backend = SmtpBackend("127.0.0.1", port, "kam", "s3cret", timeout=5, implicit_tls=True,
                              tls_context=trusted)
        backend.send(make_email())
        with pytest.raises(SendError) as untrusted:  # the system CAs do not know this one
            SmtpBackend("127.0.0.1", port, "kam", "s3cret", timeout=5,
                        implicit_tls=True).send(make_email(key="other"))
    finally:
        controller.stop()
    assert len(sink.messages) == 1 and logins == [(b"kam", b"s3cret", True)]
    assert untrusted.value.permanent is False and "CERTIFICATE_VERIFY_FAILED" in str(
        untrusted.value)


@pytest.mark.parametrize("host", ["relay.operator.example", "10.0.0.25", "smtp.localhost.evil"])
def test_smtp_login_without_tls_is_refused_except_on_loopback(host: str) -> None:
    """A login in clear to another machine is refused before any connection; STARTTLS or
    implicit TLS makes it acceptable; a relay on loopback may be logged in to in clear."""
    with pytest.raises(ValueError, match="without TLS would send the password in clear"):
        SmtpBackend(host, 25, "kam", "pw")
    assert SmtpBackend(host, 587, "kam", "pw", starttls=True).starttls
    assert SmtpBackend(host, 465, "kam", "pw", implicit_tls=True).implicit_tls
    assert SmtpBackend(host, 25).username is None  # no login: nothing to protect
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        SmtpBackend(loopback, 25, "kam", "pw")
    with pytest.raises(ValueError, match="not both"):
        SmtpBackend(host, 465, "kam", "pw", starttls=True, implicit_tls=True)


def test_backend_from_env_smtp_tls_settings(tmp_path: Path) -> None:
    """KAMFLOW_SMTP_SSL=1 gives implicit TLS; a login to a remote relay without TLS is a clear
    error naming the variables to set."""
    env = {"KAMFLOW_EMAIL_BACKEND": "smtp", "KAMFLOW_SMTP_HOST": "relay.operator.example",
           "KAMFLOW_SMTP_PORT": "465", "KAMFLOW_SMTP_USER": "kam",
           "KAMFLOW_SMTP_PASSWORD": "pw"}
    secure = backend_from_env(tmp_path, settings({**env, "KAMFLOW_SMTP_SSL": "1"}))
    assert isinstance(secure, SmtpBackend) and secure.implicit_tls and not secure.starttls
    with pytest.raises(ValueError, match="KAMFLOW_SMTP_STARTTLS=1 .* KAMFLOW_SMTP_SSL=1"):
        backend_from_env(tmp_path, settings(env))


def test_backend_from_env_sendgrid(tmp_path: Path) -> None:
    """sendgrid: needs SENDGRID_API_KEY (clear error without it); host and timeout configurable."""
    backend = backend_from_env(tmp_path, settings({
        "KAMFLOW_EMAIL_BACKEND": "sendgrid",
        "SENDGRID_API_KEY": API_KEY,
        "KAMFLOW_SENDGRID_HOST": "http://127.0.0.1:4010",
        "KAMFLOW_SENDGRID_TIMEOUT": "2.5",
    }))
    assert isinstance(backend, SendGridBackend)
    assert (backend.host, backend.timeout) == ("http://127.0.0.1:4010", 2.5)
    default = backend_from_env(
        tmp_path, settings({"KAMFLOW_EMAIL_BACKEND": "sendgrid", "SENDGRID_API_KEY": API_KEY})
    )
    assert isinstance(default, SendGridBackend)
    assert (default.host, default.timeout) == ("https://api.sendgrid.com", 10.0)
    for env in (
        {"KAMFLOW_EMAIL_BACKEND": "sendgrid"},
        {"KAMFLOW_EMAIL_BACKEND": "sendgrid", "SENDGRID_API_KEY": "  "},
    ):
        with pytest.raises(ValueError, match="SENDGRID_API_KEY"):
            backend_from_env(tmp_path, settings(env))


def test_backend_from_env_unknown_name(tmp_path: Path) -> None:
    """An unknown backend name is refused when the settings are read, listing the allowed
    values."""
    with pytest.raises(ConfigError, match="KAMFLOW_EMAIL_BACKEND .*'mailgun'.*file, smtp, "
                                          "sendgrid"):
        settings({"KAMFLOW_EMAIL_BACKEND": "mailgun"})


def test_sender_from_env() -> None:
    """KAMFLOW_EMAIL_FROM sets the sender; the default is kamflow@operator.example."""
    assert sender_from_env(settings({})) == "kamflow@operator.example"
    assert sender_from_env(settings({"KAMFLOW_EMAIL_FROM": "kam@op.example"})) == \
        "kam@op.example"


def test_message_date_is_utc_and_injectable() -> None:
    """to_email_message stamps the given time (UTC by default) as the Date header."""
    message = notifications.to_email_message(make_email(), now=datetime(2026, 11, 25, tzinfo=UTC))
    assert message["Date"] == "Wed, 25 Nov 2026 00:00:00 +0000"


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 3 * 57, 3 * 57 + 5, 250_000])
def test_base64_lines_is_encodebytes_with_the_given_line_ends(size: int) -> None:
    """The vectorised body encoder writes exactly what base64.encodebytes writes."""
    import base64
    import random

    data = random.Random(size).randbytes(size)
    assert base64_lines(data, b"\n") == base64.encodebytes(data)
    assert base64_lines(data, b"\r\n") == base64.encodebytes(data).replace(b"\n", b"\r\n")
