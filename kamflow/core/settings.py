"""Where kamflow keeps its state, and the environment it sets up for Prefect.

Everything lives under ``$KAMFLOW_HOME`` (default ``~/.kamflow``): the SQLite task store,
the email outbox, quarantined rows and run reports. ``PREFECT_HOME`` defaults to a folder
inside it so a demo leaves nothing elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# The shipped defaults (conf/ in the repo) are package data: found the same way in a checkout
# and in an installed wheel.
DEFAULT_CONF_DIR = Path(str(resources.files("kamflow.conf")))


@dataclass(frozen=True)
class Paths:
    home: Path

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
        return os.environ.get("KAMFLOW_DATABASE_URL") or f"sqlite:///{self.home / 'kamflow.db'}"


def kamflow_home() -> Path:
    return Path(os.environ.get("KAMFLOW_HOME") or Path.home() / ".kamflow").expanduser().resolve()


def paths() -> Paths:
    home = kamflow_home()
    home.mkdir(parents=True, exist_ok=True)
    return Paths(home)


def configure_prefect_env() -> None:
    """Set Prefect's environment before ``prefect`` is imported: telemetry off, home inside ours."""
    home = kamflow_home()
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    # Prefect creates only the last level of its home; without the parents its server cannot
    # open its database and the ephemeral server start times out.
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The stages log through their own loggers; this sends their lines to the run's log in the
    # Prefect UI too (quarantine counts, engine facts, outbox progress, ...).
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS",
                          "kamflow")
    # An ephemeral server takes 12-14 s to start cold on 2 cores; Prefect's default is 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
