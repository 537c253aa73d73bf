"""A backend for tests: records what would have been sent and fails on request.

Shipped with the package (like structlog's `testing` module) so the rest of kamflow tests its
dispatch logic against it without mocks::

    backend = RecordingBackend()
    backend.fail_next(2)             # the next two sends raise SendError(permanent=False)
    ...
    assert [e.to for e in backend.sent] == [...]
"""

from __future__ import annotations

import threading

from kamflow.notifications.message import Email, SendError

__all__ = ["RecordingBackend"]


class RecordingBackend:
    """Keeps every successfully "sent" `Email` in `sent` and returns ids `rec-1`, `rec-2`, ...

    `attempts` holds every email passed to `send`, including the ones made to fail.
    """

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[Email] = []
        self.attempts: list[Email] = []
        self._failures: list[bool] = []
        self._lock = threading.Lock()

    def fail_next(self, n: int = 1, permanent: bool = False) -> None:
        """Make the next `n` calls to `send` raise `SendError(permanent=permanent)`."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        with self._lock:
            self._failures.extend([permanent] * n)

    def send(self, email: Email) -> str:
        """Record `email` and return `rec-<n>`, or raise the failure queued by `fail_next`."""
        with self._lock:
            self.attempts.append(email)
            if self._failures:
                permanent = self._failures.pop(0)
                raise SendError(
                    backend=self.name,
                    recipient=email.to,
                    key=email.key,
                    reason="failure requested with fail_next()",
                    permanent=permanent,
                )
            self.sent.append(email)
            return f"rec-{len(self.sent)}"
