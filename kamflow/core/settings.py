"""Every setting kamflow reads from the environment, in one typed object.

``Settings`` is built by the entry points (each CLI command, ``kamflow web``, and each Prefect
flow at the start of its run, since a Prefect worker runs the flow function itself) and passed
down; no other module reads ``os.environ``. Importing this module changes nothing.

Everything lives under ``$KAMFLOW_HOME`` (default ``~/.kamflow``): the SQLite task store, the
email outbox, quarantined rows and run reports. ``PREFECT_HOME`` defaults to a folder inside it
so a demo leaves nothing elsewhere (`configure_prefect_env`). The variables and their defaults
are documented in docs/configuration.md; a bad value is a `ConfigError` naming the variable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from kamflow.core.errors import ConfigError

__all__ = ["DEFAULT_CONF_DIR", "EMAIL_BACKENDS", "PRIVATE", "Settings", "configure_prefect_env",
           "load_settings", "warn_if_shared"]

# The shipped defaults (conf/ in the repo) are package data: found the same way in a checkout
# and in an installed wheel.
DEFAULT_CONF_DIR = Path(str(resources.files("kamflow.conf")))
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8765"
EMAIL_BACKENDS = ("file", "smtp", "sendgrid")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_UNSTRIPPED = {"smtp_password", "KAMFLOW_SMTP_PASSWORD"}  # a password may hold spaces
# What under $KAMFLOW_HOME must be the user's alone: the task store (its emails hold working
# task links), the link key, and the folders of emails, quarantined rows, reports, archived
# tasks (`kamflow housekeeping`) and the size history the disk warning projects from.
PRIVATE = ("kamflow.db", "kamflow.db-wal", "kamflow.db-shm", "link-secret", "outbox",
           "quarantine", "reports", "archive", "housekeeping")
_warned: set[Path] = set()  # homes already reported as readable by others (once a process)
log = logging.getLogger(__name__)


class Settings(BaseSettings):
    """kamflow's environment (``KAMFLOW_*``, plus ``SENDGRID_API_KEY`` and ``PREFECT_API_URL``).

    An empty or blank variable counts as unset. Secrets are `SecretStr`: never in a repr or log.
    """

    model_config = SettingsConfigDict(env_prefix="KAMFLOW_", env_ignore_empty=True,
                                      populate_by_name=True, extra="ignore", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".kamflow")
    conf: Path | None = None
    database: str | None = Field(None, validation_alias=AliasChoices(
        "KAMFLOW_DATABASE_URL", "database"))
    source: str | None = None
    ops_email: str = "ops@operator.example"
    dead_letter_after: int = 5  # permanent failures before an outbox email is a dead letter
    render_workers: int | None = None
    run_lock_wait: float = 1800.0  # seconds a second retention run waits for the first
    # the base of the one-click links (KAMFLOW_WEB_URL is its older name, still honoured)
    public_url: str = Field(DEFAULT_PUBLIC_URL, validation_alias=AliasChoices(
        "KAMFLOW_PUBLIC_URL", "KAMFLOW_WEB_URL", "public_url"))
    link_secret: SecretStr | None = None
    link_ttl_days: float = 7.0
    # the request header by which a sign-on proxy in front of `kamflow web` names the user
    # (e.g. X-Forwarded-Email): set, an outcome form acts only for the task's owner
    web_user_header: str | None = None
    email_backend: str = "file"
    email_from: str = "kamflow@operator.example"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False  # implicit TLS (SMTPS, port 465)
    sendgrid_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices(
        "SENDGRID_API_KEY", "sendgrid_api_key"))
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_timeout: float = 10.0
    sendgrid_template_id: str | None = None
    email_sandbox: bool = False
    email_allowlist: str | None = None
    email_sandbox_redirect: str | None = None
    prefect_api_url: str | None = Field(None, validation_alias=AliasChoices(
        "PREFECT_API_URL", "prefect_api_url"))

    # -- derived -------------------------------------------------------------------------------
    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.home / 'kamflow.db'}"

    @property
    def conf_dir(self) -> Path:
        return self.conf or DEFAULT_CONF_DIR

    def ensure_home(self) -> Settings:
        """Create ``home`` (the SQLite store and the outbox live there) readable by its owner
        only, and make every file this process creates from now on private too (umask 077:
        the database and its -wal/-shm, reports, quarantine, outbox, archive, housekeeping,
        link key, Prefect's home). A home made before, whose files others can read, is
        reported once (a warning saying how to fix it); returns self."""
        if os.name == "posix":
            os.umask(os.umask(0o077) | 0o077)  # keep a stricter umask the operator set
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        warn_if_shared(self.home)
        return self

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default: the process environment), ``overrides`` winning.
        A bad value is a one-line `ConfigError` naming the variable."""
        try:
            if env is None:
                return cls(**overrides)
            return cls(_build_sources=((_MappingSource(cls, env),), overrides))  # type: ignore[call-arg]
        except ValidationError as exc:
            raise ConfigError(_message(exc)) from None

    # -- checks: each message names what is wrong; the variable is added by _message -----------
    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        cleaned = {}
        for key, value in data.items():
            if isinstance(value, str) and key not in _UNSTRIPPED:
                value = value.strip()
                if not value:
                    continue
            cleaned[key] = value
        return cleaned

    @field_validator("home", "conf", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("render_workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Any:
        return _number(value, int, "a whole number", minimum=0, word="0 or more")

    @field_validator("dead_letter_after", mode="before")
    @classmethod
    def _at_least_one(cls, value: Any) -> Any:
        return _number(value, int, "a whole number", minimum=1, word="1 or more")

    @field_validator("run_lock_wait", mode="before")
    @classmethod
    def _wait(cls, value: Any) -> Any:
        return _number(value, float, "a number of seconds", minimum=0, word="0 or more")

    @field_validator("smtp_port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        return _number(value, int, "a whole number", minimum=1, word="positive")

    @field_validator("sendgrid_timeout", "link_ttl_days", mode="before")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        number = _number(value, float, "a number", minimum=0, word="positive")
        if number is not None and number <= 0:
            raise ValueError(f"must be positive, not {value!r}")
        return number

    @field_validator("smtp_starttls", "smtp_ssl", "email_sandbox", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"must be 1 or 0 (true/false), not {value!r}")

    @field_validator("email_backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> Any:
        name = str(value).strip().lower()
        if name not in EMAIL_BACKENDS:
            raise ValueError(f"is unknown: {value!r}; use one of {', '.join(EMAIL_BACKENDS)}")
        return name

    @field_validator("link_secret", mode="after")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters long")
        return value

    @field_validator("public_url", mode="after")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// address, not {value!r}")
        return value.rstrip("/")


def warn_if_shared(home: Path) -> list[str]:
    """The parts of ``home`` other local users can read (or the home itself, if they can write
    it), logged as one warning the first time a process sees this home; [] on other systems."""
    if os.name != "posix":
        return []
    loose = [f"{path} ({path.stat().st_mode & 0o777:04o})" for path in
             [home, *(home / name for name in PRIVATE)] if path.exists()
             and path.stat().st_mode & (0o022 if path == home else 0o077)]
    if loose and home not in _warned:
        _warned.add(home)
        log.warning("KAMFLOW_HOME is readable by other local users, and its task store and "
                    "emails hold working task links: %s. Make it private: chmod -R go= %s",
                    ", ".join(loose), home)
    return loose


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of this process (``env`` in tests), with ``$KAMFLOW_HOME`` created."""
    return Settings.from_env(env).ensure_home()


def configure_prefect_env(settings: Settings) -> None:
    """Set Prefect's environment before ``prefect`` is imported: telemetry off, home inside ours.

    The one place that writes ``os.environ``; entry points call it, never an import."""
    os.environ.setdefault("PREFECT_HOME", str(settings.home / "prefect"))
    # Prefect creates only the last level of its home; without the parents its server cannot
    # open its database and the ephemeral server start times out.
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The stages log through their own loggers; this sends their lines to the run's log in the
    # Prefect UI too (quarantine counts, engine facts, outbox progress, ...).
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "kamflow")
    # An ephemeral server takes 12-14 s to start cold on 2 cores; Prefect's default is 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


class _MappingSource(EnvSettingsSource):
    """The environment source reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = dict(env)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # as pydantic-settings reads os.environ: names compared in lower case, empty ones unset
        return {name.lower(): value for name, value in self._mapping.items() if value != ""}


def _number(value: Any, kind: type, what: str, *, minimum: float, word: str) -> Any:
    if value is None or isinstance(value, bool):
        return value
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be {what}, not {value!r}") from None
    if number < minimum:
        raise ValueError(f"must be {word}, not {value!r}")
    return number


def _variable(loc: str) -> str:
    """The variable(s) behind a field, or behind one of its aliases (pydantic reports either)."""
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        names = [str(n) for n in alias.choices if str(n).isupper()] \
            if isinstance(alias, AliasChoices) else [f"KAMFLOW_{name.upper()}"]
        if loc == name or loc in names:
            return names[0] + "".join(f" (or {other})" for other in names[1:])
    return loc


def _message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = _variable(str(error["loc"][0])) if error["loc"] else "the environment"
    text = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] != "value_error":
        text = f"is not valid ({text[:1].lower()}{text[1:]})"
    return f"{where} {text}"
