"""The settings object: every documented variable, its default, its checks; nothing read or
written at import time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kamflow.cli import main
from kamflow.core.errors import ConfigError
from kamflow.core.settings import DEFAULT_CONF_DIR, Settings, configure_prefect_env

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_derived_paths(tmp_path: Path) -> None:
    """With only KAMFLOW_HOME set, state lives under it and every other setting has its
    documented default."""
    settings = Settings.from_env({"KAMFLOW_HOME": str(tmp_path)})
    assert settings.home == tmp_path.resolve()
    assert (settings.outbox, settings.quarantine, settings.reports) == (
        tmp_path / "outbox", tmp_path / "quarantine", tmp_path / "reports")
    assert settings.database_url == f"sqlite:///{tmp_path / 'kamflow.db'}"
    assert settings.conf_dir == DEFAULT_CONF_DIR
    assert (settings.email_backend, settings.email_from, settings.smtp_host, settings.smtp_port,
            settings.sendgrid_host, settings.sendgrid_timeout, settings.ops_email,
            settings.public_url, settings.link_ttl_days, settings.render_workers) == (
        "file", "kamflow@operator.example", "127.0.0.1", 25, "https://api.sendgrid.com", 10.0,
        "ops@operator.example", "http://127.0.0.1:8765", 7.0, None)
    assert Settings.from_env({}).home == (Path.home() / ".kamflow").resolve()


def test_every_documented_variable_is_read(tmp_path: Path) -> None:
    """Each KAMFLOW_* variable of docs/configuration.md (and SENDGRID_API_KEY, PREFECT_API_URL)
    reaches its setting; blank values count as unset."""
    env = {"KAMFLOW_HOME": str(tmp_path), "KAMFLOW_CONF": str(tmp_path / "conf"),
           "KAMFLOW_DATABASE_URL": "postgresql+psycopg://k@db/kamflow",
           "KAMFLOW_SOURCE": "/data/snapshot", "KAMFLOW_OPS_EMAIL": "noc@op.example",
           "KAMFLOW_RENDER_WORKERS": "3", "KAMFLOW_PUBLIC_URL": "https://kam.op.example",
           "KAMFLOW_LINK_SECRET": "s" * 20, "KAMFLOW_LINK_TTL_DAYS": "2.5",
           "KAMFLOW_EMAIL_BACKEND": "SMTP", "KAMFLOW_EMAIL_FROM": "kam@op.example",
           "KAMFLOW_SMTP_HOST": "relay", "KAMFLOW_SMTP_PORT": "587", "KAMFLOW_SMTP_USER": "u",
           "KAMFLOW_SMTP_PASSWORD": " p w ", "KAMFLOW_SMTP_STARTTLS": "yes",
           "SENDGRID_API_KEY": "SG.key", "KAMFLOW_SENDGRID_HOST": "http://127.0.0.1:4010",
           "KAMFLOW_SENDGRID_TIMEOUT": "2", "KAMFLOW_SENDGRID_TEMPLATE_ID": "d-1",
           "KAMFLOW_EMAIL_SANDBOX": "1", "KAMFLOW_EMAIL_ALLOWLIST": "@op.example",
           "KAMFLOW_EMAIL_SANDBOX_REDIRECT": "qa@op.example",
           "PREFECT_API_URL": "http://127.0.0.1:4200/api", "KAMFLOW_SMTP_HOSTS": "ignored"}
    s = Settings.from_env(env)
    assert (s.conf_dir, s.database_url, s.source, s.ops_email, s.render_workers) == (
        (tmp_path / "conf").resolve(), "postgresql+psycopg://k@db/kamflow", "/data/snapshot",
        "noc@op.example", 3)
    assert (s.public_url, s.link_secret.get_secret_value(), s.link_ttl_days) == (
        "https://kam.op.example", "s" * 20, 2.5)
    assert (s.email_backend, s.email_from, s.smtp_host, s.smtp_port, s.smtp_user,
            s.smtp_password.get_secret_value(), s.smtp_starttls) == (
        "smtp", "kam@op.example", "relay", 587, "u", " p w ", True)
    assert (s.sendgrid_api_key.get_secret_value(), s.sendgrid_host, s.sendgrid_timeout,
            s.sendgrid_template_id) == ("SG.key", "http://127.0.0.1:4010", 2.0, "d-1")
    assert (s.email_sandbox, s.email_allowlist, s.email_sandbox_redirect,
            s.prefect_api_url) == (True, "@op.example", "qa@op.example",
                                   "http://127.0.0.1:4200/api")
    assert "SG.key" not in repr(s) and "s" * 20 not in repr(s) and " p w " not in repr(s)
    blank = Settings.from_env({"KAMFLOW_SMTP_PORT": "  ", "KAMFLOW_EMAIL_BACKEND": "",
                               "SENDGRID_API_KEY": " "})
    assert (blank.smtp_port, blank.email_backend, blank.sendgrid_api_key) == (25, "file", None)


def test_the_process_environment_is_read_when_no_mapping_is_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings.from_env() reads os.environ (what the entry points do)."""
    monkeypatch.setenv("KAMFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("KAMFLOW_OPS_EMAIL", "noc@op.example")
    settings = Settings.from_env()
    assert (settings.home, settings.ops_email) == (tmp_path.resolve(), "noc@op.example")


@pytest.mark.parametrize("variable, value, message", [
    ("KAMFLOW_RENDER_WORKERS", "two", "KAMFLOW_RENDER_WORKERS must be a whole number, not 'two'"),
    ("KAMFLOW_RENDER_WORKERS", "-1", "KAMFLOW_RENDER_WORKERS must be 0 or more, not '-1'"),
    ("KAMFLOW_SMTP_PORT", "0", "KAMFLOW_SMTP_PORT must be positive, not '0'"),
    ("KAMFLOW_SENDGRID_TIMEOUT", "soon", "KAMFLOW_SENDGRID_TIMEOUT must be a number, not 'soon'"),
    ("KAMFLOW_LINK_TTL_DAYS", "0", "KAMFLOW_LINK_TTL_DAYS must be positive, not '0'"),
    ("KAMFLOW_SMTP_STARTTLS", "maybe", "KAMFLOW_SMTP_STARTTLS must be 1 or 0 (true/false)"),
    ("KAMFLOW_EMAIL_SANDBOX", "2", "KAMFLOW_EMAIL_SANDBOX must be 1 or 0 (true/false)"),
    ("KAMFLOW_EMAIL_BACKEND", "mailgun", "KAMFLOW_EMAIL_BACKEND is unknown: 'mailgun'"),
    ("KAMFLOW_LINK_SECRET", "short", "KAMFLOW_LINK_SECRET must be at least 16 characters"),
    ("KAMFLOW_WEB_URL", "ftp://x", "KAMFLOW_PUBLIC_URL (or KAMFLOW_WEB_URL) must be an http"),
])
def test_a_bad_value_is_a_one_line_config_error(variable: str, value: str,
                                                message: str) -> None:
    """A malformed variable is refused when the settings are built, naming it, in one line."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_the_cli_reports_a_bad_variable_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A command run with a malformed variable exits 2 with one line naming it."""
    monkeypatch.setenv("KAMFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("KAMFLOW_SMTP_PORT", "twenty-five")
    assert main(["tasks", "list"]) == 2
    err = capsys.readouterr().err
    assert err == "kamflow: KAMFLOW_SMTP_PORT must be a whole number, not 'twenty-five'\n"


def test_importing_every_module_reads_and_writes_nothing(tmp_path: Path) -> None:
    """Importing the CLI, the web app and every flow leaves os.environ as it was and creates
    no folder; configure_prefect_env (called by the entry points) is what sets Prefect up."""
    probe = (
        "import json, os, sys; before = dict(os.environ)\n"
        "import kamflow.cli, kamflow.web, kamflow.config\n"
        "import kamflow.flows.retention, kamflow.flows.digest, kamflow.flows.sla_watch\n"
        "import kamflow.flows.alerts, kamflow.flows.scaleout\n"
        "changed = sorted(k for k in set(before) | set(os.environ)"
        " if before.get(k) != os.environ.get(k))\n"
        "print(json.dumps(changed))\n")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAMFLOW_", "PREFECT_"))}
    env.update(KAMFLOW_HOME=str(home), PREFECT_HOME=str(tmp_path / "prefect-home"))
    result = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
    assert not home.exists()


def test_configure_prefect_env_fills_in_only_what_is_unset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect's home goes inside KAMFLOW_HOME unless already set; telemetry is switched off."""
    for name in ("PREFECT_HOME", "DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    configure_prefect_env(Settings.from_env({"KAMFLOW_HOME": str(tmp_path)}))
    assert os.environ["PREFECT_HOME"] == str(tmp_path.resolve() / "prefect")
    assert (tmp_path / "prefect").is_dir() and os.environ["DO_NOT_TRACK"] == "1"
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "mine"))
    configure_prefect_env(Settings.from_env({"KAMFLOW_HOME": str(tmp_path)}))
    assert os.environ["PREFECT_HOME"] == str(tmp_path / "mine")


# --------------------------------------------------------------------------- private files

_MAKE_STATE = """
import sys
from pathlib import Path
from kamflow.core.links import load_secret
from kamflow.core.settings import load_settings
from kamflow.expectations import validate_snapshot
from kamflow.expectations.files import write_validation_files
from kamflow.generate import make_snapshot, write_snapshot
from kamflow.intake import read_snapshot
from kamflow.notifications import FileOutbox
from kamflow.notifications.message import Email
from kamflow.worklist import TaskStore

settings = load_settings()
load_secret(settings.home)
store = TaskStore(settings.database_url)
with store.write_session() as session:  # a write: SQLite makes its -wal and -shm
    session.connection().exec_driver_sql("CREATE TABLE scratch (x)")
frames = make_snapshot(30, __import__("datetime").date(2026, 11, 25), seed=1, bad_share=0.2)
write_snapshot(frames, Path(sys.argv[1]))
snapshot = read_snapshot(Path(sys.argv[1]))
outcome = validate_snapshot(snapshot.tables, snapshot.problems)
write_validation_files(outcome, settings.reports / "r1", settings.quarantine / "r1", "r1")
# what `kamflow housekeeping` writes: archived tasks and the size history
import pandas as pd
from kamflow.flows.housekeeping import measure_space
store.archive.write("tasks", "2026-01", pd.DataFrame({"id": [1]}), 1, 1)
measure_space(settings)
# last: the test reads the modes once the email is there
FileOutbox(settings.outbox).send(Email(key="k1", sender="k@b.example", to="a@b.example",
                                       subject="s", text="t", html="<p>t</p>"))
input()  # keep the store open: -wal and -shm exist while it is
"""


def test_everything_kamflow_writes_under_its_home_is_private(tmp_path: Path) -> None:
    """A process started with the usual umask 022: the home is 0700, the database, its -wal and
    -shm, the link key, and every report, quarantine and outbox file are 0600."""
    home = tmp_path / "home"
    env = {**os.environ, "KAMFLOW_HOME": str(home)}
    env.pop("KAMFLOW_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-c", _MAKE_STATE, str(tmp_path / "snap")],
                               env=env, cwd=REPO, stdin=subprocess.PIPE, text=True,
                               preexec_fn=lambda: os.umask(0o022))
    try:
        deadline = time.monotonic() + 120
        while not list((home / "outbox").glob("*.eml")) and time.monotonic() < deadline:
            assert process.poll() is None, "the state-making process failed"
            time.sleep(0.2)
        modes = {str(p.relative_to(home)): p.stat().st_mode & 0o777
                 for p in [home, *home.rglob("*")]}
    finally:
        process.communicate("\n", timeout=30)
    for name in ("kamflow.db", "kamflow.db-wal", "kamflow.db-shm", "link-secret"):
        assert modes[name] == 0o600, (name, oct(modes[name]))
    assert modes["."] == 0o700
    files = {n for n in modes if n.startswith(("reports/", "quarantine/", "outbox/",
                                               "archive/", "housekeeping/"))}
    assert any(n.endswith("quarantine.csv") for n in files)
    assert any(n.endswith(".eml") for n in files) and any(n.endswith(".html") for n in files)
    assert any(n.startswith("archive/") and n.endswith(".parquet") for n in files)
    assert "housekeeping/sizes.jsonl" in files
    assert modes["archive"] == 0o700 and modes["housekeeping"] == 0o700
    loose = {n: oct(m) for n, m in modes.items() if m & 0o077}
    assert loose == {}


