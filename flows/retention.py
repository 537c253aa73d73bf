"""``retention_run``: the daily job. intake → validate → score → decide → dispatch → send.

Given a labelled history, a ``learn`` stage first learns churn risk from it (scoring.learn): the
scoring then uses the learnt factor weights or model, and the summary records what and how well.

Read → validate → score → decide is the plan (flows/plan.py), the same for every entry point: its
steps run here as this run's Prefect stage tasks (``_RunStages``).
One Prefect task per stage (never one per account: Prefect tasks cost milliseconds each). Only the
edge tasks do I/O: intake reads files, dispatch writes the task store, send drains the outbox.
A batch that fails validation ends the run as Failed before any task or email exists.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pandas as pd
from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from kamflow import (
    config,
    notifications,
)
from kamflow.core.errors import InputError, KamflowError
from kamflow.core.links import LinkSigner
from kamflow.core.settings import Settings, load_settings
from kamflow.expectations import ValidationOutcome, ValidationPolicy, write_validation_files
from kamflow.flows import delivery, plan
from kamflow.flows.charts import data_uri, trend_charts
from kamflow.flows.effects import learnt_beliefs, publish_effects, read_effects
from kamflow.flows.history import HistorySource, read_labelled_history
from kamflow.flows.housekeeping import watch_space
from kamflow.flows.picture import value_churn_svg
from kamflow.flows.report import (
    RunSummary,
    action_table,
    capacity_rows,
    class_band_table,
    class_shares,
    counts,
    department_markdown,
    markdown,
    run_headline,
    trend_table,
    value_at_risk_summary,
    value_at_risk_table,
)
from kamflow.intake import Snapshot, SnapshotMapping, load_mapping
from kamflow.rules import RULES_DIR, RuleSet, wording
from kamflow.scoring import (
    CHURN_BANDS,
    VALUE_CLASSES,
    Population,
    ScoringConfig,
)
from kamflow.scoring.learn import LearntChurn, UnusableHistory, history_problem, learn_churn
from kamflow.scoring.model import ChurnModel
from kamflow.worklist import OwnerDirectory, RaiseResult, RosterChange, TaskStore
from kamflow.worklist.calendar import CalendarGap
from kamflow.worklist.locks import lock_owner, run_lock
from kamflow.worklist.measures import department_report, headline
from kamflow.worklist.roster import IdDrift

STAGE: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
P = ParamSpec("P")
R = TypeVar("R")


def _returning_input_errors(fn: Callable[P, R]) -> Callable[P, R | KamflowError]:
    """Bad input is an expected outcome, not a crash: hand the error back to the flow as a value
    so the run fails with the message alone (no traceback in the logs)."""
    @functools.wraps(fn)
    def stage(*args: P.args, **kwargs: P.kwargs) -> R | KamflowError:
        try:
            return fn(*args, **kwargs)
        except KamflowError as exc:
            get_run_logger().error("%s", exc)
            return exc
    return stage


@task(name="intake", **STAGE)
@_returning_input_errors
def intake_stage(step: Callable[..., Snapshot], source: str, as_of: dt.date,
                 mapping: SnapshotMapping | None) -> Snapshot:
    snapshot = step(source, as_of, mapping)
    logger = get_run_logger()
    logger.info("intake: read %s", ", ".join(f"{k} {v:,} rows" for k, v in snapshot.rows().items()))
    for note in snapshot.notes:
        logger.warning("intake: %s", note)
    return snapshot


@task(name="validate", **STAGE)
@_returning_input_errors
def validate_stage(step: Callable[..., ValidationOutcome], snapshot: Snapshot, as_of: dt.date,
                   policy: ValidationPolicy) -> ValidationOutcome:
    outcome = step(snapshot, as_of, policy)
    logger = get_run_logger()
    for result in outcome.results:
        if not result.success and result.severity == "warning":
            logger.warning("validation warning: %s", result.describe())
    (logger.error if outcome.stopped else logger.info)("validate: %s", outcome.message)
    return outcome


@task(name="learn", **STAGE)
@_returning_input_errors
def learn_stage(history: HistorySource, mapping: str | None, pipeline: config.PipelineConfig,
                scoring: ScoringConfig, as_of: dt.date) -> LearntChurn:
    """Learn churn risk from the labelled history (``churn.learn``), measured on a held-out
    part of it. The history is read and validated as a daily snapshot is, through the same
    mapping."""
    labelled = read_labelled_history(history, load_mapping(mapping) if mapping else None,
                                     pipeline.validation, as_of, history_problem)
    logger = get_run_logger()
    logger.info("learn: history %s: %s accepted accounts, %s with a known outcome in %s "
                "(%s churned)", history.source, f"{labelled.accounts_in_snapshot:,}",
                f"{len(labelled.churned):,}", labelled.labels, f"{labelled.churned.sum():,}")
    try:
        learnt = learn_churn(labelled.view, labelled.churned, scoring,
                             signals=labelled.signals)
    except UnusableHistory as exc:
        raise InputError(str(exc), file=str(labelled.labels),
                         field=labelled.label_column) from None
    logger.info("learn: %s", learnt.describe())
    return learnt


@task(name="score", **STAGE)
def score_stage(step: Callable[..., pd.DataFrame], view: pd.DataFrame,
                conf: plan.PlanConfig) -> pd.DataFrame:
    scored = step(view, conf)
    get_run_logger().info("score: %d accounts; value classes %s; churn bands %s", len(scored),
                          counts(scored["value_class"], VALUE_CLASSES),
                          counts(scored["churn_band"], CHURN_BANDS))
    return scored


@task(name="decide", **STAGE)
def decide_stage(step: Callable[..., pd.DataFrame], scored: pd.DataFrame, as_of: dt.date,
                 conf: plan.PlanConfig) -> pd.DataFrame:
    decisions = step(scored, as_of, conf)
    ruleset = conf.ruleset
    assert ruleset is not None  # the run always decides
    get_run_logger().info("decide: %d decisions from rule set %s (%d rules)", len(decisions),
                          ruleset.version, len(ruleset.rules))
    return decisions


@task(name="score-and-decide-partition", **STAGE)
def partition_stage(view: pd.DataFrame, step: Callable[..., Any], as_of: dt.date,
                    conf: plan.PlanConfig, population: Population,
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One partition of a scaled-out run (flows/plan.py ``score_and_decide``)."""
    return step(view, as_of, conf, population)


