"""Deployments: prefect.yaml loads, `kamflow serve` schedules and runs them on a real server,
and the Prefect UI shows a run's artifacts in headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL, temporary_settings

from kamflow.cli.ops import deployment_specs
from tests.conftest import AS_OF

SPECS = deployment_specs()


@pytest.mark.parametrize("spec", SPECS, ids=[s["name"] for s in SPECS])
def test_every_prefect_yaml_entrypoint_loads(spec):
    """Each deployment's entrypoint names a real flow (no placeholder)."""
    name = spec["entrypoint"].rsplit(".", 1)[1]
    flow = load_flow_from_entrypoint(spec["entrypoint"], use_placeholder_flow=False)
    assert flow.fn.__name__ == name


def test_daily_run_is_at_six_in_shanghai():
    """The daily retention deployment runs at 06:00 Asia/Shanghai."""
    daily = next(s for s in SPECS if s["entrypoint"].endswith(".retention_run"))
    assert daily["schedules"] == [{"cron": "0 6 * * *", "timezone": "Asia/Shanghai"}]


def test_weekly_report_is_monday_eight_in_shanghai():
    """The department head's weekly email goes out on Monday at 08:00 Asia/Shanghai."""
    weekly = next(s for s in SPECS if s["entrypoint"].endswith(".weekly_report"))
    assert weekly["name"] == "weekly-report"
    assert weekly["schedules"] == [{"cron": "0 8 * * 1", "timezone": "Asia/Shanghai"}]


@pytest.fixture
def served(prefect_api, snapshot_dir, tmp_path):
    """`kamflow serve` in a subprocess against the session's Prefect server."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "KAMFLOW_HOME": str(tmp_path / "home"),
           "KAMFLOW_SOURCE": str(snapshot_dir), "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "KAMFLOW_OPS_EMAIL": "ops-test@operator.example"}
    env.pop("PREFECT_HOME", None)
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "kamflow.cli", "serve"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield process, tmp_path / "serve.log"
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


def wait_for(predicate, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; serve log:\n{log.read_text()[-3000:]}")


def test_served_deployment_is_scheduled_and_runs(served, prefect_api, tmp_path):
    """The daily deployment gets scheduled runs (guards the SQLAlchemy pin), a manual run
    completes with its artifacts, and the UI page of that run shows them."""
    process, log = served
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        with get_client(sync_client=True) as client:
            def scheduled():
                return client.read_flow_runs(
                    deployment_filter=DeploymentFilter(
                        name=DeploymentFilterName(any_=["retention-daily"])),
                    flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))
            runs = wait_for(scheduled, 90, "scheduled runs of retention-daily", log)
            assert all(r.expected_start_time.astimezone().tzinfo for r in runs)
            for _ in range(2):  # a second run: the trend has two points
                flow_run = run_deployment("retention_run/retention-daily",
                                          parameters={"as_of": AS_OF.isoformat()}, timeout=240)
                assert flow_run.state.is_completed(), (flow_run.state, log.read_text()[-3000:])
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
    by_key = {a.key: a for a in artifacts}
    assert {"retention-summary", "retention-actions", "value-class-by-churn-band",
            "owner-kpis", "churn-trend", "department"} <= set(by_key)
    ui = prefect_api.removesuffix("/api")
    run_page = ui_dom(f"{ui}/runs/flow-run/{flow_run.id}", tmp_path / "run-page.png")
    assert flow_run.name in run_page and "Completed" in run_page
    summary_page = ui_dom(f"{ui}/artifacts/artifact/{by_key['retention-summary'].id}",
                          tmp_path / "summary.png")
    assert "accounts quarantined" in summary_page and "tasks created" in summary_page
    kpi_page = ui_dom(f"{ui}/artifacts/artifact/{by_key['owner-kpis'].id}", tmp_path / "kpis.png")
    assert "overdue" in kpi_page and "done on time" in kpi_page and "accounts lost" in kpi_page
    # the department artifact: the trend charts (PNG data URIs) beside the breakdown tables
    shown = ui_images(f"{ui}/artifacts/artifact/{by_key['department'].id}",
                      SCREENSHOTS / "prefect-department-artifact.png")
    assert shown["images"] == [[True, 640, 260], [True, 640, 260]], shown
    for text in ("Churn rate against the ceiling, last 2 runs", "By region, trailing 12 months",
                 "By manager, trailing 12 months", "median h to ack"):
        assert text in shown["text"], text
    assert shown["tables"] >= 4


SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


def ui_images(url: str, screenshot: Path) -> dict:
    """A Prefect UI page in headless Chromium (DevTools): once its images have arrived, each
    image's (complete, naturalWidth, naturalHeight), the page's text and its table count; a
    screenshot kept in tests/screenshots for a person to look at."""
    import base64

    from tests.test_links_web import Browser

    browser = Browser()
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=2400,
                     deviceScaleFactor=1, mobile=False)
        browser.call("Page.navigate", url=url)
        browser.wait_for_load()
        probe = ("({images: [...document.images].filter(i => i.src.startsWith('data:image/png'))"
                 ".map(i => [i.complete, i.naturalWidth, i.naturalHeight]),"
                 " text: document.body.innerText, tables: document.querySelectorAll('table')"
                 ".length})")
        deadline = time.monotonic() + 60  # the single-page app fetches, then renders
        shown = browser.evaluate(probe)
        while (len(shown["images"]) < 2 or not all(i[0] and i[1] for i in shown["images"])) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
            shown = browser.evaluate(probe)
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    finally:
        browser.close()
    screenshot.parent.mkdir(exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return shown


def ui_dom(url: str, screenshot: Path) -> str:
    """The page as headless Chromium renders it (the Prefect UI is a single-page app), and a
    screenshot of it kept beside the test's files for a person to look at."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for the UI check (.ci/run installs it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=15000", "--window-size=1400,900",
             "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
    outputs = []
    for action in ("--dump-dom", f"--screenshot={screenshot}"):
        profile = tempfile.mkdtemp(prefix="kamflow-chromium-")
        result = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", action, url],
                                capture_output=True, text=True, timeout=120)
        shutil.rmtree(profile, ignore_errors=True)
        outputs.append(result.stdout)
    assert screenshot.stat().st_size > 10_000, "the screenshot is (almost) empty"
    return outputs[0]


