"""Operations commands: ``kamflow serve`` runs every deployment of prefect.yaml in one process,
``kamflow setup`` creates the automation that alerts ops when a run fails."""

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from kamflow.cli.app import Verbose, app, command, settings
from kamflow.core.errors import ConfigError
from kamflow.core.settings import DEFAULT_CONF_DIR, configure_prefect_env

# Shipped as package data beside the other defaults, so an installed kamflow can serve it too.
PREFECT_YAML = DEFAULT_CONF_DIR / "prefect.yaml"


def deployment_specs(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The deployments in prefect.yaml, anchors resolved."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    specs = doc.get("deployments") or []
    for spec in specs:
        if not spec.get("name") or "." not in str(spec.get("entrypoint", "")):
            raise ConfigError(f"{path}: every deployment needs a name and an entrypoint "
                              f"'package.module.flow', not {spec!r}")
    return specs


def build_deployments(specs: list[dict[str, Any]]) -> list[Any]:
    """Prefect runner deployments for ``flow.serve``-style serving, schedules from the YAML."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron

    deployments = []
    for spec in specs:
        flow: Any = load_flow_from_entrypoint(spec["entrypoint"], use_placeholder_flow=False)
        schedules = [Cron(s["cron"], timezone=s.get("timezone")) for s in
                     spec.get("schedules") or [] if "cron" in s]
        deployments.append(flow.to_deployment(
            name=spec["name"], schedules=schedules, parameters=spec.get("parameters") or {},
            description=spec.get("description")))
    return deployments


@command(app, "serve", help="serve the scheduled deployments of prefect.yaml from this process",
         description="Serve every deployment in prefect.yaml (the daily retention run and the "
                     "others) with its schedule, from this one process, against the Prefect "
                     "server in PREFECT_API_URL. Stop with Ctrl-C. For a real setup use "
                     "`prefect deploy --all` with a process work pool (README.md).")
def serve(list_: Annotated[bool, typer.Option(
              "--list", help="only list the deployments and their schedules")] = False,
          verbose: Verbose = False) -> int:
    specs = deployment_specs()
    for spec in specs:
        crons = ", ".join(f"{s['cron']} ({s.get('timezone', 'UTC')})"
                          for s in spec.get("schedules") or [])
        print(f"{spec['name']:<20} {spec['entrypoint']:<40} {crons or 'no schedule'}")
    if list_:
        return 0
    home = settings()
    if not home.prefect_api_url:
        raise ConfigError("kamflow serve needs a running Prefect server: start one with "
                          "`prefect server start` and set PREFECT_API_URL "
                          "(e.g. http://127.0.0.1:4200/api)")
    configure_prefect_env(home)
    from prefect import serve as serve_all

    serve_all(*build_deployments(specs))
    return 0


AUTOMATION_NAME = "kamflow: email ops when a run fails or crashes"
WATCHED_FLOWS = ("retention_run", "sla_watch", "daily_digest", "weekly_report")


@command(app, "setup", help="create the Prefect automation that alerts ops when a run fails",
         description="Create (or update: it is idempotent) the Prefect automation that starts "
                     "the ops-alert deployment, which emails KAMFLOW_OPS_EMAIL, whenever a "
                     "kamflow flow run fails or crashes. Needs PREFECT_API_URL and the "
                     "deployments registered (kamflow serve or prefect deploy).")
def setup(ui_url: Annotated[str | None, typer.Option(
              help="Prefect UI address put in alert emails (default: from the API URL)")] = None,
          verbose: Verbose = False) -> int:
    home = settings()
    api = home.prefect_api_url
    if not api:
        raise ConfigError("kamflow setup needs PREFECT_API_URL (the Prefect server to configure)")
    configure_prefect_env(home)
    automation = ensure_failure_automation(ui_url or api.rstrip("/").removesuffix("/api"))
    print(f"automation {automation.name!r} ({automation.id}) is in place: failed or crashed "
          f"runs of {', '.join(WATCHED_FLOWS)} start ops_alert/ops-alert")
    return 0


def ensure_failure_automation(ui_url: str) -> Any:
    """Create the alert automation, replacing an older one of the same name (idempotent)."""
    from prefect.automations import (
        Automation,
        EventTrigger,
        Posture,
        ResourceSpecification,
        RunDeployment,
    )
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name("ops_alert/ops-alert")
        except ObjectNotFound:
            raise ConfigError("the ops_alert/ops-alert deployment is not registered: start "
                              "`kamflow serve` (or `prefect deploy --all`) first") from None
        for old in client.read_automations_by_name(AUTOMATION_NAME):
            client.delete_automation(old.id)
    automation = Automation(
        name=AUTOMATION_NAME,
        description="Emails the ops address (KAMFLOW_OPS_EMAIL) through kamflow's email "
                    "backend when a kamflow flow run fails or crashes.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match_related=ResourceSpecification({"prefect.resource.role": "flow",
                                                 "prefect.resource.name": list(WATCHED_FLOWS)}),
            posture=Posture.Reactive, threshold=1),
        actions=[RunDeployment(  # type: ignore[call-arg]  # job_variables is optional
            source="selected", deployment_id=deployment.id,
            # Single-expression templates are JSON-encoded by Prefect: UUIDs must become text.
            parameters={"flow_run_id": "{{ flow_run.id | string }}",
                        "flow_name": "{{ flow.name | string }}",
                        "state": "{{ flow_run.state.name | string }}",
                        "message": "{{ (flow_run.state.message or '') | string }}",
                        "ui_url": ui_url})])
    return automation.create()
