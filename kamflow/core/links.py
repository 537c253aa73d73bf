"""One-click links in task emails: signed (HMAC-SHA256) and expiring.

A link is ``<base>/t/<token>``; the token carries the task id, the action (``ack`` or ``done``),
the recipient the link was made for, when it was made and when it expires, and ends in an HMAC
of all of them. ``kamflow web`` serves the links; a forged, altered or expired token is refused,
and so is a link made before its task got to its current owner (`Claim.issued`): task ids are
reused when the task store is recreated, and a task can come back to an earlier owner.

The key comes from ``KAMFLOW_LINK_SECRET``; when that is unset, a random key is generated once
and kept in ``$KAMFLOW_HOME/link-secret`` (mode 0600, written whole to a temporary file and then
linked into place, so a second process never reads it half-written): never in the repository,
never logged. A key file other users can read is refused (whoever reads it can forge links).
Rotating the key (changing the variable or deleting the file) invalidates every link sent.
The settings (kamflow.core.settings) carry the variables:

    KAMFLOW_PUBLIC_URL     base URL of `kamflow web` as staff reach it (older name:
                           KAMFLOW_WEB_URL; default http://127.0.0.1:8765)
    KAMFLOW_LINK_TTL_DAYS  how long a link works (default 7 days; each daily digest brings new ones)
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    from kamflow.core.settings import Settings

__all__ = ["ACTIONS", "LinkError", "LinkSigner", "Claim", "load_secret"]

ACTIONS = ("ack", "done")
DEFAULT_WEB_URL = "http://127.0.0.1:8765"
DEFAULT_TTL_DAYS = 7.0
_SECRET_FILE = "link-secret"
_VERSION = "v1"
_TOKEN_PART = re.compile(r"[A-Za-z0-9_-]{1,2000}")


class LinkError(ValueError):
    """A link that must not be honoured: malformed, forged, altered or expired."""


@dataclass(frozen=True)
class Claim:
    """What a valid token says."""

    task_id: int
    action: str
    recipient: str
    expires: dt.datetime
    # When the link was made. Links made before kamflow signed it carry none: their expiry
    # less the link lifetime is when they were made (exact while KAMFLOW_LINK_TTL_DAYS is kept).
    issued: dt.datetime


def load_secret(home: Path, configured: SecretStr | str | None = None) -> bytes:
    """The signing key: ``configured`` (``KAMFLOW_LINK_SECRET``), else
    ``$KAMFLOW_HOME/link-secret`` (created with a random key, readable by its owner only, the
    first time it is needed)."""
    if isinstance(configured, SecretStr):
        configured = configured.get_secret_value()
    value = (configured or "").strip()
    if value:
        if len(value) < 16:
            raise ValueError("KAMFLOW_LINK_SECRET must be at least 16 characters long")
        return value.encode("utf-8")
    path = Path(home) / _SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_secret(path)
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise ValueError(
            f"{path} can be read by other users (mode {path.stat().st_mode & 0o777:04o}), and "
            f"whoever reads it can forge task links: make it private with `chmod 600 {path}` "
            "(keep the file: the links already sent were signed with it)")
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 16:
        raise ValueError(
            f"{path} holds no usable key (it is empty or shorter than 16 characters): restore "
            "it from a backup, or set KAMFLOW_LINK_SECRET (the links already sent were signed "
            "with the key this file held)")
    return secret.encode("ascii")


def _create_secret(path: Path) -> None:
    """A new random key at ``path``, atomically: written whole to a private temporary file,
    then hard-linked into place (a link, unlike a rename, never replaces a key another process
    made first: that one wins)."""
    fd, temporary = tempfile.mkstemp(prefix=".link-secret-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:  # mkstemp's file is 0600
            handle.write(secrets.token_urlsafe(48))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: rename, unless one appeared
            if not path.exists():
                os.replace(temporary, path)
                return
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class LinkSigner:
    """Makes and checks the one-click links."""

    def __init__(self, secret: bytes, base_url: str = DEFAULT_WEB_URL,
                 ttl: dt.timedelta = dt.timedelta(days=DEFAULT_TTL_DAYS)) -> None:
        if len(secret) < 16:
            raise ValueError("the link secret must be at least 16 bytes")
        self._secret = secret
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable (hmac objects are not) so the email-render workers can sign links.
        return (LinkSigner, (self._secret, self.base_url, self.ttl))

    def __repr__(self) -> str:  # no secret here: reprs end up in logs
        return f"LinkSigner(base_url={self.base_url!r}, ttl={self.ttl})"

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        """The signer of this installation: key, public URL and lifetime from the settings."""
        return cls(load_secret(settings.home, settings.link_secret), settings.public_url,
                   dt.timedelta(days=settings.link_ttl_days))

    def token(self, task_id: int, action: str, recipient: str,
              now: dt.datetime | None = None) -> str:
        if action not in ACTIONS:
            raise ValueError(f"unknown link action {action!r}; use {', '.join(ACTIONS)}")
        return self._token(int(task_id), action, recipient, *self._times(now))

    def _times(self, now: dt.datetime | None) -> tuple[int, int]:
        """(issued, expires) in whole seconds."""
        now = now or dt.datetime.now(dt.UTC)
        return int(now.timestamp()), int((now + self.ttl).timestamp())

    def _token(self, task_id: int, action: str, recipient: str, issued: int,
               expires: int) -> str:
        # The same JSON as json.dumps({"t", "a", "r", "i", "e"}) without its per-call overhead:
        # emails carry two links per task, 200,000 for a 100,000-task run.
        claim = (f'{{"t":{task_id},"a":"{action}","r":{_json_string(recipient)},"i":{issued},'
                 f'"e":{expires}}}')
        body = _b64(claim.encode("utf-8"))
        return f"{_VERSION}.{body}.{self._sign(body)}"

    def url(self, task_id: int, action: str, recipient: str,
            now: dt.datetime | None = None) -> str:
        return f"{self.base_url}/t/{self.token(task_id, action, recipient, now)}"

    def links(self, task_id: int, recipient: str, now: dt.datetime | None = None) -> dict[str, str]:
        """The ``ack_url`` and ``done_url`` of a task, as the email templates take them."""
        times = self._times(now)
        return {f"{action}_url": f"{self.base_url}/t/"
                                 f"{self._token(int(task_id), action, recipient, *times)}"
                for action in ACTIONS}

    def verify(self, token: str, now: dt.datetime | None = None) -> Claim:
        """The claim in ``token``; ``LinkError`` if it is malformed, forged, altered or expired."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            raise LinkError("this link is not a kamflow task link")
        _, body, signature = parts
        if not _TOKEN_PART.fullmatch(body) or not _TOKEN_PART.fullmatch(signature):
            raise LinkError("this link is malformed")
        if not hmac.compare_digest(signature, self._sign(body)):
            raise LinkError("this link's signature is not valid (altered or forged)")
        try:
            data = json.loads(_unb64(body))
            expires = dt.datetime.fromtimestamp(int(data["e"]), dt.UTC)
            issued = (dt.datetime.fromtimestamp(int(data["i"]), dt.UTC) if "i" in data
                      else expires - self.ttl)  # a link made before links carried it
            claim = Claim(int(data["t"]), str(data["a"]), str(data["r"]), expires, issued)
        except (ValueError, KeyError, TypeError):
            raise LinkError("this link is malformed") from None
        if claim.action not in ACTIONS:
            raise LinkError("this link names an unknown action")
        if (now or dt.datetime.now(dt.UTC)) >= claim.expires:
            raise LinkError(f"this link expired on {claim.expires:%Y-%m-%d %H:%M} UTC; use the "
                            "link in your latest kamflow email")
        return claim

    def _sign(self, body: str) -> str:
        mac = self._mac.copy()  # the key schedule is computed once per signer
        mac.update(f"{_VERSION}.{body}".encode("ascii"))
        return _b64(mac.digest())


@functools.lru_cache(maxsize=4096)
def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