def test_failed_run_alerts_ops_by_email(served, prefect_api, tmp_path):
    """`kamflow setup` (run twice: idempotent) makes a failed run email the ops address."""
    process, log = served
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "KAMFLOW_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_HOME", None)
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        with get_client(sync_client=True) as client:
            wait_for(lambda: _has_deployment(client, "ops_alert/ops-alert"), 90,
                     "the ops-alert deployment", log)
            for _ in range(2):
                setup = subprocess.run([sys.executable, "-m", "kamflow.cli", "setup"], env=env,
                                       capture_output=True, text=True, timeout=120)
                assert setup.returncode == 0, setup.stderr
            assert len(client.read_automations_by_name(
                "kamflow: email ops when a run fails or crashes")) == 1
            failed = run_deployment("retention_run/retention-daily",
                                    parameters={"source": str(tmp_path / "no-such-snapshot")},
                                    timeout=240)
            assert failed.state.is_failed()
    outbox = tmp_path / "home" / "outbox"
    alerts = wait_for(lambda: list(outbox.glob("*.eml")) if outbox.exists() else [], 120,
                      "the alert email", log)
    text = alerts[0].read_text(errors="replace")
    assert "To: ops-test@operator.example" in text and str(failed.id) in text


def _has_deployment(client, name: str) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_deployment_by_name(name)
    except ObjectNotFound:
        return False
    return True


def test_prefect_server_on_postgresql_runs_the_flow(tmp_path, snapshot_dir, monkeypatch):
    """A Prefect server whose own database is PostgreSQL runs the retention flow to completion."""
    from kamflow.flows.retention import retention_run
    from tests.conftest import start_prefect_server
    from tests.postgres import temporary_database

    monkeypatch.setenv("KAMFLOW_HOME", str(tmp_path / "home"))
    with temporary_database() as url:
        (tmp_path / "server").mkdir()
        server = start_prefect_server(tmp_path / "server",
                                      url.replace("postgresql+psycopg", "postgresql+asyncpg"))
        api = next(server)
        try:
            with temporary_settings({PREFECT_API_URL: api}):
                state = retention_run(source=str(snapshot_dir), as_of=AS_OF.isoformat(),
                                      return_state=True)
                with get_client(sync_client=True) as client:
                    stored = client.read_flow_run(state.state_details.flow_run_id)
        finally:
            next(server, None)
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.connect() as conn:  # the run really lives in PostgreSQL
            runs = conn.execute(text("SELECT count(*) FROM flow_run")).scalar()
        engine.dispose()
    assert runs >= 1
    assert state.is_completed(), state.message
    assert stored.state.is_completed() and stored.flow_id