class _RunStages(plan.Stages):
    """The plan's steps as this run's timed Prefect tasks (one per stage, never one per
    account); once validated, the results are kept and the store guarded before scoring."""

    TASKS: Mapping[str, Any] = {"intake": intake_stage, "validate": validate_stage,
                                "score": score_stage, "decide": decide_stage}

    def __init__(self, summary: RunSummary, timer: _Timer, settings: Settings,
                 pipeline: config.PipelineConfig) -> None:
        self.summary, self.timer, self.settings, self.pipeline = summary, timer, settings, pipeline
        self.roster_accounts: pd.DataFrame | None = None

    def run(self, name: str, step: Callable[..., R], *args: Any) -> R:
        with self.timer(name):
            result = self.TASKS[name](step, *args)
        if isinstance(result, KamflowError):
            raise result
        return result

    def map(self, name: str, step: Callable[..., R], chunks: Sequence[pd.DataFrame],
            *args: Any) -> list[R]:
        """Partitions scored and decided in parallel by the flow's task runner (a Dask
        cluster in a scaled-out deployment)."""
        logger = get_run_logger()
        with self.timer(name):
            futures = partition_stage.map(chunks, unmapped(step),
                                          *(unmapped(a) for a in args))
            parts: list[Any] = []  # (scored, decisions) per partition
            for done, future in enumerate(futures, start=1):
                parts.append(future.result())
                logger.info("partition %d of %d done (%d accounts)", done, len(chunks),
                            sum(len(p[0]) for p in parts))
        return parts

    def validated(self, found: plan.Plan) -> bool:
        summary, home = self.summary, self.settings
        _write_validation(home, summary.run_id, found.validation, summary)
        if found.stopped:
            summary.status = "stopped by validation"
            summary.message = found.validation.message
            _publish(summary, [])
            return False
        # Every account of the snapshot, accepted or quarantined, is still a customer: the
        # roster is brought up to date after scoring.
        self.roster_accounts = roster_columns(found.accounts)
        found.accounts = self.roster_accounts
        drift = id_drift_stage(self.roster_accounts, home.database_url,
                               self.pipeline.max_id_drift_share)
        if drift is not None:  # before any roster mark, task or email
            summary.status = "stopped: account ids changed format"
            summary.message = drift.message()
            _publish(summary, [])
            return False
        return True


