"""kamflow's email edge: one small interface, three real backends and a recording fake.

Every backend implements `EmailBackend`: `send(email: Email) -> str` returns the provider's id for
the message and raises `SendError` (with `permanent` telling whether a retry can help).

- `FileOutbox` (`file`, the default): writes each email as an RFC 5322 `.eml` file named after its
  idempotency key, atomically. Nothing leaves the machine.
- `SmtpBackend` (`smtp`): sends through an SMTP relay, optionally with STARTTLS and login.
- `SendGridBackend` (`sendgrid`): the official `sendgrid` client against the v3 mail-send API,
  with the timeout and the retries (429/5xx/timeouts, `Retry-After`) that the client lacks.
- `notifications.testing.RecordingBackend`: a fake that records and fails on request, for tests.

`backend_from_env` picks one from the settings (kamflow.core.settings), which read:

    KAMFLOW_EMAIL_BACKEND   file (default) | smtp | sendgrid
    KAMFLOW_EMAIL_FROM      sender address (default kamflow@operator.example), see sender_from_env
    KAMFLOW_SMTP_HOST       default 127.0.0.1
    KAMFLOW_SMTP_PORT       default 25
    KAMFLOW_SMTP_USER, KAMFLOW_SMTP_PASSWORD   login (both or neither)
    KAMFLOW_SMTP_STARTTLS   1 to upgrade the connection with STARTTLS (port 587)
    KAMFLOW_SMTP_SSL        1 for implicit TLS from the first byte (SMTPS, port 465); a login
                            without one of them is refused unless the relay is on loopback
    SENDGRID_API_KEY        required for sendgrid (never logged)
    KAMFLOW_SENDGRID_HOST   default https://api.sendgrid.com
    KAMFLOW_SENDGRID_TIMEOUT   seconds, default 10
    KAMFLOW_SENDGRID_TEMPLATE_ID   a pass-through dynamic template: batch every email (optional)
    KAMFLOW_EMAIL_SANDBOX   1 to wrap the backend in the sandbox (see notifications.sandbox)
    KAMFLOW_EMAIL_ALLOWLIST    who a sandboxed run may email: a@x, @domain, *@*.domain, ...
    KAMFLOW_EMAIL_SANDBOX_REDIRECT   where other emails go in the sandbox (default: held)

`send_all(backend, emails)` sends a list, batched where the backend can (SendGrid: up to 1,000
personalizations per request), and returns one result per email.

`render_task_digest` renders the "your new retention tasks" email (English or Simplified Chinese),
`render_open_tasks_digest` the daily list of open tasks, `render_task_assignment` the immediate
email for an escalated or reassigned task.

This package is a leaf: it imports no other kamflow package than the core (the vocabulary its
emails are worded from, the settings' type), and it is the only one that imports
`sendgrid` or `smtplib`. `sendgrid` itself is imported only when a SendGrid backend is built.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kamflow.notifications.backend import EmailBackend
from kamflow.notifications.message import Email, InlineImage, SendError, to_email_message
from kamflow.notifications.outbox import FileOutbox
from kamflow.notifications.render import (
    SUPPORTED_LANGUAGES,
    render_escalations,
    render_open_tasks_digest,
    render_task_assignment,
    render_task_digest,
    render_urgent_tasks,
)
from kamflow.notifications.sandbox import HELD, Allowlist, SandboxBackend
from kamflow.notifications.sendgrid_backend import SendGridBackend
from kamflow.notifications.smtp import SmtpBackend

if TYPE_CHECKING:
    from kamflow.core.settings import Settings

__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_SENDER",
    "SUPPORTED_LANGUAGES",
    "Email",
    "EmailBackend",
    "HELD",
    "Allowlist",
    "InlineImage",
    "SandboxBackend",
    "FileOutbox",
    "SendError",
    "SendGridBackend",
    "SmtpBackend",
    "backend_from_env",
    "render_escalations",
    "render_open_tasks_digest",
    "render_task_assignment",
    "render_task_digest",
    "render_urgent_tasks",
    "send_all",
    "sender_from_env",
    "to_email_message",
]

logger = logging.getLogger(__name__)

BACKEND_NAMES = ("file", "smtp", "sendgrid")
DEFAULT_SENDER = "kamflow@operator.example"


def backend_from_env(outbox_dir: Path, settings: Settings) -> EmailBackend:
    """The backend named by `KAMFLOW_EMAIL_BACKEND` in `settings`, configured from them,
    wrapped in the sandbox when `KAMFLOW_EMAIL_SANDBOX` is on.

    Raises `ValueError` naming the variables for a missing `SENDGRID_API_KEY` or a half-given
    SMTP login (the settings themselves refuse unknown names and malformed numbers).
    """
    backend = _real_backend_from_env(outbox_dir, settings)
    if not settings.email_sandbox:
        return backend
    allowlist = Allowlist.parse(settings.email_allowlist)
    redirect = settings.email_sandbox_redirect
    logger.warning(
        "email sandbox on: only %r receive email; others are %s",
        allowlist,
        f"redirected to {redirect}" if redirect else "held",
    )
    return SandboxBackend(backend, allowlist, redirect)


def send_all(backend: EmailBackend, emails: Sequence[Email]) -> list[str | SendError]:
    """Send `emails` through `backend`, batched when it has `send_many`; one result per email
    (provider id or `SendError`), in order. Never raises `SendError`."""
    batch = getattr(backend, "send_many", None)
    if batch is not None:
        return list(batch(list(emails)))
    results: list[str | SendError] = []
    for email in emails:
        try:
            results.append(backend.send(email))
        except SendError as exc:
            results.append(exc)
    return results


def _real_backend_from_env(outbox_dir: Path, settings: Settings) -> EmailBackend:
    name = settings.email_backend
    if name == "file":
        logger.info("email backend: file outbox in %s", outbox_dir)
        return FileOutbox(Path(outbox_dir))
    if name == "smtp":
        host = settings.smtp_host
        port = settings.smtp_port
        username = settings.smtp_user
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        if (username is None) != (password is None):
            raise ValueError(
                "KAMFLOW_EMAIL_BACKEND=smtp: set both KAMFLOW_SMTP_USER and "
                "KAMFLOW_SMTP_PASSWORD, or neither"
            )
        starttls, implicit_tls = settings.smtp_starttls, settings.smtp_ssl
        logger.info(
            "email backend: smtp %s:%s (starttls=%s, implicit tls=%s, login=%s)",
            host,
            port,
            starttls,
            implicit_tls,
            username is not None,
        )
        return SmtpBackend(host, port, username, password, starttls=starttls,
                           implicit_tls=implicit_tls)
    if name == "sendgrid":
        if settings.sendgrid_api_key is None:
            raise ValueError(
                "KAMFLOW_EMAIL_BACKEND=sendgrid needs the SendGrid API key in the "
                "SENDGRID_API_KEY environment variable, which is not set"
            )
        api_key = settings.sendgrid_api_key.get_secret_value()
        host = settings.sendgrid_host
        timeout = settings.sendgrid_timeout
        template_id = settings.sendgrid_template_id
        logger.info("email backend: sendgrid at %s (timeout %s s, batching %s)", host, timeout,
                    f"with template {template_id}" if template_id else "small emails")
        return SendGridBackend(api_key, host=host, timeout=timeout, template_id=template_id)
    raise ValueError(
        f"unknown KAMFLOW_EMAIL_BACKEND {name!r}: use one of {', '.join(BACKEND_NAMES)}"
    )


def sender_from_env(settings: Settings) -> str:
    """The From address: `KAMFLOW_EMAIL_FROM`, default `kamflow@operator.example`."""
    return settings.email_from or DEFAULT_SENDER
