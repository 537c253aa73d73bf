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

import base64
import http.client
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from kamflow.notifications.message import Email, SendError

if TYPE_CHECKING:
    from sendgrid.helpers.mail import Mail

__all__ = ["MAX_PERSONALIZATIONS", "SendGridBackend", "batchable", "build_batch", "build_mail"]

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
        template_id: str | None = None,
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
        # A pass-through dynamic template (d-...): lets every email join a batch, whatever its
        # size. Without it only emails whose bodies fit the substitution budget are batched.
        self.template_id = template_id
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
        try:
            payload = build_mail(email).get()
        except (KeyError, ValueError, TypeError) as exc:
            # The helpers cannot even represent some addresses ("wang@@x"): no request can help.
            raise SendError(
                backend=self.name,
                recipient=email.to,
                key=email.key,
                reason=f"cannot build the request ({type(exc).__name__}: {exc}); check the "
                "addresses",
                permanent=True,
            ) from exc
        return self._post(payload, email)

    def send_many(self, emails: Sequence[Email]) -> list[str | SendError]:
        """Send `emails` in as few requests as SendGrid allows; one result per email, in order:
        SendGrid's `X-Message-Id` or the `SendError` for that email.

        Emails that share sender, categories and content types go out together, up to
        `MAX_PERSONALIZATIONS` per request, as one personalization each (own recipient, subject
        and custom args; the bodies travel as substitutions, which SendGrid limits to
        `SUBSTITUTION_BUDGET` bytes each). A larger email goes alone. Every request gets the
        retry policy of `send`. A batch refused as a whole (4xx) is resent one email per
        request, so one bad address cannot hold back the others.
        """
        results: list[str | SendError | None] = [None] * len(emails)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, email in enumerate(emails):
            if self.template_id is not None or batchable(email):
                key = (email.sender, tuple(dict.fromkeys(email.categories)), email.html is None)
                groups.setdefault(key, []).append(index)
            else:
                results[index] = self._send_one(email)
        for indexes in groups.values():
            for chunk in _chunks(indexes, emails):
                if len(chunk) == 1:
                    results[chunk[0]] = self._send_one(emails[chunk[0]])
                    continue
                batch = [emails[i] for i in chunk]
                try:
                    payload = build_batch(batch, self.template_id)
                except (KeyError, ValueError, TypeError) as exc:
                    # one email the batch cannot carry: each alone, so only that one fails
                    logger.warning("cannot build a batch of %d (%s); sending them one by one",
                                   len(batch), exc)
                    for i in chunk:
                        results[i] = self._send_one(emails[i])
                    continue
                try:
                    message_id = self._post(payload, _BatchLabel.of(batch))
                except SendError as exc:
                    if exc.permanent:
                        logger.warning(
                            "SendGrid refused a batch of %d (%s); sending them one by one",
                            len(batch),
                            exc.reason,
                        )
                        for i in chunk:
                            results[i] = self._send_one(emails[i])
                    else:
                        for i in chunk:
                            results[i] = exc
                    continue
                for i in chunk:
                    results[i] = message_id
        return [r for r in results if r is not None]

    def _send_one(self, email: Email) -> str | SendError:
        try:
            return self.send(email)
        except SendError as exc:
            return exc
        except (ValueError, TypeError, UnicodeError) as exc:  # this email alone, for good
            return SendError(backend=self.name, recipient=email.to, key=email.key,
                             reason=f"cannot send the email ({type(exc).__name__}: {exc})",
                             permanent=True)

    def _post(self, payload: Mapping[str, Any], email: Email | _BatchLabel) -> str:
        # Kept apart from building the payload so a batched send (many personalizations in one
        # request) reuses the same retry policy, which tenacity runs: `_attempt` turns each
        # failure into a permanent SendError (not retried) or a `_Transient` (retried).
        import tenacity

        attempts = self.max_retries + 1
        backoff = tenacity.wait_exponential(multiplier=self.backoff, max=self.max_delay)

        def wait(state: tenacity.RetryCallState) -> float:
            retry_after = _transient(state).retry_after or 0.0
            return min(max(backoff(state), retry_after), self.max_delay)

        def stop(state: tenacity.RetryCallState) -> bool:
            # Out of attempts, or the server asks for a longer wait than max_delay: give up now
            # rather than block the pipeline.
            retry_after = _transient(state).retry_after
            return state.attempt_number >= attempts or (
                retry_after is not None and retry_after > self.max_delay)

        def log_retry(state: tenacity.RetryCallState) -> None:
            logger.warning(
                "SendGrid attempt %d/%d for email %r to %s failed (%s); retrying in %.2f s",
                state.attempt_number,
                attempts,
                email.key,
                email.to,
                _transient(state).reason,
                state.next_action.sleep if state.next_action else 0.0,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            stop=stop,
            wait=wait,
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            response = retrying(self._attempt, payload, email)
        except _Transient as failure:
            attempt = retrying.statistics["attempt_number"]
            if attempt < attempts and failure.retry_after is not None:
                reason = (f"{failure.reason}; server asks to retry after "
                          f"{failure.retry_after:g} s (more than max_delay={self.max_delay:g} s)")
            else:
                reason = f"{failure.reason}; gave up after {attempts} attempts"
            raise SendError(backend=self.name, recipient=email.to, key=email.key,
                            status=failure.status, reason=reason,
                            permanent=False) from failure.__cause__
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
            retrying.statistics["attempt_number"],
        )
        return message_id

    def _attempt(self, payload: Mapping[str, Any], email: Email | _BatchLabel) -> Any:
        """One request: the response, a permanent `SendError` (any 4xx but 429), or `_Transient`
        (429, 5xx, timeouts and connection errors)."""
        from python_http_client.exceptions import HTTPError

        try:
            return self._client.client.mail.send.post(request_body=payload)
        except HTTPError as exc:
            status = int(exc.status_code)
            reason = f"HTTP {status} {exc.reason}: {_body_excerpt(exc.body)}"
            if status != 429 and not 500 <= status < 600:
                raise SendError(backend=self.name, recipient=email.to, key=email.key,
                                status=status, reason=reason, permanent=True) from exc
            raise _Transient(reason, status, _retry_after_seconds(exc.headers)) from exc
        except (OSError, http.client.HTTPException) as exc:
            # URLError (refused, DNS), TimeoutError, RemoteDisconnected, IncompleteRead, ...
            reason = f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"
            raise _Transient(reason) from exc