def roster_columns(accounts: pd.DataFrame) -> pd.DataFrame:
    """What the account roster needs of a snapshot's accounts table (the rest can go)."""
    return accounts[[c for c in ("account_id", "account_manager", "manager_email", "region",
                                 "industry") if c in accounts]]


def with_scores(roster_accounts: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """The roster's accounts with each scored account's monthly bill and value class (the
    department's revenue churn and breakdowns; quarantined accounts have none)."""
    scores = scored.drop_duplicates("account_id", keep="last").set_index("account_id")
    ids = roster_accounts["account_id"]
    extra = {"value_at_risk": ids.map(scores["value_at_risk"])} \
        if "value_at_risk" in scores else {}  # the scored frame's CNY/month, when it has it
    return roster_accounts.assign(avg_monthly_billed=ids.map(scores["avg_monthly_billed"]),
                                  value_class=ids.map(scores["value_class"]), **extra)


@task(name="account roster", **STAGE)
def roster_stage(accounts: pd.DataFrame, database_url: str, now: dt.datetime) -> RosterChange:
    """Keep the account roster current: new accounts in, accounts gone from the snapshot marked
    lost (each manager's churn KPI), returning ones restored."""
    with TaskStore(database_url) as store:
        return store.record_accounts(accounts, now)


@task(name="id drift guard", **STAGE)
def id_drift_stage(accounts: pd.DataFrame, database_url: str,
                   max_share: float) -> IdDrift | None:
    """Stop before the roster and dispatch when the known accounts' ids vanished while about as
    many new ones appeared: the ids changed format, not the customers (worklist/roster.py)."""
    with TaskStore(database_url) as store:
        drift = store.check_id_drift(accounts, max_share)
    if drift is not None:
        get_run_logger().error("%s", drift.message())
    return drift


@task(name="dispatch", **STAGE)
def dispatch_stage(decisions: pd.DataFrame, ruleset: RuleSet, owners: OwnerDirectory,
                   store: TaskStore, run_id: str, now: dt.datetime,
                   settings: Settings) -> RaiseResult:
    # Plan (owners, business-time deadlines from conf/calendar.yaml), then tasks + history +
    # emails (with signed one-click links) in one transaction: flows/delivery.py.
    titles = wording(ruleset)  # action titles and rule descriptions, for the emails
    result = delivery.dispatch(decisions, titles, owners, store, run_id, now,
                               config.load_calendar(settings.conf_dir / "calendar.yaml"),
                               LinkSigner.from_settings(settings), settings.render_workers)
    get_run_logger().info("dispatch: %d new tasks, %d already open, %d in cooldown; %d released "
                          "to their owners (%d from the queue), %d queued for capacity, %d "
                          "withdrawn; %d held out (%d already held out this period); %d emails "
                          "queued", result.created, result.skipped_open,
                          result.skipped_cooldown, result.released, result.released_from_queue,
                          result.queued, result.withdrawn, result.held_out,
                          result.held_out_before, result.emails)
    return result


@task(name="send", **STAGE)
def send_stage(store: TaskStore, backend: notifications.EmailBackend, sender: str,
               dead_after: int = delivery.DEAD_LETTER_AFTER,
               ops_email: str | None = None) -> tuple[int, int, int]:
    """Drain the outbox: every unsent email, this run's and any a crash left behind (batched
    for SendGrid, each marked sent as soon as accepted: flows/delivery.py). Returns how many
    were sent, failed (retried next run) and became dead letters (never retried)."""
    drained = delivery.drain_outbox(store, backend, sender, dead_after=dead_after,
                                    ops_email=ops_email)
    get_run_logger().info("send: %d email(s) sent via %s, %d held by the sandbox, %d failed, "
                          "%d dead letter(s)", drained.sent, backend.name, drained.held,
                          drained.failed, drained.dead_lettered)
    return drained.sent, drained.failed, drained.dead_lettered


@flow(name="retention_run", log_prints=False)
def retention_run(source: str | None = None, as_of: str | None = None,
                  rules_dir: str | None = None, mapping: str | None = None,
                  partitions: int = 1, history: HistorySource | None = None) -> State:
    """Validate, score and decide on one snapshot, then raise tasks and email their owners.

    ``source`` defaults to $KAMFLOW_SOURCE (the scheduled deployment's snapshot directory).
    ``partitions`` > 1 scores and decides the accounts in that many parallel pieces (run the
    flow with a Dask task runner to spread them over a cluster: flows/scaleout.py).
    ``history``, a past snapshot with the known outcome of its accounts, makes churn risk
    learnt from it (``churn.learn`` in conf/scoring.yaml) instead of the configured weights.
    """
    run_id = str(flow_run.id or uuid.uuid4())
    try:  # built here, not by the caller: a Prefect worker runs this function itself
        settings = load_settings()
    except KamflowError as exc:
        get_run_logger().error("%s", exc)
        return Failed(message=str(exc))
    source = source or settings.source or ""
    if not source:
        message = "no snapshot directory: pass source or set KAMFLOW_SOURCE"
        get_run_logger().error(message)
        return Failed(message=message)
    try:  # the operator's today (conf/calendar.yaml's zone), not the host's
        snapshot_date = dt.date.fromisoformat(as_of) if as_of else config.business_today(
            settings.conf_dir)
    except (KamflowError, ValueError) as exc:
        get_run_logger().error("%s", exc)
        return Failed(message=str(exc))
    summary = RunSummary(run_id=run_id, source=str(source), as_of=snapshot_date.isoformat())
    try:
        state = _retention(summary, source, snapshot_date, rules_dir, mapping, partitions,
                           history, settings)
    except KamflowError as exc:  # bad configuration or input: fail with the message alone
        get_run_logger().error("%s", exc)
        summary.status = "rejected input"
        summary.message = str(exc)
        state = Failed(message=str(exc))
    watch_space(summary, settings)  # the home's size and free disk (issue 28)
    _save_summary(summary, settings)
    return state


def summary_path(run_id: str, settings: Settings) -> Path:
    """Where each run's summary is kept (the CLI prints it; ops can read it later)."""
    return settings.reports / run_id / "summary.json"


def _save_summary(summary: RunSummary, settings: Settings) -> None:
    target = summary_path(summary.run_id, settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2, default=str),
                      encoding="utf-8")


