"""Sandbox mode: no test or trial run can email real staff.

With ``KAMFLOW_EMAIL_SANDBOX=1`` every backend is wrapped in `SandboxBackend`. An email to an
address on the allowlist (``KAMFLOW_EMAIL_ALLOWLIST``) goes out unchanged. Any other email is

- **redirected** to ``KAMFLOW_EMAIL_SANDBOX_REDIRECT`` when that is set (the subject says
  ``[sandbox: for <original>]``, the text starts with a line naming the original recipient, and
  the custom arg ``sandbox_original_to`` carries it), or
- **held**: not sent at all; `send` returns ``held-by-sandbox`` as the provider id, so the outbox
  records it as handled (it is never sent later, even when the sandbox is turned off).

Every redirect and hold is logged (recipient, key). A sandbox with an empty allowlist and no
redirect would hold every email and report every run as done: it is refused as a configuration
error (`SandboxMisconfigured`), so a run never completes having silently sent nothing.

Allowlist entries, comma-separated, case-insensitive:
``wang@operator.example`` (that address), ``@example.test`` or ``example.test`` (that domain),
``*@*.example.test`` (a shell-style pattern on the whole address).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Sequence

from kamflow.core.errors import ConfigError
from kamflow.notifications.backend import EmailBackend
from kamflow.notifications.message import Email, SendError

__all__ = ["HELD", "Allowlist", "SandboxBackend", "SandboxMisconfigured"]

logger = logging.getLogger(__name__)

HELD = "held-by-sandbox"


class Allowlist:
    """Which recipients a sandboxed run may really email."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = tuple(e.strip().lower() for e in entries if e.strip())

    @classmethod
    def parse(cls, text: str | None) -> Allowlist:
        return cls((text or "").split(","))

    def allows(self, address: str) -> bool:
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        for entry in self.entries:
            if "*" in entry or "?" in entry:
                if fnmatch.fnmatchcase(address, entry):
                    return True
            elif entry.startswith("@"):
                if domain == entry[1:]:
                    return True
            elif "@" in entry:
                if address == entry:
                    return True
            elif domain == entry:
                return True
        return False

    def __repr__(self) -> str:
        return f"Allowlist({', '.join(self.entries) or 'empty: everything is held'})"


class SandboxMisconfigured(ConfigError):
    """The sandbox would hold every email: no allowlist entry and no redirect."""


class SandboxBackend:
    """Wraps a real backend; lets through only allowlisted recipients (see the module doc)."""

    def __init__(
        self, inner: EmailBackend, allowlist: Allowlist, redirect_to: str | None = None
    ) -> None:
        if redirect_to is not None and "@" not in redirect_to:
            raise ValueError(f"sandbox redirect must be an email address, not {redirect_to!r}")
        if not allowlist.entries and redirect_to is None:
            raise SandboxMisconfigured(
                "the email sandbox is on (KAMFLOW_EMAIL_SANDBOX=1) with an empty allowlist and "
                "no redirect: every email would be held and none sent, while each run reports "
                "its emails as handled. Set KAMFLOW_EMAIL_ALLOWLIST (who may receive email) or "
                "KAMFLOW_EMAIL_SANDBOX_REDIRECT (where the others go)")
        self.inner = inner
        self.allowlist = allowlist
        self.redirect_to = redirect_to
        self.name = f"sandbox+{inner.name}"

    def __repr__(self) -> str:
        return (
            f"SandboxBackend({self.inner!r}, {self.allowlist!r}, "
            f"redirect_to={self.redirect_to!r})"
        )

    def send(self, email: Email) -> str:
        """Send, redirect or hold `email` (see the module doc)."""
        checked = self._check(email)
        if checked is None:
            return HELD
        return self.inner.send(checked)

    def send_many(self, emails: Sequence[Email]) -> list[str | SendError]:
        """As `send` for each email, handing the ones that may go out to the inner backend's
        batching when it has one."""
        results: list[str | SendError | None] = [None] * len(emails)
        passing: list[tuple[int, Email]] = []
        for index, email in enumerate(emails):
            checked = self._check(email)
            if checked is None:
                results[index] = HELD
            else:
                passing.append((index, checked))
        batch = getattr(self.inner, "send_many", None)
        if batch is not None and passing:
            for (index, _), result in zip(passing, batch([e for _, e in passing]), strict=True):
                results[index] = result
        else:
            for index, email in passing:
                try:
                    results[index] = self.inner.send(email)
                except SendError as exc:
                    results[index] = exc
        return [r for r in results if r is not None]

    def _check(self, email: Email) -> Email | None:
        if self.allowlist.allows(email.to):
            return email
        if self.redirect_to is None:
            logger.warning(
                "sandbox: held email %r to %s (not on the allowlist; nothing sent)",
                email.key,
                email.to,
            )
            return None
        logger.warning(
            "sandbox: redirected email %r for %s to %s", email.key, email.to, self.redirect_to
        )
        return dataclasses.replace(
            email,
            to=self.redirect_to,
            subject=f"[sandbox: for {email.to}] {email.subject}",
            text=f"[kamflow sandbox] This email was meant for {email.to}.\n\n{email.text}",
            custom_args={**email.custom_args, "sandbox_original_to": email.to},
        )
