"""Operations commands: ``kamflow serve`` runs every deployment of prefect.yaml in one process."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

from kamflow.errors import ConfigError
from kamflow.settings import REPO_ROOT, configure_prefect_env

PREFECT_YAML = REPO_ROOT / "prefect.yaml"


def register(commands: Any, groups: dict[str, Any]) -> None:
    from kamflow.cli import common

    serve = commands.add_parser(
        "serve", help="serve the scheduled deployments of prefect.yaml from this process",
        description="Serve every deployment in prefect.yaml (the daily retention run and the "
                    "others) with its schedule, from this one process, against the Prefect "
                    "server in PREFECT_API_URL. Stop with Ctrl-C. For a real setup use "
                    "`prefect deploy --all` with a process work pool (README.md).")
    serve.add_argument("--list", action="store_true",
                       help="only list the deployments and their schedules")
    serve.set_defaults(handler=_serve)
    common(serve)


def deployment_specs(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The deployments in prefect.yaml, anchors resolved."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    specs = doc.get("deployments") or []
    for spec in specs:
        if not spec.get("name") or ":" not in str(spec.get("entrypoint", "")):
            raise ConfigError(f"{path}: every deployment needs a name and an entrypoint "
                              f"'file.py:flow', not {spec!r}")
    return specs


def build_deployments(specs: list[dict[str, Any]]) -> list[Any]:
    """Prefect runner deployments for ``flow.serve``-style serving, schedules from the YAML."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron

    deployments = []
    for spec in specs:
        file, name = spec["entrypoint"].split(":")
        flow = load_flow_from_entrypoint(f"{REPO_ROOT / file}:{name}",
                                         use_placeholder_flow=False)
        schedules = [Cron(s["cron"], timezone=s.get("timezone")) for s in
                     spec.get("schedules") or [] if "cron" in s]
        deployments.append(flow.to_deployment(
            name=spec["name"], schedules=schedules, parameters=spec.get("parameters") or {},
            description=spec.get("description")))
    return deployments


def _serve(args: argparse.Namespace) -> int:
    specs = deployment_specs()
    for spec in specs:
        crons = ", ".join(f"{s['cron']} ({s.get('timezone', 'UTC')})"
                          for s in spec.get("schedules") or [])
        print(f"{spec['name']:<20} {spec['entrypoint']:<40} {crons or 'no schedule'}")
    if args.list:
        return 0
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("kamflow serve needs a running Prefect server: start one with "
                          "`prefect server start` and set PREFECT_API_URL "
                          "(e.g. http://127.0.0.1:4200/api)")
    configure_prefect_env()
    from prefect import serve

    serve(*build_deployments(specs))
    return 0
