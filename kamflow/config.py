"""Load the YAML configuration in ``conf/`` (or ``$KAMFLOW_CONF``) into typed objects.

Each file is parsed by a strict pydantic model (kamflow.core.configmodel), then converted into
the domain objects the stages use. Every error names the file and the key, so a bad value is
refused with a message an operator can act on.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)

from kamflow.core import vocabulary, yamlfile
from kamflow.core.configmodel import ConfigModel, config_error
from kamflow.core.errors import ConfigError
from kamflow.core.settings import Settings
from kamflow.expectations import ValidationPolicy
from kamflow.scoring import ScoringConfig
from kamflow.worklist import Owner, OwnerDirectory
from kamflow.worklist.calendar import (
    WEEKDAYS,
    BusinessCalendar,
    PublicDays,
    parse_hours,
    public_days,
    public_holiday_countries,
)
from kamflow.worklist.capacity import Capacity
from kamflow.worklist.effects import DEFAULT_EFFORT_HOURS, EffectsConfig
from kamflow.worklist.housekeeping import HousekeepingPolicy
from kamflow.worklist.measures import Ceilings
from kamflow.worklist.outcomes import NEXT_STEPS, Outcome, OutcomeList
from kamflow.worklist.worth import ActionBelief, Beliefs, Effect


def conf_dir(settings: Settings | None = None) -> Path:
    """The configuration folder: ``settings.conf_dir`` (``KAMFLOW_CONF``, else the shipped
    defaults); without ``settings``, those of this process."""
    return (settings or Settings.from_env()).conf_dir


def read_yaml(path: Path) -> Mapping[str, Any]:
    if not path.exists():
        raise ConfigError(f"configuration file {path} is missing")
    try:
        doc = yamlfile.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"configuration file {path} must be a mapping of keys to values")
    return doc


Model = TypeVar("Model", bound=ConfigModel)


def _parse(model: type[Model], doc: Any, path: Path, prefix: str = "") -> Model:
    """``doc`` checked by ``model``; a problem is a ConfigError naming ``path`` and the key."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise config_error(path, exc, model, prefix) from None


def _email(value: str) -> str:
    value = value.strip()
    if "@" not in value:
        raise ValueError(f"must be an email address, not {value!r}")
    return value


def _hours(value: str) -> str:
    parse_hours(value)  # raises ValueError naming the expected shape
    return value


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (use an IANA name such as "
                         "Asia/Shanghai)") from None
    return value


def _country(value: str) -> str:
    if value != "none" and value not in public_holiday_countries():
        raise ValueError(f"no public holidays known for {value!r} (use an ISO 3166 country "
                         "code such as CN, or none)")
    return value


def _weekday(value: str) -> str:
    if value.strip().lower()[:3] not in WEEKDAYS:
        raise ValueError(f"unknown weekday {value!r}; use {', '.join(WEEKDAYS)}")
    return value


def _day(value: Any) -> dt.date:
    # A plain validator: YAML gives dates for unquoted 2026-10-01 and strings when quoted;
    # pydantic's own date parsing would also take an integer as a Unix timestamp.
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None


Email = Annotated[str, AfterValidator(_email)]
Language = Literal["en", "zh-CN"]
Hours = Annotated[str, AfterValidator(_hours)]  # "09:00-18:00"
Day = Annotated[dt.date, PlainValidator(_day)]


def load_scoring(path: Path | None = None) -> ScoringConfig:
    path = path or conf_dir() / "scoring.yaml"
    return ScoringConfig.from_mapping(read_yaml(path), source=str(path))


class _CapacitySpec(ConfigModel):
    """An owner's capacity (worklist/capacity.py); a limit left out is the role's (or none)."""

    new_per_day: Annotated[int, Field(ge=0)] | None = None
    open_max: Annotated[int, Field(ge=0)] | None = None
    hours_per_day: Annotated[float, Field(gt=0)] | None = None

    def capacity(self) -> Capacity:
        return Capacity(self.new_per_day, self.open_max, self.hours_per_day)


