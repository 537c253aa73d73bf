"""``retention_run``: the daily job. intake → validate → score → decide → dispatch → send.

One Prefect task per stage (never one per account: Prefect tasks cost milliseconds each). Only the
edge tasks do I/O: intake reads files, dispatch writes the task store, send drains the outbox.
A batch that fails validation ends the run as Failed before any task or email exists.
"""

from __future__ import annotations

from kamflow.settings import configure_prefect_env

configure_prefect_env()  # before prefect is imported: telemetry off, PREFECT_HOME in KAMFLOW_HOME

import datetime as dt  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pandas as pd  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.states import Completed, Failed, State  # noqa: E402

import notifications  # noqa: E402
from expectations import ValidationOutcome, validate_snapshot  # noqa: E402
from flows.picture import value_churn_svg  # noqa: E402
from flows.report import RunSummary, action_table, class_band_table, counts, markdown  # noqa: E402
from intake import Snapshot, build_customer_view, read_snapshot  # noqa: E402
from kamflow import config  # noqa: E402
from kamflow.errors import KamflowError  # noqa: E402
from kamflow.settings import Paths, paths  # noqa: E402
from rules import RuleSet, decide, load_ruleset  # noqa: E402
from scoring import CHURN_BANDS, VALUE_CLASSES, ScoringConfig, score_accounts  # noqa: E402
from worklist import OwnerDirectory, RaiseResult, TaskStore, plan_tasks  # noqa: E402

STAGE = {"cache_policy": NO_CACHE, "persist_result": False}


