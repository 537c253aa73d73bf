"""The value types every backend shares: the `Email` to send and the `SendError` it may raise.

`to_email_message` turns an `Email` into a standard RFC 5322 message; the file outbox and the
SMTP backend both send exactly that message, so what lands in the outbox is what SMTP would send.
"""

from __future__ import annotations

import binascii
import hashlib
import random
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from types import MappingProxyType

import numpy as np

__all__ = [
    "Email",
    "InlineImage",
    "SendError",
    "email_bytes",
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
MAX_LINE_LENGTH = MESSAGE_POLICY.max_line_length or 998  # RFC 5322's hard limit if unset
WIRE_POLICY = MESSAGE_POLICY.clone(linesep="\r\n")

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def _empty_args() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class InlineImage:
    """A picture the HTML part shows in place: ``<img src="cid:{cid}">``. Sent as a
    ``multipart/related`` part with ``Content-ID`` and inline disposition (SMTP, file outbox)
    or a SendGrid attachment with ``content_id`` and ``disposition: inline``."""

    cid: str
    data: bytes
    filename: str
    subtype: str = "png"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+(@[A-Za-z0-9.-]+)?", self.cid):
            raise ValueError(f"InlineImage.cid must be letters, digits, '.', '_', '-' (and an "
                             f"@domain), got {self.cid!r}")


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
    # pictures the HTML shows by cid (charts of the weekly report); only with ``html``
    inline_images: tuple[InlineImage, ...] = ()

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
        object.__setattr__(self, "inline_images", tuple(self.inline_images))
        if self.inline_images and self.html is None:
            raise ValueError("Email.inline_images need an html part that shows them")
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
    _set_body(message, email.text, "plain")
    if email.html is not None:
        alternative = EmailMessage(policy=MESSAGE_POLICY)
        _set_body(alternative, email.html, "html")
        if email.inline_images:  # multipart/related: the HTML, then the pictures it shows
            alternative.make_related()
            for image in email.inline_images:
                picture = EmailMessage(policy=MESSAGE_POLICY)
                picture.set_content(image.data, maintype="image", subtype=image.subtype,
                                    disposition="inline", filename=image.filename,
                                    cid=f"<{image.cid}>")
                alternative.attach(picture)
        message.make_alternative()
        message.attach(alternative)
    return message


def _set_body(part: EmailMessage, text: str, subtype: str) -> None:
    """An ASCII body as the email package chooses (7bit where its lines allow); any other body
    base64, encoded here in one C call (``set_content`` encodes 57 bytes per Python step)."""
    if text.isascii():
        part.set_content(text, subtype=subtype, charset="utf-8")
        return
    part.set_content("", subtype=subtype, charset="utf-8", cte="base64")
    data = "\n".join(text.splitlines()).encode("utf-8") + b"\n"
    part.set_payload(base64_lines(data, b"\n").decode("ascii"))


def message_bytes(message: EmailMessage) -> bytes:
    """`message` as RFC 5322 bytes with CRLF line endings."""
    return message.as_bytes(policy=WIRE_POLICY)


def email_bytes(email: Email, *, now: datetime | None = None) -> bytes:
    """`email` as the RFC 5322 bytes of `to_email_message` (same headers, parts and transfer
    encodings; a parser reads back the same message), written directly: the email package
    spends about 2 ms per message parsing and re-folding its own headers, which is 25 s for
    the 12,000 digests of a national first run. The file outbox writes these bytes. An email
    with inline images (rare: the weekly report) is built by the email package."""
    if email.inline_images:
        return message_bytes(to_email_message(email, now=now))
    headers = [
        ("From", _address(email.sender)),
        ("To", _address(email.to)),
        ("Subject", _unstructured(email.subject, "Subject")),
        ("Date", format_datetime(now or datetime.now(UTC))),
        ("Message-ID", message_id_for(email)),
        (KEY_HEADER, _unstructured(email.key, KEY_HEADER)),
    ]
    text_part = _part(email.text, "plain")
    if email.html is None:
        return _header_block([*headers, *text_part[0], ("MIME-Version", "1.0")]) + text_part[1]
    boundary = _boundary(email)
    html_part = _part(email.html, "html")
    out = [_header_block([*headers, ("MIME-Version", "1.0"), (
        "Content-Type", f'multipart/alternative;\r\n boundary="{boundary}"')])]
    marker = f"--{boundary}\r\n".encode("ascii")
    out += [marker, _header_block(text_part[0]), text_part[1]]
    out += [b"\r\n", marker, _header_block([*html_part[0], ("MIME-Version", "1.0")]),
            html_part[1]]
    out.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def _header_block(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii") + b"\r\n"


def base64_lines(data: bytes, newline: bytes) -> bytes:
    """``base64.encodebytes(data)`` (76-character lines) with ``newline`` ending each line, in a
    few C calls: encodebytes steps through 57-byte chunks in Python, 3 s for a national run's
    4 GB of email."""
    encoded = binascii.b2a_base64(data, newline=False)
    full = len(encoded) // 76
    lines = np.empty((full, 76 + len(newline)), dtype=np.uint8)
    lines[:, :76] = np.frombuffer(encoded, dtype=np.uint8, count=full * 76).reshape(full, 76)
    lines[:, 76:] = np.frombuffer(newline, dtype=np.uint8)
    tail = encoded[full * 76:]
    return lines.tobytes() + (tail + newline if tail else b"")


def _part(text: str, subtype: str) -> tuple[list[tuple[str, str]], bytes]:
    """A text part's headers and encoded body, with the encoding `_set_body` chooses."""
    content_type = ("Content-Type", f'text/{subtype}; charset="utf-8"')
    lines = text.splitlines()
    if text.isascii():
        if all(len(line) <= MAX_LINE_LENGTH for line in lines):
            plain = "\r\n".join(lines) + "\r\n"
            return [content_type, ("Content-Transfer-Encoding", "7bit")], plain.encode("ascii")
        part = EmailMessage(policy=MESSAGE_POLICY)  # rare: let the email package pick
        _set_body(part, text, subtype)
        encoded = str(part.get_payload()).replace("\n", "\r\n").encode("ascii")
        return [content_type, ("Content-Transfer-Encoding", str(part["Content-Transfer-Encoding"]))
                ], encoded
    data = ("\n".join(lines) + "\n").encode("utf-8")
    body = base64_lines(data, b"\r\n")
    return [content_type, ("Content-Transfer-Encoding", "base64")], body


def _address(value: str) -> str:
    name, address = parseaddr(value)
    if not name:
        return address
    return formataddr((name, address), charset="utf-8")


def _unstructured(value: str, name: str) -> str:
    """An unstructured header value, RFC 2047 encoded-words when not ASCII, folded at 78."""
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=name).encode(linesep="\r\n")


def _boundary(email: Email) -> str:
    # The email package's boundary shape; random, so no body can contain it by design (base64
    # and 7bit bodies never hold "===============" followed by digits and "==").
    return f"{'=' * 15}{random.randrange(sys.maxsize):019d}=="