# roles of ``capacity`` besides the queues under ``roles``: the managers of the snapshot, and
# anyone an escalation reaches (issue 17: a supervisor's open escalated tasks count)
CAPACITY_ROLES = ("account_manager", "supervisor")


def _number(value: Any) -> Any:
    """A CSV cell's number (``8``, ``3.5``) as a number; anything else as it is (refused by the
    model with the key named)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text) if text.isdigit() else float(text)
        except ValueError:
            return value
    return value


class _OwnerSpec(ConfigModel):
    """A person or a queue: under roles, fallback, department_head, people or a people_file row."""

    model_config = ConfigDict(str_strip_whitespace=True)  # merged with ConfigModel's

    name: Annotated[str, Field(min_length=1)]
    email: Email
    language: Language | None = None  # None: the default of where they are listed
    supervisor: Email | None = None
    working_hours: Hours | None = None
    capacity: _CapacitySpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        # An empty CSV cell (people_file) means the same as a key left out; the CSV's columns
        # new_per_day and open_max are the YAML's capacity: {new_per_day, open_max}.
        if isinstance(data, Mapping):
            data = {k: v for k, v in data.items() if v != ""}
            flat = {k: data.pop(k) for k in ("new_per_day", "open_max", "hours_per_day")
                    if k in data}
            flat = {k: _number(v) for k, v in flat.items()}  # a CSV cell is text
            if flat and "capacity" not in data:
                data["capacity"] = flat
        return data

    def owner(self, language_default: str) -> Owner:
        hours = parse_hours(self.working_hours) if self.working_hours else None
        return Owner(self.name, self.email, self.language or language_default, self.supervisor,
                     hours, self.capacity.capacity() if self.capacity else None)


class _OwnersFile(ConfigModel):
    manager_language: Language = "zh-CN"
    roles: dict[str, _OwnerSpec] = {}
    fallback: _OwnerSpec
    department_head: _OwnerSpec | None = None
    people: list[_OwnerSpec] = []
    people_file: str | None = None
    default_supervisor: Email | None = None
    capacity: dict[str, _CapacitySpec] = {}


def load_owners(path: Path | None = None) -> OwnerDirectory:
    """The owners directory: queues (roles), fallback, department head and people.

    People come from the ``people`` list and/or the CSV named by ``people_file`` (relative to the
    YAML file; columns email, name, supervisor, language, working_hours, new_per_day, open_max;
    UTF-8 or GB18030). ``capacity`` gives each role's limits (account_manager, supervisor and
    the queues under roles); a person or queue may set its own.
    A supervisor cycle, an unknown language or malformed working hours are refused.
    """
    path = path or conf_dir() / "owners.yaml"
    spec = _parse(_OwnersFile, read_yaml(path), path)
    entries = [(person, f"people[{i}]") for i, person in enumerate(spec.people)]
    if spec.people_file:
        csv_path = path.parent / spec.people_file
        label = f"people_file {csv_path.name} line"
        entries += [(_parse(_OwnerSpec, row, path, f"{label} {line}"), f"{label} {line}")
                    for line, row in _read_people_csv(csv_path, path)]
    people: dict[str, Owner] = {}
    for person_spec, key in entries:
        person = person_spec.owner(spec.manager_language)
        if person.email.lower() in people:
            raise ConfigError(f"{path}: key '{key}': {person.email} is listed twice")
        people[person.email.lower()] = person
    unknown = sorted(set(spec.capacity) - set(CAPACITY_ROLES) - set(spec.roles))
    if unknown:
        raise ConfigError(f"{path}: key 'capacity.{unknown[0]}': unknown role; known: "
                          f"{', '.join([*CAPACITY_ROLES, *spec.roles])}")
    directory = OwnerDirectory(
        {role: queue.owner("en") for role, queue in spec.roles.items()},
        spec.fallback.owner("en"), spec.manager_language, people,
        spec.department_head.owner("zh-CN") if spec.department_head else None,
        spec.default_supervisor,
        {role: limits.capacity() for role, limits in spec.capacity.items()})
    _refuse_unknown_supervisors(directory, path)
    _refuse_supervisor_cycles(directory, path)
    return directory


# The two checks below span the whole file (who is listed where), so they stay plain functions
# over the built directory rather than validators of one model: their messages name the people
# and the chain, which a pydantic location could not.
def _refuse_unknown_supervisors(directory: OwnerDirectory, path: Path) -> None:
    """A supervisor must be someone the file lists: an escalation to an address nobody owns
    would reach a person with no language, no working hours and no supervisor of their own
    (a typo in one address would silently send every escalation of a team nowhere)."""
    named = [(f"{o.email}'s supervisor", o.supervisor) for o in
             (*directory.people.values(), *directory.roles.values(), directory.fallback,
              *([directory.department_head] if directory.department_head else []))]
    named.append(("default_supervisor", directory.default_supervisor))
    for who, supervisor in named:
        if supervisor and directory.lookup(supervisor) is None:
            raise ConfigError(f"{path}: {who} {supervisor!r} is not listed in the file; add "
                              "them under 'people' (or people_file) or correct the address")


def _read_people_csv(csv_path: Path, owners_path: Path) -> list[tuple[int, dict[str, str]]]:
    if not csv_path.is_file():
        raise ConfigError(f"{owners_path}: key 'people_file': {csv_path} does not exist")
    raw = csv_path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"email", "name"} - set(reader.fieldnames or [])
    if missing:
        raise ConfigError(f"{csv_path}: needs the columns email and name (missing: "
                          f"{', '.join(sorted(missing))})")
    return [(i + 2, {k: (v or "").strip() for k, v in row.items() if k})
            for i, row in enumerate(reader)]


def _refuse_supervisor_cycles(directory: OwnerDirectory, path: Path) -> None:
    for start in directory.people.values():
        seen = [start.email.lower()]
        current: Owner | None = start
        while current is not None and current.supervisor:
            nxt = current.supervisor.lower()
            if nxt in seen:
                chain = " -> ".join([*seen, nxt])
                raise ConfigError(f"{path}: the supervisors form a cycle: {chain}")
            seen.append(nxt)
            current = directory.lookup(nxt)


def business_today(conf_dir: Path | None = None) -> dt.date:
    """Today in the operator's time zone (conf/calendar.yaml), the default snapshot date."""
    return load_calendar(conf_dir / "calendar.yaml" if conf_dir else None).today()


