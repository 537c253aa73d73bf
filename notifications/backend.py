"""The one interface every email backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kamflow.notifications.message import Email

__all__ = ["EmailBackend"]


@runtime_checkable
class EmailBackend(Protocol):
    """Sends one `Email`.

    `send` returns the provider's id for the sent message (SendGrid's `X-Message-Id`, the SMTP
    Message-ID, the outbox file path) and raises `SendError` when it cannot send; its `permanent`
    flag tells the caller whether a retry can help. Sending the same `Email.key` twice is allowed:
    the file outbox overwrites its file, the other backends send again (callers record what was
    sent to avoid that).
    """

    name: str

    def send(self, email: Email) -> str:
        """Send `email`; return the provider's message id; raise `SendError` on failure."""
        ...
