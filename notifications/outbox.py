"""A backend that writes each email as an `.eml` file instead of sending it.

The default backend: nothing leaves the machine, and every `.eml` file opens in a mail client or
parses with `email.parser.BytesParser`. Good for development, demos and operators who forward the
directory to their own mail system.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from notifications.message import Email, SendError, message_bytes, safe_key, to_email_message

__all__ = ["FileOutbox"]

logger = logging.getLogger(__name__)


class FileOutbox:
    """Writes `<safe key>.eml` files (RFC 5322, CRLF) into `directory`.

    Lines end in CRLF as on the wire, so an ASCII (7bit) text part reads back with CRLF line ends;
    non-ASCII parts are base64 and decode to exactly `Email.text` / `Email.html`. Files are created
    readable by their owner only (they hold customer data).

    Writes are atomic (temporary file in the same directory, then `os.replace`), so a reader or a
    crash never sees half a file, and sending the same key again replaces the same file.
    """

    name = "file"

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FileOutbox({str(self.directory)!r})"

    def path_for(self, email: Email) -> Path:
        """Where `send` writes `email`."""
        return self.directory / f"{safe_key(email.key)}.eml"

    def send(self, email: Email) -> str:
        """Write `email` atomically; return the file path. Raise `SendError` on an OS error."""
        target = self.path_for(email)
        data = message_bytes(to_email_message(email))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, data)
        except OSError as exc:
            raise SendError(
                backend=self.name,
                recipient=email.to,
                key=email.key,
                reason=f"cannot write {target}: {exc.strerror or exc}",
                # A missing permission or a full disk will not fix itself between quick retries,
                # but an operator can fix it: let the caller retry later.
                permanent=False,
            ) from exc
        logger.info("wrote email %r for %s to %s", email.key, email.to, target)
        return str(target)


def _write_atomically(target: Path, data: bytes) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    # Make the rename itself durable. Not possible on every platform (Windows): best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
