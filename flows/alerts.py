"""``ops_alert``: email the operations address about a failed or crashed kamflow run.

Started by the Prefect automation that ``kamflow setup`` creates, so an alert goes out even when
the failed run's own process has died. The email goes through the configured backend (file
outbox by default); its key is the failed run's id, so a repeated trigger rewrites, not adds.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from kamflow import notifications
from kamflow.core.settings import Settings, load_settings

DEFAULT_OPS_EMAIL = "ops@operator.example"


def ops_address(settings: Settings) -> str:
    return settings.ops_email or DEFAULT_OPS_EMAIL


@flow(name="ops_alert")
def ops_alert(flow_run_id: str, flow_name: str = "", state: str = "", message: str = "",
              ui_url: str = "") -> str:
    """Send one alert email about the given flow run to $KAMFLOW_OPS_EMAIL."""
    home = settings = load_settings()  # here: a Prefect worker runs this function itself
    link = f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui_url else flow_run_id
    subject = f"[kamflow] {flow_name or 'flow'} run {state or 'failed'}: {flow_run_id}"
    text = (f"The kamflow {flow_name or ''} run {flow_run_id} ended {state or 'failed'}.\n\n"
            f"Message: {message or '(none)'}\n\nRun: {link}\n\n"
            "No task or email is lost by a failed run: fix the cause and run it again; the next "
            "run sends what is still in the outbox.\n")
    email = notifications.Email(key=f"alert-{flow_run_id}",
                                sender=notifications.sender_from_env(settings),
                                to=ops_address(settings), subject=subject, text=text,
                                categories=("kamflow", "ops-alert"),
                                custom_args={"flow_run_id": flow_run_id})
    backend = notifications.backend_from_env(home.outbox, settings)
    provider_id = backend.send(email)
    get_run_logger().info("alerted %s about run %s (%s) via %s", email.to, flow_run_id, state,
                          backend.name)
    return provider_id