class _CalendarFile(ConfigModel):
    timezone: Annotated[str, AfterValidator(_known_timezone)] = "Asia/Shanghai"
    workdays: list[Annotated[str, AfterValidator(_weekday)]] = list(WEEKDAYS[:5])
    working_hours: Hours = "09:00-18:00"
    # whose public holidays: an ISO country code the holidays package knows, or "none"
    public_holidays: Annotated[str, AfterValidator(_country)] = "CN"
    holidays: list[Day] = []  # the operator's own days off, besides the public holidays
    extra_workdays: list[Day] = []  # days worked although a weekend or a public holiday
    escalation_due_days: Annotated[float, Field(gt=0)] = 1.0


# Years of public holidays a loaded calendar holds around its date: deadlines look ahead at most
# a few weeks, the reports a year back.
CALENDAR_YEARS_BACK, CALENDAR_YEARS_AHEAD = 1, 2


def load_calendar(path: Path | None = None, today: dt.date | None = None) -> BusinessCalendar:
    """The business calendar: ``conf/calendar.yaml`` (timezone, working days and hours, the
    operator's own days off and worked days) over the public holidays and make-up workdays of
    ``public_holidays`` from the holidays package, for the years around ``today`` (default:
    the host's date)."""
    path = path or conf_dir() / "calendar.yaml"
    spec = _parse(_CalendarFile, read_yaml(path), path)
    year = (today or dt.date.today()).year
    years = tuple(range(year - CALENDAR_YEARS_BACK, year + CALENDAR_YEARS_AHEAD + 1))
    public = (public_days(spec.public_holidays, years) if spec.public_holidays != "none"
              else PublicDays(frozenset(), frozenset(), frozenset()))
    # A year the file lists make-up workdays for is arranged too: the operator typed its notice.
    own_years = {d.year for d in spec.extra_workdays if d.weekday() >= 5}
    try:
        return BusinessCalendar.build(
            spec.timezone, spec.workdays, spec.working_hours,
            (public.days_off | set(spec.holidays)) - set(spec.extra_workdays),
            public.workdays | set(spec.extra_workdays), public.arranged_years | own_years)
    except ValueError as exc:  # no working day at all: a rule across keys
        raise ConfigError(f"{path}: {exc}") from None