def _retention(summary: RunSummary, source: str, snapshot_date: dt.date,
               rules_dir: str | None, mapping: str | None = None,
               partitions: int = 1, history: HistorySource | None = None,
               settings: Settings | None = None) -> State:
    logger = get_run_logger()
    home = settings = settings or load_settings()
    run_id = summary.run_id
    timer = _Timer(summary)

    pipeline = config.load_pipeline(settings.conf_dir / "pipeline.yaml")
    owners = config.load_owners(settings.conf_dir / "owners.yaml")
    calendar_gap = _calendar_gap(summary, home, snapshot_date)
    conf = plan.PlanConfig.load(settings.conf_dir, rules_dir or RULES_DIR, mapping)
    ruleset = conf.ruleset
    assert ruleset is not None
    summary.ruleset_version = ruleset.version
    assert conf.scoring is not None
    scoring, model = _learnt_scoring(summary, timer, history, mapping, pipeline, conf.scoring,
                                     snapshot_date)
    # the priors of conf/effects.yaml moved toward what the holdout has measured so far
    with TaskStore(home.database_url) as store:
        measured = read_effects(store, settings.conf_dir)
    beliefs, summary.effects_measured = learnt_beliefs(conf.beliefs, measured)
    if summary.effects_measured:
        logger.info("ranking by effects the holdout measured (decisions): %s; the rest by the "
                    "priors of conf/effects.yaml", summary.effects_measured)
    conf = dataclasses.replace(conf, scoring=scoring, model=model, beliefs=beliefs)

    stages = _RunStages(summary, timer, home, pipeline)
    found = plan.plan_snapshot(source, snapshot_date, conf, stages, partitions)
    if found.scored is None or found.decisions is None:  # stopped: validation, or the id guard
        return Failed(message=summary.message)
    scored, decisions = found.scored, found.decisions
    roster_accounts, withheld_by_action = found.accounts, found.withheld_by_action
    del found
    summary.value_classes = counts(scored["value_class"], VALUE_CLASSES)
    summary.value_class_shares = class_shares(scored, VALUE_CLASSES)
    roster_accounts = with_scores(roster_accounts, scored)
    summary.churn_bands = counts(scored["churn_band"], CHURN_BANDS)
    summary.value_at_risk = value_at_risk_summary(scored, VALUE_CLASSES, CHURN_BANDS)
    if summary.value_at_risk:
        summary.value_at_risk["probability_from"] = _probability_from(
            scoring, model, refitted=bool(summary.churn_learning))
    _publish_picture(home, run_id, scored, summary)
    del scored
    summary.decisions = len(decisions)
    summary.decisions_by_action = counts(decisions["action"]) if len(decisions) else {}
    # sleeping dogs withheld by the plan (worklist/worth.py)
    summary.tasks_withheld = withheld_by_action
    if withheld_by_action:
        logger.info("withheld %d decision(s) whose expected effect is negative (contact is "
                    "believed to push the account away): %s", sum(withheld_by_action.values()),
                    withheld_by_action)
    held = decisions.loc[decisions["held_out"].astype(bool), "action"] \
        if "held_out" in decisions else decisions["action"].iloc[:0]
    summary.decisions_held_out = len(held)
    summary.held_out_by_action = counts(held) if len(held) else {}
    roster = roster_stage(roster_accounts, home.database_url, dt.datetime.now(dt.UTC))
    del roster_accounts
    summary.accounts_new, summary.accounts_lost = roster.new, roster.lost
    summary.accounts_back, summary.accounts_missing_unmarked = roster.returned, roster.held

    # one run at a time on a store: a second waits for this one, or stops with its name
    with TaskStore(home.database_url) as store, run_lock(
            store, "retention_run", lock_owner(run_id), wait=settings.run_lock_wait):
        with timer("dispatch"):
            raised = dispatch_stage(decisions, ruleset, owners, store, run_id,
                                    dt.datetime.now(dt.UTC), settings)
        summary.tasks_created, summary.emails_queued = raised.created, raised.emails
        summary.tasks_already_open = raised.skipped_open
        summary.tasks_in_cooldown = raised.skipped_cooldown
        summary.tasks_released, summary.tasks_queued = raised.released, raised.queued
        summary.tasks_released_from_queue = raised.released_from_queue
        summary.tasks_withdrawn = raised.withdrawn
        summary.tasks_held_out, summary.held_out_before = raised.held_out, raised.held_out_before
        summary.capacity_by_owner = capacity_rows(raised.released_by_owner,
                                                  raised.queued_by_owner)
        if calendar_gap is not None and settings.ops_email:  # sent with this run's emails;
            # the outbox keeps one per key (gap and week): a rerun queues nothing more
            store.queue_email(delivery.calendar_alert(settings.ops_email, calendar_gap,
                                                      snapshot_date), dt.datetime.now(dt.UTC),
                              run_id)
        backend = notifications.backend_from_env(home.outbox, settings)
        summary.email_backend = backend.name
        with timer("send"):
            summary.emails_sent, summary.emails_failed, summary.emails_dead_lettered = send_stage(
                store, backend, notifications.sender_from_env(settings),
                settings.dead_letter_after, settings.ops_email)

    _publish(summary, action_table(decisions, raised.created_by_action))
    _publish_kpis(home)
    _publish_trend(home, run_id, summary)
    publish_effects(home)  # each action's measured effect (artifact `effects`)
    logger.info("retention run finished: %d accounts, %d quarantined, %d decisions, %d new tasks, "
                "%d emails sent", summary.accounts_in, summary.accounts_quarantined,
                summary.decisions, summary.tasks_created, summary.emails_sent)
    if summary.emails_failed:
        summary.status = "emails pending"
        message = (f"{summary.emails_failed} email(s) could not be sent; they stay in the outbox "
                   "and the next run sends them")
        return Failed(message=message)
    if summary.emails_dead_lettered:  # given up on and ops told: no reason to fail every run
        summary.message = (f"{summary.emails_dead_lettered} email(s) failed permanently "
                           f"{settings.dead_letter_after} times: dead letters, no longer "
                           f"retried; ops were alerted at {settings.ops_email}")
        logger.warning("%s", summary.message)
    return Completed(message="retention run completed")