def _returning_input_errors(fn: Any) -> Any:
    """Bad input is an expected outcome, not a crash: hand the error back to the flow as a value
    so the run fails with the message alone (no traceback in the logs)."""
    @functools.wraps(fn)
    def stage(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KamflowError as exc:
            get_run_logger().error("%s", exc)
            return exc
    return stage


@task(name="intake", **STAGE)
@_returning_input_errors
def intake_stage(source: str) -> Snapshot:
    snapshot = read_snapshot(source)
    logger = get_run_logger()
    logger.info("intake: read %s", ", ".join(f"{k} {v:,} rows" for k, v in snapshot.rows().items()))
    for note in snapshot.notes:
        logger.warning("intake: %s", note)
    return snapshot


@task(name="validate", **STAGE)
@_returning_input_errors
def validate_stage(snapshot: Snapshot, pipeline: config.PipelineConfig) -> ValidationOutcome:
    outcome = validate_snapshot(snapshot.tables, snapshot.problems, pipeline.validation)
    logger = get_run_logger()
    for result in outcome.results:
        if not result.success and result.severity == "warning":
            logger.warning("validation warning: %s", result.describe())
    (logger.error if outcome.stopped else logger.info)("validate: %s", outcome.message)
    return outcome


@task(name="score", **STAGE)
def score_stage(tables: dict[str, pd.DataFrame], as_of: dt.date,
                scoring: ScoringConfig) -> pd.DataFrame:
    view = build_customer_view(tables, as_of)
    scored = score_accounts(view, scoring)
    get_run_logger().info("score: %d accounts; value classes %s; churn bands %s", len(scored),
                          counts(scored["value_class"], VALUE_CLASSES),
                          counts(scored["churn_band"], CHURN_BANDS))
    return scored


@task(name="decide", **STAGE)
def decide_stage(scored: pd.DataFrame, ruleset: RuleSet) -> pd.DataFrame:
    decisions = decide(scored, ruleset)
    get_run_logger().info("decide: %d decisions from rule set %s (%d rules)", len(decisions),
                          ruleset.version, len(ruleset.rules))
    return decisions


@task(name="dispatch", **STAGE)
def dispatch_stage(decisions: pd.DataFrame, ruleset: RuleSet, owners: OwnerDirectory,
                   store: TaskStore, run_id: str, now: dt.datetime) -> RaiseResult:
    titles = {name: spec.title_en for name, spec in ruleset.actions.items()}
    planned = plan_tasks(decisions, owners, titles, now)

    def render(owner_name: str, owner_email: str, tasks: list[dict[str, Any]]) -> tuple[str, ...]:
        language = owners.language_of(owner_email)
        if language == "zh-CN":
            zh = {name: spec.title_zh for name, spec in ruleset.actions.items()}
            tasks = [{**t, "action_title": zh.get(t["action"], t["action_title"])} for t in tasks]
        return notifications.render_task_digest(owner_name, tasks, language)

    result = store.raise_tasks(planned, run_id, render, now)
    get_run_logger().info("dispatch: %d new tasks, %d already open, %d in cooldown, %d emails "
                          "queued", result.created, result.skipped_open, result.skipped_cooldown,
                          result.emails)
    return result


@task(name="send", **STAGE)
def send_stage(store: TaskStore, backend: notifications.EmailBackend, sender: str) -> tuple[int, int]:
    """Drain the outbox: every unsent email, this run's and any a crash left behind."""
    logger = get_run_logger()
    sent = failed = 0
    for row in store.unsent_emails():
        email = notifications.Email(
            key=row.key, sender=sender, to=row.recipient, subject=row.subject,
            text=row.body_text, html=row.body_html, categories=("kamflow", "retention-tasks"),
            custom_args={"task_ids": row.task_ids[:900], "run_id": row.run_id})
        try:
            provider_id = backend.send(email)
        except notifications.SendError as exc:
            failed += 1
            store.mark_failed(row.id, str(exc))
            logger.warning("send: email %s to %s failed (%s); it stays in the outbox", row.key,
                           row.recipient, exc)
            continue
        store.mark_sent(row.id, backend.name, provider_id, dt.datetime.now(dt.UTC))
        sent += 1
    logger.info("send: %d email(s) sent via %s, %d failed", sent, backend.name, failed)
    return sent, failed


@flow(name="retention_run", log_prints=False)
def retention_run(source: str | None = None, as_of: str | None = None,
                  rules_dir: str | None = None) -> State:
    """Validate, score and decide on one snapshot, then raise tasks and email their owners.

    ``source`` defaults to $KAMFLOW_SOURCE (the scheduled deployment's snapshot directory).
    """
    run_id = str(flow_run.id or uuid.uuid4())
    source = source or os.environ.get("KAMFLOW_SOURCE", "")
    if not source:
        message = "no snapshot directory: pass source or set KAMFLOW_SOURCE"
        get_run_logger().error(message)
        return Failed(message=message)
    snapshot_date = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    summary = RunSummary(run_id=run_id, source=str(source), as_of=snapshot_date.isoformat())
    try:
        return _retention(summary, source, snapshot_date, rules_dir)
    except KamflowError as exc:  # bad configuration or input: fail with the message alone
        get_run_logger().error("%s", exc)
        summary.status = "rejected input"
        summary.message = str(exc)
        return Failed(message=str(exc), data=summary.as_dict())


def _retention(summary: RunSummary, source: str, snapshot_date: dt.date,
               rules_dir: str | None) -> State:
    logger = get_run_logger()
    home = paths()
    run_id = summary.run_id
    timer = _Timer(summary)

    pipeline = config.load_pipeline()
    scoring = config.load_scoring()
    owners = config.load_owners()
    ruleset = load_ruleset(rules_dir) if rules_dir else load_ruleset()
    summary.ruleset_version = ruleset.version

    with timer("intake"):
        snapshot = intake_stage(source)
    if isinstance(snapshot, KamflowError):
        raise snapshot
    with timer("validate"):
        outcome = validate_stage(snapshot, pipeline)
    if isinstance(outcome, KamflowError):
        raise outcome
    _write_validation(home, run_id, outcome, summary)
    if outcome.stopped:
        summary.status = "stopped by validation"
        summary.message = outcome.message
        _publish(summary, [])
        return Failed(message=outcome.message, data=summary.as_dict())

    with timer("score"):
        scored = score_stage(outcome.accepted, snapshot_date, scoring)
    summary.value_classes = counts(scored["value_class"], VALUE_CLASSES)
    summary.churn_bands = counts(scored["churn_band"], CHURN_BANDS)
    _publish_picture(home, run_id, scored, summary)
    with timer("decide"):
        decisions = decide_stage(scored, ruleset)
    summary.decisions = len(decisions)
    summary.decisions_by_action = counts(decisions["action"]) if len(decisions) else {}

    store = TaskStore(home.database_url)
    try:
        with timer("dispatch"):
            raised = dispatch_stage(decisions, ruleset, owners, store, run_id,
                                    dt.datetime.now(dt.UTC))
        summary.tasks_created, summary.emails_queued = raised.created, raised.emails
        summary.tasks_already_open = raised.skipped_open
        summary.tasks_in_cooldown = raised.skipped_cooldown
        backend = notifications.backend_from_env(home.outbox)
        summary.email_backend = backend.name
        with timer("send"):
            summary.emails_sent, summary.emails_failed = send_stage(
                store, backend, notifications.sender_from_env())
    finally:
        store.dispose()

    _publish(summary, action_table(decisions, raised.created_by_action))
    _publish_kpis(home)
    logger.info("retention run finished: %d accounts, %d quarantined, %d decisions, %d new tasks, "
                "%d emails sent", summary.accounts_in, summary.accounts_quarantined,
                summary.decisions, summary.tasks_created, summary.emails_sent)
    if summary.emails_failed:
        summary.status = "emails pending"
        message = (f"{summary.emails_failed} email(s) could not be sent; they stay in the outbox "
                   "and the next run sends them")
        return Failed(message=message, data=summary.as_dict())
    return Completed(message="retention run completed", data=summary.as_dict())


class _Timer:
    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary

    def __call__(self, stage: str) -> _Timer:
        self.stage = stage
        return self

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.summary.seconds[self.stage] = round(time.perf_counter() - self.started, 3)


def _write_validation(home: Paths, run_id: str, outcome: ValidationOutcome,
                      summary: RunSummary) -> None:
    """Quarantined rows and the validation results, kept for every run."""
    summary.accounts_in = outcome.accounts_in
    summary.accounts_quarantined = outcome.accounts_quarantined
    summary.quarantine_rows = len(outcome.quarantine)
    report_dir = home.reports / run_id
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "validation.json"
    report.write_text(json.dumps({
        "stopped": outcome.stopped, "message": outcome.message,
        "results": [r.__dict__ for r in outcome.results]}, ensure_ascii=False, indent=2,
        default=str), encoding="utf-8")
    summary.validation_report = str(report)
    if len(outcome.quarantine):
        quarantine_dir = home.quarantine / run_id
        quarantine_dir.mkdir(parents=True, exist_ok=True)
        target = quarantine_dir / "quarantine.csv"
        outcome.quarantine.to_csv(target, index=False, encoding="utf-8")
        summary.quarantine_file = str(target)


def _publish_picture(home: Paths, run_id: str, scored: pd.DataFrame,
                     summary: RunSummary) -> None:
    """The value class × churn band heat map as an SVG file, and the same counts as a table."""
    target = home.reports / run_id / "value-churn.svg"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(value_churn_svg(scored, f"Accounts by value class and churn band, "
                                               f"{summary.as_of}"), encoding="utf-8")
    summary.value_churn_picture = str(target)
    create_table_artifact(class_band_table(scored), key="value-class-by-churn-band",
                          description=f"Accounts per value class and churn band; picture: "
                                      f"{target}")


def _publish_kpis(home: Paths) -> None:
    """Per-owner KPIs from the task store: open, overdue, handled on time or late."""
    store = TaskStore(home.database_url)
    try:
        kpis = store.owner_kpis(dt.datetime.now(dt.UTC))
    finally:
        store.dispose()
    if kpis:
        create_table_artifact(kpis, key="owner-kpis",
                              description="Per account manager and queue: open, overdue, "
                                          "handled on time and late")


def _publish(summary: RunSummary, actions: list[dict[str, Any]]) -> None:
    create_markdown_artifact(markdown(summary), key="retention-summary",
                             description="kamflow retention run summary")
    if actions:
        create_table_artifact(actions, key="retention-actions",
                              description="Actions decided, by rule and owner")
