"""A backend that sends through an SMTP server (the operator's relay, or a local sink in tests)."""

from __future__ import annotations

import logging
import smtplib
import ssl

from kamflow.notifications.message import Email, SendError, to_email_message

__all__ = ["SmtpBackend"]

logger = logging.getLogger(__name__)


class SmtpBackend:
    """Sends each email in its own SMTP session (optionally STARTTLS and login).

    Connection problems, timeouts and 4xx replies raise `SendError(permanent=False)`; 5xx replies
    (recipient or sender refused, authentication failed, message rejected) raise
    `SendError(permanent=True)`. Returns the message's Message-ID, derived from `Email.key`.
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("SmtpBackend needs both username and password, or neither")
        self.host = host
        self.port = int(port)
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout

    def __repr__(self) -> str:
        # No password here: reprs end up in logs and tracebacks.
        return (
            f"SmtpBackend(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"starttls={self.starttls})"
        )

    def send(self, email: Email) -> str:
        """Send `email`; return its Message-ID; raise `SendError` on failure."""
        try:
            message = to_email_message(email)
        except (ValueError, TypeError) as exc:
            raise self._unencodable(email, exc) from exc
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username is not None and self._password is not None:
                    smtp.login(self.username, self._password)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(
                f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in exc.recipients.items()
            )
            raise self._error(
                email, f"recipient refused: {detail}", max(codes, default=None)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            # SMTPSenderRefused, SMTPDataError, SMTPAuthenticationError, SMTPHeloError, ...
            what = type(exc).__name__
            raise self._error(
                email, f"{what}: {exc.smtp_code} {_text(exc.smtp_error)}", exc.smtp_code
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # e.g. STARTTLS or AUTH asked of a server that does not offer it: configuration.
            raise SendError(
                backend=self.name,
                recipient=email.to,
                key=email.key,
                reason=f"server does not support what was asked: {exc}",
                permanent=True,
            ) from exc
        except (ValueError, TypeError) as exc:
            # An address or text this message cannot carry (UnicodeEncodeError): this email
            # alone fails, for good; the drain goes on with the others.
            raise self._unencodable(email, exc) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, timeouts, TLS handshake failures.
            raise SendError(
                backend=self.name,
                recipient=email.to,
                key=email.key,
                reason=f"cannot talk to {self.host}:{self.port}: {type(exc).__name__}: {exc}",
                permanent=False,
            ) from exc
        if refused:  # only possible with several recipients; kept for safety
            raise self._error(email, f"recipient refused: {refused}", None)
        message_id = str(message["Message-ID"])
        logger.info(
            "sent email %r to %s via %s:%s as %s",
            email.key,
            email.to,
            self.host,
            self.port,
            message_id,
        )
        return message_id

    def _unencodable(self, email: Email, exc: Exception) -> SendError:
        return SendError(backend=self.name, recipient=email.to, key=email.key,
                         reason=f"cannot encode the email ({type(exc).__name__}: {exc})",
                         permanent=True)

    def _error(self, email: Email, reason: str, code: int | None) -> SendError:
        # 5xx: the server says "never"; 4xx (or no code): "not now".
        permanent = code is not None and 500 <= code < 600
        return SendError(
            backend=self.name,
            recipient=email.to,
            key=email.key,
            reason=reason,
            permanent=permanent,
            status=code,
        )


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", errors="replace")
    return str(reply)
