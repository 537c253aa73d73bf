"""A backend that sends through SendGrid's v3 mail-send API with the official `sendgrid` client.

The client has no timeout and no retry of its own (see the engineering notes): this backend sets
the timeout, retries 429, 5xx, timeouts and connection errors with exponential backoff, honours
`Retry-After`, and gives up at once on any other 4xx. `sendgrid` is imported when the first
backend is built, so `import notifications` stays fast.

A timeout after SendGrid has received the request can mean the email was accepted; the v3 API has
no idempotency key, so the retry may deliver it twice. `kamflow_key` travels in `custom_args` so
duplicates can be recognised in SendGrid's event data.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from notifications.message import Email, SendError

if TYPE_CHECKING:
    from sendgrid.helpers.mail import Mail

__all__ = ["SendGridBackend", "build_mail"]

logger = logging.getLogger(__name__)

KEY_ARG = "kamflow_key"
DEFAULT_HOST = "https://api.sendgrid.com"


class SendGridBackend:
    """Sends each email as one `POST /v3/mail/send` request; returns SendGrid's `X-Message-Id`.

    `max_retries` is the number of retries after the first attempt. The delay before retry n
    (n = 1, 2, ...) is `backoff * 2 ** (n - 1)`, raised to the server's `Retry-After` when that is
    longer, and never more than `max_delay`: when the server asks for a longer wait the backend
    gives up with `SendError(permanent=False)` instead of blocking the pipeline.
    """

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        host: str = DEFAULT_HOST,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        *,
        max_delay: float = 60.0,
    ) -> None:
        if not api_key:
            raise ValueError("SendGridBackend needs an API key")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        import sendgrid

        _install_log_redaction()
        self.host = host
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_delay = max_delay
        self._sleep = sleep
        # The key lives only inside the client's Authorization header, never on this object.
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=host)
        # The client (python_http_client) has no default timeout: without this a stalled
        # connection blocks forever. Child clients built per request inherit it.
        self._client.client.timeout = timeout

    def __repr__(self) -> str:
        return (
            f"SendGridBackend(host={self.host!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries})"
        )

    def send(self, email: Email) -> str:
        """Send `email`; return SendGrid's message id; raise `SendError` on failure."""
        payload = build_mail(email).get()
        return self._post(payload, email)

    def _post(self, payload: Mapping[str, Any], email: Email) -> str:
        # Kept apart from building the payload so a batched send (many personalizations in one
        # request) can reuse the retry policy later.
        from python_http_client.exceptions import HTTPError

        attempts = self.max_retries + 1
        reason = ""
        last_status: int | None = None
        last_error: BaseException | None = None
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                response = self._client.client.mail.send.post(request_body=payload)
            except HTTPError as exc:
                status = int(exc.status_code)
                reason = f"HTTP {status} {exc.reason}: {_body_excerpt(exc.body)}"
                if status != 429 and not 500 <= status < 600:
                    raise SendError(
                        backend=self.name,
                        recipient=email.to,
                        key=email.key,
                        status=status,
                        reason=reason,
                        permanent=True,
                    ) from exc
                retry_after = _retry_after_seconds(exc.headers)
                last_status = status
                last_error = exc
            except (OSError, http.client.HTTPException) as exc:
                # URLError (refused, DNS), TimeoutError, RemoteDisconnected, IncompleteRead, ...
                reason = f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"
                last_status = None
                last_error = exc
            else:
                message_id = response.headers.get("X-Message-Id") or ""
                if not message_id:
                    logger.warning(
                        "SendGrid accepted email %r (HTTP %s) without an X-Message-Id",
                        email.key,
                        response.status_code,
                    )
                logger.info(
                    "sent email %r to %s via SendGrid as %s (attempt %d)",
                    email.key,
                    email.to,
                    message_id,
                    attempt,
                )
                return message_id

            if attempt == attempts:
                raise SendError(
                    backend=self.name,
                    recipient=email.to,
                    key=email.key,
                    status=last_status,
                    reason=f"{reason}; gave up after {attempts} attempts",
                    permanent=False,
                ) from last_error
            delay = self.backoff * 2 ** (attempt - 1)
            if retry_after is not None:
                delay = max(delay, retry_after)
            if retry_after is not None and retry_after > self.max_delay:
                raise SendError(
                    backend=self.name,
                    recipient=email.to,
                    key=email.key,
                    status=last_status,
                    reason=f"{reason}; server asks to retry after {retry_after:g} s "
                    f"(more than max_delay={self.max_delay:g} s)",
                    permanent=False,
                ) from last_error
            delay = min(delay, self.max_delay)
            logger.warning(
                "SendGrid attempt %d/%d for email %r to %s failed (%s); retrying in %.2f s",
                attempt,
                attempts,
                email.key,
                email.to,
                reason,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def build_mail(email: Email) -> Mail:
    """The v3 mail-send request for `email`, built with the `sendgrid.helpers.mail` helpers."""
    from sendgrid.helpers.mail import (
        Category,
        Content,
        CustomArg,
        From,
        Mail,
        Personalization,
        Subject,
        To,
    )

    mail = Mail()
    mail.from_email = From(email.sender)
    mail.subject = Subject(email.subject)
    personalization = Personalization()
    personalization.add_to(To(email.to))
    mail.add_personalization(personalization)
    mail.add_content(Content("text/plain", email.text))
    if email.html is not None:
        mail.add_content(Content("text/html", email.html))
    # The helpers insert at index 0: add in reverse to keep the caller's order. SendGrid refuses
    # repeated categories (uniqueItems), so drop repeats.
    categories = list(dict.fromkeys(email.categories))
    if categories:
        mail.category = [Category(name) for name in reversed(categories)]
    args = {**email.custom_args, KEY_ARG: email.key}
    mail.custom_arg = [CustomArg(name, value) for name, value in reversed(args.items())]
    return mail


def _retry_after_seconds(headers: Any) -> float | None:
    """`Retry-After` as seconds (delta-seconds or HTTP-date), or None when absent or unreadable."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _body_excerpt(body: Any, limit: int = 300) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = " ".join(str(body or "").split())
    return text if len(text) <= limit else text[:limit] + "..."


# python_http_client logs every request's headers at DEBUG, Authorization included: with DEBUG
# logging on, the API key would land in the logs. This filter blanks bearer tokens in its records.
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+")


class _RedactBearerTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer" in message:
            record.msg = _BEARER.sub(r"\1[redacted]", message)
            record.args = ()
        return True


def _install_log_redaction() -> None:
    client_logger = logging.getLogger("python_http_client.client")
    if not any(isinstance(f, _RedactBearerTokens) for f in client_logger.filters):
        client_logger.addFilter(_RedactBearerTokens())