def _calendar_gap(summary: RunSummary, settings: Settings,
                  snapshot_date: dt.date) -> CalendarGap | None:
    """Warn (log, summary, artifact) when the holiday data ends within the next 60 days from
    the run's date (the operator's today unless ``as_of`` says otherwise): the same run, rerun,
    gives the same verdict, and the ops email its same outbox key."""
    calendar = config.load_calendar(settings.conf_dir / "calendar.yaml", today=snapshot_date)
    gap = calendar.data_gap(snapshot_date)
    if gap is not None:
        summary.calendar_warning = gap.message()
        get_run_logger().warning("%s", summary.calendar_warning)
        create_markdown_artifact(f"# Business calendar\n\n> **Warning:** {gap.message()}\n",
                                 key="calendar-warning",
                                 description="kamflow: the holiday data runs out")
    return gap


def _learnt_scoring(summary: RunSummary, timer: _Timer, history: HistorySource | None,
                    mapping: str | None, pipeline: config.PipelineConfig,
                    scoring: ScoringConfig, as_of: dt.date,
                    ) -> tuple[ScoringConfig, ChurnModel | None]:
    """The scoring configuration and churn model to score with: as configured, or learnt from
    the labelled history. Bad history input fails the run before any task exists."""
    if history is None:
        return scoring, None
    if scoring.learn == "none":
        # A switch to stop learning without touching the deployment's parameters.
        get_run_logger().warning("a labelled history was given but churn.learn is none: churn "
                                 "risk uses the configured factor weights")
        summary.churn_risk_from += " (churn.learn: none, the labelled history is not used)"
        return scoring, None
    with timer("learn"):
        learnt = learn_stage(history, mapping, pipeline, scoring, as_of)
    if isinstance(learnt, KamflowError):
        raise learnt
    summary.churn_risk_from = learnt.describe()
    summary.churn_learning = {"history": history.source, "labels": str(history.labels_path),
                              **learnt.as_dict()}
    return learnt.scoring(scoring), learnt.model


