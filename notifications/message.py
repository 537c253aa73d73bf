"""The value types every backend shares: the `Email` to send and the `SendError` it may raise.

`to_email_message` turns an `Email` into a standard RFC 5322 message; the file outbox and the
SMTP backend both send exactly that message, so what lands in the outbox is what SMTP would send.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from types import MappingProxyType

__all__ = [
    "Email",
    "SendError",
    "message_bytes",
    "message_id_for",
    "safe_key",
    "to_email_message",
]

KEY_HEADER = "X-Kamflow-Key"

# 7-bit transfer encodings: non-ASCII bodies become base64 or quoted-printable and non-ASCII
# headers RFC 2047 encoded-words, so the message passes any relay (no 8BITMIME/SMTPUTF8 needed)
# and Chinese text survives byte for byte. Built with "\n" so a decoded body equals `Email.text`;
# serialised with CRLF (RFC 5322) by `message_bytes` and by smtplib.
MESSAGE_POLICY = policy.default.clone(cte_type="7bit")
WIRE_POLICY = MESSAGE_POLICY.clone(linesep="\r\n")

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def _empty_args() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Email:
    """One email to one recipient, ready to send.

    `key` is the idempotency key: stable across retries of the same logical email (for example the
    outbox row id). The file outbox names its file after it, every backend puts it in the message
    (header `X-Kamflow-Key`, SendGrid custom arg `kamflow_key`).
    """

    key: str
    sender: str
    to: str
    subject: str
    text: str
    html: str | None = None
    categories: tuple[str, ...] = ()
    custom_args: Mapping[str, str] = field(default_factory=_empty_args, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise ValueError(f"Email.key must be a non-empty string, got {self.key!r}")
        for name in ("sender", "to"):
            value = getattr(self, name)
            if not isinstance(value, str) or "@" not in value:
                raise ValueError(f"Email.{name} must be an email address, got {value!r}")
        for name in ("sender", "to", "subject", "key"):
            if any(char in getattr(self, name) for char in "\r\n"):
                raise ValueError(f"Email.{name} must not contain line breaks")
        object.__setattr__(self, "categories", tuple(self.categories))
        args = dict(self.custom_args)
        for arg_name, arg_value in args.items():
            if not isinstance(arg_name, str) or not isinstance(arg_value, str):
                raise TypeError(
                    f"Email.custom_args must map str to str, got {arg_name!r}: {arg_value!r}"
                )
        # Read-only view of a private copy: the frozen Email cannot be changed through the caller's
        # dict afterwards.
        object.__setattr__(self, "custom_args", MappingProxyType(args))


class SendError(Exception):
    """A backend could not send an email.

    `permanent` is True when retrying the same email cannot help (rejected address, bad request,
    authentication refused) and False when a later retry may succeed (connection refused, timeout,
    rate limit, server error). The message names the backend, the key, the recipient and the status
    or reason; it never contains credentials.
    """

    def __init__(
        self,
        *,
        backend: str,
        recipient: str,
        reason: str,
        permanent: bool,
        key: str | None = None,
        status: int | None = None,
    ) -> None:
        self.backend = backend
        self.recipient = recipient
        self.reason = reason
        self.permanent = permanent
        self.key = key
        self.status = status
        kind = "permanent" if permanent else "transient"
        what = f"email {key!r} to {recipient}" if key is not None else f"email to {recipient}"
        status_text = f" (status {status})" if status is not None else ""
        super().__init__(f"{backend}: {kind} failure sending {what}{status_text}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only __init__: teach pickle (Prefect persists task exceptions) how to rebuild us.
        return (
            _rebuild_send_error,
            (self.backend, self.recipient, self.reason, self.permanent, self.key, self.status),
        )


def _rebuild_send_error(
    backend: str,
    recipient: str,
    reason: str,
    permanent: bool,
    key: str | None,
    status: int | None,
) -> SendError:
    return SendError(
        backend=backend,
        recipient=recipient,
        reason=reason,
        permanent=permanent,
        key=key,
        status=status,
    )


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def safe_key(key: str) -> str:
    """A file-name-safe, collision-free stand-in for `key`.

    A key of letters, digits, `.`, `_` and `-` (not starting with a dot, at most 100 characters) is
    used as it is; any other key is sanitised and suffixed with a hash of the original, so two
    different keys never share a file.
    """
    if _SAFE_KEY.fullmatch(key):
        return key
    cleaned = _UNSAFE_CHARS.sub("_", key).lstrip(".")[:80] or "key"
    return f"{cleaned}-{_digest(key)[:16]}"


def message_id_for(email: Email) -> str:
    """The Message-ID of `email`: derived from its key, so every retry carries the same id."""
    domain = parseaddr(email.sender)[1].rpartition("@")[2] or "kamflow.invalid"
    return f"<kamflow.{_digest(email.key)[:32]}@{domain}>"


def to_email_message(email: Email, *, now: datetime | None = None) -> EmailMessage:
    """Build the RFC 5322 message for `email` (multipart/alternative when it has HTML)."""
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["From"] = email.sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = message_id_for(email)
    message[KEY_HEADER] = email.key
    message.set_content(email.text, subtype="plain", charset="utf-8")
    if email.html is not None:
        message.add_alternative(email.html, subtype="html", charset="utf-8")
    return message


def message_bytes(message: EmailMessage) -> bytes:
    """`message` as RFC 5322 bytes with CRLF line endings."""
    return message.as_bytes(policy=WIRE_POLICY)
