"""Shared fixtures: a small generated snapshot, an isolated KAMFLOW_HOME."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kamflow.generate import make_snapshot, write_snapshot

AS_OF = dt.date(2026, 11, 25)


@pytest.fixture(scope="session")
def frames() -> dict:
    """A 600-account generated snapshot (with a few planted bad rows), as frames."""
    return make_snapshot(600, AS_OF, seed=11)


@pytest.fixture
def snapshot_dir(tmp_path: Path, frames: dict) -> Path:
    """The 600-account snapshot written as CSV files in a fresh directory."""
    out = tmp_path / "snapshot"
    write_snapshot(frames, out)
    return out


@pytest.fixture
def kamflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty KAMFLOW_HOME with the file outbox and SQLite defaults."""
    home = tmp_path / "home"
    monkeypatch.setenv("KAMFLOW_HOME", str(home))
    monkeypatch.delenv("KAMFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("KAMFLOW_EMAIL_BACKEND", raising=False)
    return home