def _probability_from(scoring: ScoringConfig, model: ChurnModel | None,
                      refitted: bool) -> str:
    """Where the churn probability behind value at risk came from, for the summary."""
    if model is not None:
        return f"the learnt churn model's calibrated probability ({model.kind})"
    a, b = scoring.calibration.a, scoring.calibration.b
    source = ("refitted on the labelled history (Platt scaling)" if refitted
              else "churn.calibration in conf/scoring.yaml")
    return f"churn risk through the logistic calibration a={a:g}, b={b:g}, {source}"


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


def _write_validation(home: Settings, run_id: str, outcome: ValidationOutcome,
                      summary: RunSummary) -> None:
    """Quarantined rows and the validation results, kept for every run."""
    summary.accounts_in = outcome.accounts_in
    summary.accounts_quarantined = outcome.accounts_quarantined
    summary.quarantine_rows = len(outcome.quarantine)
    files = write_validation_files(outcome, home.reports / run_id, home.quarantine / run_id,
                                   run_id)
    outcome.release_gx()  # the GX results are rendered: let their memory go
    summary.validation_report = str(files.results_json)
    summary.data_docs = files.data_docs.as_uri()
    summary.offline_report = str(files.offline_report)
    summary.offline_report_zh = str(files.offline_report_zh)
    if files.quarantine_file is not None:
        summary.quarantine_file = str(files.quarantine_file)
        with TaskStore(home.database_url) as store:  # and in the database, across runs
            store.record_quarantine(run_id, outcome.quarantine)
    create_markdown_artifact(files.markdown, key="validation-results",
                             description="Counts per expectation; links the offline report")


