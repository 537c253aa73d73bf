"""A backend that sends through an SMTP server (the operator's relay, or a local sink in tests)."""

from __future__ import annotations

import ipaddress
import logging
import smtplib
import ssl

from kamflow.notifications.message import Email, SendError, to_email_message

__all__ = ["SmtpBackend"]

logger = logging.getLogger(__name__)


class SmtpBackend:
    """Sends each email in its own SMTP session: plain, upgraded with STARTTLS (``starttls``,
    usually port 587) or TLS from the first byte (``implicit_tls``, SMTPS, port 465), then the
    login if a username is given. A login without TLS is refused (the password would cross the
    network in clear) unless the relay is on this machine (127.0.0.1, ::1, localhost). The
    server's certificate is checked against the system's CAs (``SSL_CERT_FILE`` names others),
    or ``tls_context`` when given.

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
        implicit_tls: bool = False,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("SmtpBackend needs both username and password, or neither")
        if starttls and implicit_tls:
            raise ValueError("SMTP: use STARTTLS (KAMFLOW_SMTP_STARTTLS, port 587) or implicit "
                             "TLS (KAMFLOW_SMTP_SSL, port 465), not both")
        if username is not None and not (starttls or implicit_tls) and not _loopback(host):
            raise ValueError(
                f"SMTP: logging in to {host} without TLS would send the password in clear; "
                "set KAMFLOW_SMTP_STARTTLS=1 (usually port 587) or KAMFLOW_SMTP_SSL=1 (implicit "
                "TLS, usually port 465). Only a relay on this machine (127.0.0.1, ::1, "
                "localhost) is logged in to without TLS")
        self.host = host
        self.port = int(port)
        self.username = username
        self._password = password
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self._tls_context = tls_context
        self.timeout = timeout

    def __repr__(self) -> str:
        # No password here: reprs end up in logs and tracebacks.
        return (
            f"SmtpBackend(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"starttls={self.starttls}, implicit_tls={self.implicit_tls})"
        )

    def send(self, email: Email) -> str:
        """Send `email`; return its Message-ID; raise `SendError` on failure."""
        try:
            message = to_email_message(email)
        except (ValueError, TypeError) as exc:
            raise self._unencodable(email, exc) from exc
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=self._context())
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
        except ssl.SSLError as exc:
            # Before ValueError: a certificate that does not verify is one (ssl subclasses
            # both). A relay's TLS is fixed by its operator; the email waits, it is not bad.
            raise SendError(
                backend=self.name,
                recipient=email.to,
                key=email.key,
                reason=f"TLS with {self.host}:{self.port} failed: {type(exc).__name__}: {exc}",
                permanent=False,
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

    def _context(self) -> ssl.SSLContext:
        return self._tls_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=self._context())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

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


def _loopback(host: str) -> bool:
    """``host`` names this machine: localhost or a loopback address (not resolved)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", errors="replace")
    return str(reply)
