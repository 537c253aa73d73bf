"""Load the YAML configuration in ``conf/`` (or ``$KAMFLOW_CONF``) into typed objects.

Each loader names the file and the key in its error, so a bad value is refused with a message an
operator can act on.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from kamflow.core import yamlfile
from kamflow.core.errors import ConfigError
from kamflow.core.settings import Settings
from kamflow.expectations import ValidationPolicy
from kamflow.scoring import ScoringConfig
from kamflow.worklist import Owner, OwnerDirectory
from kamflow.worklist.calendar import BusinessCalendar, parse_hours


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


def load_scoring(path: Path | None = None) -> ScoringConfig:
    path = path or conf_dir() / "scoring.yaml"
    return ScoringConfig.from_mapping(read_yaml(path), source=str(path))


def load_owners(path: Path | None = None) -> OwnerDirectory:
    """The owners directory: queues (roles), fallback, department head and people.

    People come from the ``people`` list and/or the CSV named by ``people_file`` (relative to the
    YAML file; columns email, name, supervisor, language, working_hours; UTF-8 or GB18030).
    A supervisor cycle, an unknown language or malformed working hours are refused.
    """
    path = path or conf_dir() / "owners.yaml"
    doc = read_yaml(path)

    def owner(spec: Any, key: str, language_default: str = "en") -> Owner:
        if not isinstance(spec, Mapping) or not spec.get("email") or not spec.get("name"):
            raise ConfigError(f"{path}: key {key!r} needs a name and an email")
        unknown_keys = sorted(set(spec) - OWNER_KEYS, key=str)
        if unknown_keys:
            raise ConfigError(f"{path}: key '{key}.{unknown_keys[0]}' is unknown; allowed: "
                              f"{', '.join(sorted(OWNER_KEYS))}")
        language = spec.get("language") or language_default
        if language not in ("en", "zh-CN"):
            raise ConfigError(f"{path}: key '{key}.language' must be en or zh-CN, not {language!r}")
        hours = None
        if spec.get("working_hours"):
            try:
                hours = parse_hours(str(spec["working_hours"]))
            except ValueError as exc:
                raise ConfigError(f"{path}: key '{key}.working_hours': {exc}") from None
        supervisor = str(spec["supervisor"]).strip() if spec.get("supervisor") else None
        if supervisor is not None and "@" not in supervisor:
            raise ConfigError(f"{path}: key '{key}.supervisor' must be an email address, "
                              f"not {supervisor!r}")
        email = str(spec["email"]).strip()
        if "@" not in email:
            raise ConfigError(f"{path}: key '{key}.email' must be an email address, not {email!r}")
        return Owner(str(spec["name"]).strip(), email, language, supervisor, hours)

    unknown = sorted(set(doc) - OWNERS_FILE_KEYS, key=str)
    if unknown:
        raise ConfigError(f"{path}: key {unknown[0]!r} is unknown; allowed: "
                          f"{', '.join(sorted(OWNERS_FILE_KEYS))}")
    roles = doc.get("roles") or {}
    if not isinstance(roles, Mapping):
        raise ConfigError(f"{path}: key 'roles' must map role names to owners")
    manager_language = doc.get("manager_language", "zh-CN")
    if manager_language not in ("en", "zh-CN"):
        raise ConfigError(f"{path}: key 'manager_language' must be en or zh-CN, "
                          f"not {manager_language!r}")
    people_specs = doc.get("people") or []
    if not isinstance(people_specs, list):
        raise ConfigError(f"{path}: key 'people' must be a list of people (email, name, ...)")
    entries = [(spec, f"people[{i}]") for i, spec in enumerate(people_specs)]
    if doc.get("people_file"):
        csv_path = path.parent / str(doc["people_file"])
        entries += [(row, f"people_file {csv_path.name} line {line}")
                    for line, row in _read_people_csv(csv_path, path)]
    people: dict[str, Owner] = {}
    for spec, key in entries:
        person = owner(spec, key, manager_language)
        if person.email.lower() in people:
            raise ConfigError(f"{path}: key '{key}': {person.email} is listed twice")
        people[person.email.lower()] = person
    head = owner(doc["department_head"], "department_head", "zh-CN") \
        if doc.get("department_head") else None
    default_supervisor = doc.get("default_supervisor")
    if default_supervisor is not None and "@" not in str(default_supervisor):
        raise ConfigError(f"{path}: key 'default_supervisor' must be an email address")
    directory = OwnerDirectory(
        {role: owner(spec, f"roles.{role}") for role, spec in roles.items()},
        owner(doc.get("fallback"), "fallback"), manager_language, people, head,
        str(default_supervisor).strip() if default_supervisor else None)
    _refuse_unknown_supervisors(directory, path)
    _refuse_supervisor_cycles(directory, path)
    return directory


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


OWNER_KEYS = {"name", "email", "language", "supervisor", "working_hours"}
OWNERS_FILE_KEYS = {"manager_language", "roles", "fallback", "department_head", "people",
                    "people_file", "default_supervisor"}


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


def load_calendar(path: Path | None = None) -> BusinessCalendar:
    """The business calendar in ``conf/calendar.yaml`` (timezone, working days and hours,
    holidays, worked weekend days)."""
    path = path or conf_dir() / "calendar.yaml"
    doc = read_yaml(path)
    allowed = {"timezone", "workdays", "working_hours", "holidays", "extra_workdays",
               "escalation_due_days"}
    unknown = sorted(set(doc) - allowed, key=str)
    if unknown:
        raise ConfigError(f"{path}: key {unknown[0]!r} is unknown; allowed: "
                          f"{', '.join(sorted(allowed))}")

    def dates(key: str) -> list[dt.date]:
        values = doc.get(key) or []
        if not isinstance(values, list):
            raise ConfigError(f"{path}: key {key!r} must be a list of dates YYYY-MM-DD")
        out = []
        for value in values:
            if isinstance(value, dt.date):
                out.append(value)
                continue
            try:
                out.append(dt.date.fromisoformat(str(value)))
            except ValueError:
                raise ConfigError(f"{path}: key {key!r}: {value!r} is not a date "
                                  "YYYY-MM-DD") from None
        return out

    timezone = str(doc.get("timezone", "Asia/Shanghai"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}: key 'timezone': unknown timezone {timezone!r} "
                          "(use an IANA name such as Asia/Shanghai)") from None
    workdays = doc.get("workdays", ["mon", "tue", "wed", "thu", "fri"])
    if not isinstance(workdays, list):
        raise ConfigError(f"{path}: key 'workdays' must be a list such as [mon, tue, wed]")
    try:
        return BusinessCalendar.build(timezone, workdays, str(doc.get("working_hours",
                                                                      "09:00-18:00")),
                                      dates("holidays"), dates("extra_workdays"))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_escalation_due_days(path: Path | None = None) -> float:
    """Working days each new owner on the escalation ladder gets (``escalation_due_days``)."""
    path = path or conf_dir() / "calendar.yaml"
    value = read_yaml(path).get("escalation_due_days", 1)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{path}: key 'escalation_due_days' must be a positive number of "
                          f"working days, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class PipelineConfig:
    validation: ValidationPolicy
    # more of the known account ids gone (with about as many new ones) stops the run before
    # dispatch: the ids changed format (worklist/roster.py id_drift)
    max_id_drift_share: float = 0.2


def load_pipeline(path: Path | None = None) -> PipelineConfig:
    path = path or conf_dir() / "pipeline.yaml"
    doc = read_yaml(path)
    unknown = sorted(set(doc) - {"validation", "guards"}, key=str)
    if unknown:
        raise ConfigError(f"{path}: key {unknown[0]!r} is unknown; allowed: validation, guards")
    validation = doc.get("validation") or {}
    if not isinstance(validation, Mapping):
        raise ConfigError(f"{path}: key 'validation' must be a mapping, not {validation!r}")
    share = validation.get("max_quarantine_share", 0.2)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"{path}: key 'validation.max_quarantine_share' must be a number "
                          f"between 0 and 1, not {share!r}")
    age = validation.get("max_snapshot_age_days", 45)
    if isinstance(age, bool) or not isinstance(age, int) or age < 1:
        raise ConfigError(f"{path}: key 'validation.max_snapshot_age_days' must be a whole "
                          f"number of days, at least 1, not {age!r}")
    unknown = sorted(set(validation) - {"max_quarantine_share", "max_snapshot_age_days"})
    if unknown:
        raise ConfigError(f"{path}: key 'validation.{unknown[0]}' is unknown")
    return PipelineConfig(ValidationPolicy(float(share), age), _id_drift_share(doc, path))


def _id_drift_share(doc: Mapping[str, Any], path: Path) -> float:
    guards = doc.get("guards") or {}
    if not isinstance(guards, Mapping):
        raise ConfigError(f"{path}: key 'guards' must be a mapping, not {guards!r}")
    unknown = sorted(set(guards) - {"max_id_drift_share"}, key=str)
    if unknown:
        raise ConfigError(f"{path}: key 'guards.{unknown[0]}' is unknown; allowed: "
                          "max_id_drift_share")
    share = guards.get("max_id_drift_share", 0.2)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError(f"{path}: key 'guards.max_id_drift_share' must be a number above 0 "
                          f"and at most 1 (1 turns the guard off), not {share!r}")
    return float(share)
