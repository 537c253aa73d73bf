"""`prefect deploy` of the shipped conf/prefect.yaml: module entrypoints, no checkout needed.

The real setup of the README: a process work pool, `prefect deploy --all --prefect-file ...`
and `prefect worker start`, all run from a folder outside the repository, so the worker can
only find the flows in the installed kamflow package.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from kamflow.core.settings import DEFAULT_CONF_DIR
from tests.conftest import start_prefect_server

pytestmark = pytest.mark.slow

PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture
def own_prefect_api(tmp_path_factory):
    """A Prefect server of this test's own: its deployments replace nobody else's."""
    yield from start_prefect_server(tmp_path_factory.mktemp("prefect-deploy-server"))


def test_prefect_deploy_and_a_worker_run_the_packaged_flows(own_prefect_api, tmp_path):
    """Every deployment of conf/prefect.yaml registers with `prefect deploy`, and a process
    worker started outside the checkout runs one of them to Completed."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    shutil.copy(DEFAULT_CONF_DIR / "prefect.yaml", workdir / "prefect.yaml")
    env = {**os.environ, "PREFECT_API_URL": own_prefect_api,
           "KAMFLOW_HOME": str(tmp_path / "home"),
           "KAMFLOW_OPS_EMAIL": "ops-deploy@operator.example", "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    env.pop("PREFECT_HOME", None)

    def prefect(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PREFECT, "--no-prompt", *args], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=300)

    created = prefect("work-pool", "create", "kamflow", "--type", "process", "--overwrite")
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = prefect("deploy", "--all", "--prefect-file", "prefect.yaml")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    for name in ("retention-daily", "sla-watch-hourly", "digest-daily", "weekly-report",
                 "ops-alert"):
        assert name in deployed.stdout

    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "kamflow"], cwd=workdir,
                              env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        started = prefect("deployment", "run", "ops_alert/ops-alert",
                          "--param", "flow_run_id=deploy-check", "--param", "state=Failed")
        assert started.returncode == 0, started.stdout + started.stderr
        outbox = tmp_path / "home" / "outbox" / "alert-deploy-check.eml"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not outbox.exists():
            time.sleep(1)
        assert outbox.exists(), (tmp_path / "worker.log").read_text()[-3000:]
        assert "ops-deploy@operator.example" in outbox.read_text(encoding="utf-8")
        with temporary_settings({PREFECT_API_URL: own_prefect_api}):
            with get_client(sync_client=True) as client:
                deployment = client.read_deployment_by_name("ops_alert/ops-alert")
                assert deployment.entrypoint == "kamflow.flows.alerts.ops_alert"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