def load_department(path: Path | None = None) -> Ceilings:
    """The department's churn ceilings and partial-churn threshold (``conf/department.yaml``);
    the defaults when the file is absent."""
    path = path or conf_dir() / "department.yaml"
    return Ceilings.from_mapping(read_yaml(path), str(path)) if path.exists() else Ceilings()


class _EffectSpec(ConfigModel):
    relative: Annotated[float, Field(ge=-1, le=1)]
    low: Annotated[float, Field(ge=-1, le=1)] | None = None
    high: Annotated[float, Field(ge=-1, le=1)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _EffectSpec:
        if self.low is not None and self.low > self.relative:
            raise ValueError("low must not be above relative")
        if self.high is not None and self.high < self.relative:
            raise ValueError("high must not be below relative")
        return self

    def effect(self) -> Effect:
        return Effect(self.relative, self.low, self.high)


class _ActionBeliefSpec(ConfigModel):
    effort_hours: Annotated[float, Field(gt=0)]
    effect: _EffectSpec
    cost_cny: Annotated[float, Field(ge=0)] = 0.0
    cost_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    by_rule: dict[str, _EffectSpec] = {}
    by_value_class: dict[Literal["high", "secondary", "potential", "low"], _EffectSpec] = {}
    by_churn_band: dict[Literal["low", "medium", "high", "critical"], _EffectSpec] = {}
    # a true effects file only (kamflow outcome --effects): the generator's latent causes
    by_cause: dict[Literal["service", "competitor", "distress", "disengaged", "uncommitted",
                           "new"], _EffectSpec] = {}

    def belief(self) -> ActionBelief:
        return ActionBelief(self.effort_hours, self.effect.effect(), self.cost_cny,
                            self.cost_share,
                            {k: v.effect() for k, v in self.by_rule.items()},
                            {k: v.effect() for k, v in self.by_value_class.items()},
                            {k: v.effect() for k, v in self.by_churn_band.items()},
                            {k: v.effect() for k, v in self.by_cause.items()})


class _EffectsFile(ConfigModel):
    prior_strength: Annotated[float, Field(ge=0)] = 2000.0
    withhold_losses: bool = True
    default_effort_hours: Annotated[float, Field(gt=0)] = 1.0
    must_do: list[str] = []
    actions: dict[str, _ActionBeliefSpec] = {}


def load_effects(path: Path | None = None) -> Beliefs | None:
    """The operator's beliefs about each action's effort, effect and cost
    (``conf/effects.yaml``, worklist/worth.py); None when the file is absent (the worklist is
    then ranked by value at risk, as before)."""
    path = path or conf_dir() / "effects.yaml"
    if not path.exists():
        return None
    spec = _parse(_EffectsFile, read_yaml(path), path)
    return Beliefs({name: a.belief() for name, a in spec.actions.items()},
                   frozenset(spec.must_do), spec.default_effort_hours, spec.prior_strength,
                   spec.withhold_losses)


class _SizingSection(ConfigModel):
    within_months: Annotated[float, Field(gt=0, le=60)] = 12.0
    maintenance_share: Annotated[float, Field(gt=0, le=0.5)] = 0.02
    max_share: Annotated[float, Field(gt=0, le=0.5)] = 0.2
    baseline_churn_yearly: Annotated[float, Field(gt=0, lt=1)] = 0.03


class _ExperimentFile(ConfigModel):
    horizon_days: Annotated[int, Field(ge=1, le=730)] = 90
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    ci_width_pp: Annotated[float, Field(gt=0, le=100)] = 2.0
    method: Literal["newcomb", "score"] = "newcomb"
    holdout_share: Annotated[float, Field(gt=0, le=0.5)] = 0.05
    effort_hours: dict[str, Annotated[float, Field(gt=0, le=40)]] = {}
    default_effort_hours: Annotated[float, Field(gt=0, le=40)] = 1.0
    sizing: _SizingSection = _SizingSection()

    @model_validator(mode="after")
    def _sizable(self) -> _ExperimentFile:
        if self.sizing.maintenance_share > self.sizing.max_share:
            raise ValueError("sizing.maintenance_share must not be above sizing.max_share")
        if self.sizing.within_months * 365.25 / 12 <= self.horizon_days:
            raise ValueError(f"sizing.within_months must be longer than the horizon "
                             f"({self.horizon_days} days): every decision waits it out")
        return self


def load_experiment(path: Path | None = None,
                    department: Ceilings | None = None) -> EffectsConfig:
    """How the effects report measures (``conf/experiment.yaml``: horizon, confidence, the
    interval width that counts as known, effort hours per action); the defaults when the file
    is absent. Partial churn's threshold comes from the department's (``department``)."""
    path = path or conf_dir() / "experiment.yaml"
    spec = _parse(_ExperimentFile, read_yaml(path), path) if path.exists() else _ExperimentFile()
    fall = (department or Ceilings()).partial_revenue_fall
    return EffectsConfig(spec.horizon_days, spec.confidence, spec.ci_width_pp, spec.method,
                         spec.holdout_share, {**DEFAULT_EFFORT_HOURS, **spec.effort_hours},
                         spec.default_effort_hours, fall,
                         within_months=spec.sizing.within_months,
                         maintenance_share=spec.sizing.maintenance_share,
                         max_share=spec.sizing.max_share,
                         baseline_churn_yearly=spec.sizing.baseline_churn_yearly)


def load_escalation_due_days(path: Path | None = None) -> float:
    """Working days each new owner on the escalation ladder gets (``escalation_due_days``)."""
    path = path or conf_dir() / "calendar.yaml"
    return _parse(_CalendarFile, read_yaml(path), path).escalation_due_days


class _OutcomeSpec(ConfigModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    zh: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    en: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    then: Literal[NEXT_STEPS]  # type: ignore[valid-type]
    days: Annotated[float, Field(gt=0, le=365)] | None = None


class _OutcomesFile(ConfigModel):
    note_max_chars: Annotated[int, Field(ge=1, le=2000)] = 500
    minutes_max: Annotated[int, Field(ge=1, le=10_000)] = 480
    outcomes: Annotated[dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")],
                             _OutcomeSpec], Field(min_length=1)]


def load_outcomes(path: Path | None = None) -> OutcomeList:
    """The outcome codes a manager may record when closing a task (``conf/outcomes.yaml``),
    each with its words (the file's, else the vocabulary's) and what happens next. A code
    without words in either, or a list with no real contact (``close``/``follow_up``), is
    refused naming the key."""
    path = path or conf_dir() / "outcomes.yaml"
    spec = _parse(_OutcomesFile, read_yaml(path), path)
    outcomes = []
    for code, item in spec.outcomes.items():
        try:
            zh = item.zh or vocabulary.label("task_outcome", code, "zh")
            en = item.en or vocabulary.label("task_outcome", code, "en")
        except vocabulary.UnknownLabel:
            raise ConfigError(f"{path}: key 'outcomes.{code}': a code of your own needs its "
                              "words: give zh and en") from None
        outcomes.append(Outcome(code, vocabulary.Label(zh, en), item.then, item.days))
    steps = {o.then for o in outcomes}
    if not steps & {"close", "follow_up"}:
        raise ConfigError(f"{path}: key 'outcomes': at least one outcome must be a real "
                          "contact (then: close or follow_up)")
    return OutcomeList(tuple(outcomes), spec.note_max_chars, spec.minutes_max)


class _ValidationSection(ConfigModel):
    max_quarantine_share: Annotated[float, Field(ge=0, le=1)] = 0.2
    max_snapshot_age_days: Annotated[int, Field(ge=1)] = 45


class _GuardsSection(ConfigModel):
    # 1 turns the id-drift guard off
    max_id_drift_share: Annotated[float, Field(gt=0, le=1)] = 0.2


class _StormSection(ConfigModel):
    share: Annotated[float, Field(ge=0, le=1)] = 0.25
    minimum: Annotated[int, Field(ge=1)] = 100
    summary_size: Annotated[int, Field(ge=1)] = 20
    alert_quiet_hours: Annotated[float, Field(ge=0)] = 72.0


class _PipelineFile(ConfigModel):
    validation: _ValidationSection = _ValidationSection()
    guards: _GuardsSection = _GuardsSection()
    escalation_storm: _StormSection = _StormSection()


@dataclass(frozen=True)
class StormSettings:
    """When an sla_watch run is an escalation storm (flows/delivery.py StormPolicy): more than
    ``share`` of the open tasks overdue at once and at least ``minimum``; each new owner then
    gets a summary of ``summary_size`` tasks, ops one alert per ``alert_quiet_hours``."""

    share: float = 0.25
    minimum: int = 100
    summary_size: int = 20
    alert_quiet_hours: float = 72.0


@dataclass(frozen=True)
class PipelineConfig:
    validation: ValidationPolicy
    # more of the known account ids gone (with about as many new ones) stops the run before
    # dispatch: the ids changed format (worklist/roster.py id_drift)
    max_id_drift_share: float = 0.2
    storm: StormSettings = StormSettings()


def load_pipeline(path: Path | None = None) -> PipelineConfig:
    path = path or conf_dir() / "pipeline.yaml"
    spec = _parse(_PipelineFile, read_yaml(path), path)
    storm = spec.escalation_storm
    return PipelineConfig(ValidationPolicy(spec.validation.max_quarantine_share,
                                           spec.validation.max_snapshot_age_days),
                          spec.guards.max_id_drift_share,
                          StormSettings(storm.share, storm.minimum, storm.summary_size,
                                        storm.alert_quiet_hours))


class _KeepDays(ConfigModel):
    reports: Annotated[float, Field(gt=0)] = 90
    email_bodies: Annotated[float, Field(gt=0)] = 30
    closed_tasks: Annotated[float, Field(gt=0)] = 400
    # the report reads each month of the last year from its start: a shorter history would
    # change those figures
    revenue_history: Annotated[float, Field(ge=400)] = 400


class _ArchiveSection(ConfigModel):
    path: Annotated[str, Field(min_length=1)] = "archive"
    batch: Annotated[int, Field(ge=1)] = 5000


class _DiskSection(ConfigModel):
    warn_within_days: Annotated[float, Field(gt=0)] = 30
    min_free_mb: Annotated[float, Field(ge=0)] = 1024


class _HousekeepingFile(ConfigModel):
    keep_days: _KeepDays = _KeepDays()
    archive: _ArchiveSection = _ArchiveSection()
    disk: _DiskSection = _DiskSection()


def load_housekeeping(settings: Settings, path: Path | None = None) -> HousekeepingPolicy:
    """What is kept and for how long (``conf/housekeeping.yaml``; the defaults when the file
    is absent). The archive's path is relative to ``KAMFLOW_HOME``."""
    path = path or settings.conf_dir / "housekeeping.yaml"
    spec = _parse(_HousekeepingFile, read_yaml(path), path) if path.exists() \
        else _HousekeepingFile()
    keep = spec.keep_days
    return HousekeepingPolicy(
        reports_days=keep.reports, email_bodies_days=keep.email_bodies,
        closed_tasks_days=keep.closed_tasks, revenue_history_days=keep.revenue_history,
        archive=settings.home / Path(spec.archive.path).expanduser(),
        batch=spec.archive.batch, warn_within_days=spec.disk.warn_within_days,
        min_free_bytes=int(spec.disk.min_free_mb * 1024 * 1024))