class _Transient(Exception):
    """A failed attempt worth retrying, with what the retry policy needs to know."""

    def __init__(self, reason: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after


def _transient(state: Any) -> _Transient:
    """The `_Transient` that ended the attempt `state` describes (the only exception retried)."""
    failure = state.outcome.exception() if state.outcome else None
    assert isinstance(failure, _Transient)
    return failure


def build_mail(email: Email) -> Mail:
    """The v3 mail-send request for `email`, built with the `sendgrid.helpers.mail` helpers."""
    from sendgrid.helpers.mail import (
        Attachment,
        Category,
        Content,
        ContentId,
        CustomArg,
        Disposition,
        FileContent,
        FileName,
        FileType,
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
    for image in email.inline_images:  # shown in place by the HTML's <img src="cid:...">
        mail.add_attachment(Attachment(
            FileContent(base64.b64encode(image.data).decode("ascii")), FileName(image.filename),
            FileType(f"image/{image.subtype}"), Disposition("inline"), ContentId(image.cid)))
    # The helpers insert at index 0: add in reverse to keep the caller's order. SendGrid refuses
    # repeated categories (uniqueItems), so drop repeats.
    categories = list(dict.fromkeys(email.categories))
    if categories:
        mail.category = [Category(name) for name in reversed(categories)]
    args = {**email.custom_args, KEY_ARG: email.key}
    mail.custom_arg = [CustomArg(name, value) for name, value in reversed(args.items())]
    return mail


MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per request
# SendGrid caps the substitutions of one personalization at 10,000 bytes; keep a margin.
SUBSTITUTION_BUDGET = 9000
TEXT_TAG = "[%kamflow_text%]"
HTML_TAG = "[%kamflow_html%]"


def batchable(email: Email) -> bool:
    """Whether `email` can travel as one personalization of a batch (its bodies fit the
    substitution budget and contain no substitution tag)."""
    if email.inline_images:  # attachments are the request's, not a personalization's
        return False
    size = len(email.text.encode("utf-8")) + len((email.html or "").encode("utf-8"))
    size += len(TEXT_TAG) + len(HTML_TAG)
    bodies = email.text + (email.html or "")
    return size <= SUBSTITUTION_BUDGET and TEXT_TAG not in bodies and HTML_TAG not in bodies


def build_batch(emails: Sequence[Email], template_id: str | None = None) -> dict[str, Any]:
    """One v3 mail-send request for several emails that share sender, categories and content
    types: a personalization per email (to, subject, custom args incl. `kamflow_key`).

    The bodies travel as substitutions into the shared content (each email at most
    `SUBSTITUTION_BUDGET` bytes), or, with `template_id`, as `dynamic_template_data`
    (`subject`, `text`, `html`) of a pass-through dynamic template (no size limit of its own;
    see docs/email-and-tasks.md for the template to create in SendGrid).
    """
    if not emails or len(emails) > MAX_PERSONALIZATIONS:
        raise ValueError(f"a batch holds 1 to {MAX_PERSONALIZATIONS} emails, not {len(emails)}")
    first = emails[0]
    personalizations = []
    for email in emails:
        personalization: dict[str, Any] = {
            "to": [{"email": email.to}],
            "custom_args": {**email.custom_args, KEY_ARG: email.key},
        }
        if template_id is not None:
            data = {"subject": email.subject, "text": email.text}
            if email.html is not None:
                data["html"] = email.html
            personalization["dynamic_template_data"] = data
        else:
            substitutions = {TEXT_TAG: email.text}
            if email.html is not None:
                substitutions[HTML_TAG] = email.html
            personalization["subject"] = email.subject
            personalization["substitutions"] = substitutions
        personalizations.append(personalization)
    payload: dict[str, Any] = {
        "from": {"email": first.sender},
        "personalizations": personalizations,
    }
    if template_id is not None:
        payload["template_id"] = template_id
    else:
        content = [{"type": "text/plain", "value": TEXT_TAG}]
        if first.html is not None:
            content.append({"type": "text/html", "value": HTML_TAG})
        payload["subject"] = first.subject  # each personalization overrides it with its own
        payload["content"] = content
    categories = list(dict.fromkeys(first.categories))
    if categories:
        payload["categories"] = categories
    return payload


MAX_REQUEST_BYTES = 10_000_000  # well under SendGrid's 30 MB limit per request


def _chunks(indexes: Sequence[int], emails: Sequence[Email]) -> list[list[int]]:
    """Batches of at most `MAX_PERSONALIZATIONS` emails and about `MAX_REQUEST_BYTES`."""
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index in indexes:
        email = emails[index]
        weight = len(email.text.encode("utf-8")) + len((email.html or "").encode("utf-8")) + 500
        if current and (len(current) == MAX_PERSONALIZATIONS or size + weight > MAX_REQUEST_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(index)
        size += weight
    if current:
        chunks.append(current)
    return chunks


class _BatchLabel:
    """How a batch is named in errors and logs (where a single email shows `to` and `key`)."""

    def __init__(self, to: str, key: str) -> None:
        self.to, self.key = to, key

    @classmethod
    def of(cls, batch: Sequence[Email]) -> _BatchLabel:
        more = f" and {len(batch) - 1} more" if len(batch) > 1 else ""
        return cls(f"{batch[0].to}{more}", f"{batch[0].key}{more}")


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