def test_a_home_others_can_read_is_reported_once(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A home made before (database 0644, outbox 0755) gets one warning naming what is
    readable and how to fix it; a private home gets none."""
    from kamflow.core.settings import load_settings

    home = tmp_path / "old-home"
    (home / "outbox").mkdir(parents=True)
    (home / "archive").mkdir()
    (home / "kamflow.db").write_bytes(b"")
    (home / "kamflow.db").chmod(0o644)
    (home / "outbox").chmod(0o755)
    (home / "archive").chmod(0o755)  # archived tasks (kamflow housekeeping)
    umask = os.umask(0o022)
    try:
        with caplog.at_level("WARNING", logger="kamflow.core.settings"):
            load_settings({"KAMFLOW_HOME": str(home)})
            load_settings({"KAMFLOW_HOME": str(home)})
        assert os.umask(0o022) == 0o077  # the files made from now on are private
    finally:
        os.umask(umask)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "kamflow.db (0644)" in warnings[0] and "outbox (0755)" in warnings[0]
    assert "archive (0755)" in warnings[0]
    assert f"chmod -R go= {home.resolve()}" in warnings[0]
    caplog.clear()
    private = tmp_path / "new-home"
    umask = os.umask(0o022)
    try:
        with caplog.at_level("WARNING", logger="kamflow.core.settings"):
            load_settings({"KAMFLOW_HOME": str(private)})
    finally:
        os.umask(umask)
    assert caplog.records == [] and private.stat().st_mode & 0o777 == 0o700


def test_a_sqlite_store_made_outside_the_cli_is_private(tmp_path: Path) -> None:
    """TaskStore on a new SQLite file creates it 0600 whatever the umask."""
    from kamflow.worklist import TaskStore

    umask = os.umask(0o022)
    try:
        with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as store:
            store.list_tasks()
    finally:
        os.umask(umask)
    assert (tmp_path / "k.db").stat().st_mode & 0o777 == 0o600