def _publish_picture(home: Settings, run_id: str, scored: pd.DataFrame,
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
    at_risk = value_at_risk_table(scored)
    if at_risk:
        create_table_artifact(at_risk, key="value-at-risk",
                              description="Value at risk (monthly revenue x churn probability) "
                                          "per value class and churn band, CNY")


def _publish_kpis(home: Settings) -> None:
    """Per-owner KPIs from the task store: open, overdue, handled on time or late."""
    with TaskStore(home.database_url) as store:
        kpis = store.owner_kpis(dt.datetime.now(dt.UTC))
    if kpis:
        create_table_artifact(kpis, key="owner-kpis",
                              description="Per account manager and queue: open, overdue, "
                                          "handled on time and late")


def _publish_trend(home: Settings, run_id: str, summary: RunSummary) -> None:
    """Keep this run's headline figures (table run_figures) and show the last 90 runs' trend:
    churn over the trailing 12 months against the ceiling (conf/department.yaml), as a table
    and, with the breakdowns by region, industry, class and manager, as charts (markdown
    artifact ``department``: PNG images inline as data URIs, which the Prefect UI shows)."""
    ceilings = config.load_department(home.conf_dir / "department.yaml")
    now = dt.datetime.now(dt.UTC)
    with TaskStore(home.database_url) as store:
        found = department_report(store.roster_rows(),
                                  store.task_rows(now - dt.timedelta(days=400)), now,
                                  ceilings=ceilings, revenue=store.revenue_rows())
        store.record_run_figures(run_id, now, {**headline(found), **run_headline(summary)})
        trend = store.run_figures(90)
    create_table_artifact(trend_table(trend), key="churn-trend",
                          description="The last 90 runs: key-account churn over the trailing "
                                      "12 months against the ceiling, revenue churn, the top "
                                      "value classes' share and tasks raised")
    timezone = config.load_calendar(home.conf_dir / "calendar.yaml").timezone
    year = next(p for p in found.periods if p["period"] == "trailing 12 months")
    charts = {k: data_uri(png) for k, png in trend_charts(trend, timezone, year).items()}
    create_markdown_artifact(department_markdown(found, charts, len(trend)), key="department",
                             description="Churn and value at risk over the last 90 runs "
                                         "(charts), and the breakdowns by region, industry, "
                                         "value class and manager")


def _publish(summary: RunSummary, actions: list[dict[str, Any]]) -> None:
    create_markdown_artifact(markdown(summary), key="retention-summary",
                             description="kamflow retention run summary")
    if actions:
        create_table_artifact(actions, key="retention-actions",
                              description="Actions decided, by rule and owner")
