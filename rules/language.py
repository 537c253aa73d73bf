"""The rule language: YAML files in ``rules/`` that a key-account manager can read.

A rule set is a directory with ``actions.yaml`` (what can be done, by whom, how fast) and any
number of rule files (``*.yaml``) each holding ``rules:``, a list of named rules::

    - id: escalate-valuable-critical
      description: {en: ..., zh: ...}
      when:
        all:
          - value_class: {in: [high, secondary]}
          - churn_band: critical            # shorthand for {eq: critical}
      then:
        - action: escalate_to_key_account
          due_in_days: 1                     # optional overrides of the action's defaults
      suppresses: [care-call-medium-risk]    # optional
      kind: risk                             # optional: risk (default) or proactive

A consequence may give a cadence instead of a cooldown: ``every: 30d`` (``2w``, ``3m``, ``1y``
or a number of days, at most 365) raises the action when none is open for the account and none
was closed in that period; a ``proactive`` rule's decisions rank below risk-driven ones at equal
priority (rules/care.yaml).

Conditions: ``all`` / ``any`` (lists), ``not`` (one condition), or a leaf ``field: {op: value}``
with op one of eq, ne, lt, lte, gt, gte, in, not_in, between. Loading checks everything and reports
each problem with file, line and rule id (see docs/rules.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from kamflow.core import vocabulary, yamlfile
from kamflow.core.errors import ConfigError
from kamflow.intake.signals import PREFIX as SIGNAL_PREFIX
from kamflow.intake.signals import Signal
from kamflow.rules.holdout import DEPARTMENT, MAX_SHARE, NEVER_HELD_OUT, PERIODS, HoldoutPolicy

RULES_DIR = Path(__file__).resolve().parent

# The fields of a scored account that rules may test, and their kind.
CATEGORIES: dict[str, tuple[str, ...] | None] = {
    "value_class": ("high", "secondary", "potential", "low"),
    "churn_band": ("low", "medium", "high", "critical"),
    "lifecycle_stage": ("identification", "development", "stable", "decline"),
    "segment": ("leadership", "cost", "price_performance", "maintain", "other"),
    "industry": ("government", "military", "finance", "tourism", "enterprise", "it",
                 "education", "culture", "health"),
    "region": None,  # any text
}
NUMBERS = ("churn_risk", "current_value", "potential_value", "avg_monthly_billed",
           "revenue_trend", "arrears", "arrears_ratio", "products_held", "new_services",
           "employees", "tenure_months", "months_into_contract_year", "days_to_contract_end",
           "days_since_contact", "complaints_90d", "complaints_3d", "sla_breaches_90d",
           "outage_hours_90d")
FIELDS = (*CATEGORIES, *NUMBERS)
# The operator signals of the rule set being parsed (parse_ruleset's ``signals``), by field.
_SIGNALS: ContextVar[Mapping[str, Signal]] = ContextVar("rule_signals",
                                                       default=MappingProxyType({}))
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "between")
RULE_KEYS = ("id", "description", "kind", "when", "then", "suppresses")
# What moves a rule: a churn warning (risk: the default), or standing care by value class that
# is due whatever the risk (proactive: ranked below risk-driven work at equal priority).
RULE_KINDS = ("risk", "proactive")
ACTION_KEYS = ("owner", "priority", "due_in_days", "cooldown_days")
# A built-in action takes its title from the vocabulary (kamflow/core/vocabulary.py) unless the
# file gives one; an action of the rule set's own needs its title.
OPTIONAL_ACTION_KEYS = ("title", "email", "urgent", "holdout")
# How a new task of the action is emailed: in its owner's digest of new tasks (one email per
# owner and run), or in an email of its own, sent at once (escalations).
EMAIL_MODES = ("digest", "own")
OVERRIDE_KEYS = ("action", "priority", "due_in_days", "cooldown_days", "every")
# `every: 30d` (a cadence): days per unit, and the longest cadence the task store can keep
# (it looks back 366 days for the last closed task of an account and action).
CADENCE_UNITS = {"d": 1, "w": 7, "m": 30, "y": 365}
MAX_CADENCE_DAYS = 365


@dataclass(frozen=True)
class Leaf:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Node:
    kind: str  # all | any | not
    children: tuple[Condition, ...]


Condition = Leaf | Node


@dataclass(frozen=True)
class ActionSpec:
    name: str
    title_en: str
    title_zh: str
    owner: str
    priority: int
    due_in_days: float
    cooldown_days: float
    email: str = "digest"
    holdout: float = 0.0  # the share of its decisions held out (rules/holdout.py)


@dataclass(frozen=True)
class Consequence:
    action: str
    priority: int
    due_in_days: float
    cooldown_days: float
    every_days: float | None = None  # a cadence (`every:`); cooldown_days is then the same


@dataclass(frozen=True)
class Rule:
    id: str
    description_en: str
    description_zh: str
    when: Condition
    then: tuple[Consequence, ...]
    suppresses: tuple[str, ...]
    file: str
    line: int
    kind: str = "risk"  # one of RULE_KINDS

    @property
    def proactive(self) -> bool:
        return self.kind == "proactive"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    actions: Mapping[str, ActionSpec]
    owners: tuple[str, ...]
    version: str
    directory: str
    holdout: HoldoutPolicy = field(default_factory=HoldoutPolicy)

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)

    @property
    def fields(self) -> tuple[str, ...]:
        used: dict[str, None] = {}
        for rule in self.rules:
            for leaf in leaves(rule.when):
                used[leaf.field] = None
        return tuple(used)


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)

    def add(self, file: str, line: int, rule_id: str | None, message: str) -> None:
        who = f", rule {rule_id!r}" if rule_id else ""
        self.items.append(f"{file}:{line}{who}: {message}")

    def error(self, directory: Path) -> ConfigError:
        return ConfigError(f"rule set {directory} has {len(self.items)} problem(s):\n  "
                           + "\n  ".join(self.items))


def leaves(condition: Condition) -> list[Leaf]:
    if isinstance(condition, Leaf):
        return [condition]
    return [leaf for child in condition.children for leaf in leaves(child)]


def parse_ruleset(directory: Path | str = RULES_DIR,
                  refused: Callable[[RuleSet], Mapping[str, str]] | None = None,
                  signals: tuple[Signal, ...] = ()) -> RuleSet:
    """Read and check a rule set directory; raise ConfigError listing every problem.

    ``refused`` names, for a rule set that passes every check here, the rules the engine
    cannot compile (rule id -> why): the engine adapter supplies it (``kamflow.rules.load``),
    so the language itself never imports the engine. ``signals`` (a mapping's operator
    signals) are fields too, as ``signal_<name>``: a categorical one is tested against its
    declared levels, a boolean with true/false, a numeric one as a number."""
    token = _SIGNALS.set({signal.column: signal for signal in signals})
    try:
        return _parse_ruleset(directory, refused)
    finally:
        _SIGNALS.reset(token)


def _parse_ruleset(directory: Path | str,
                   refused: Callable[[RuleSet], Mapping[str, str]] | None) -> RuleSet:
    directory = Path(directory)
    problems = _Problems()
    actions_path = directory / "actions.yaml"
    if not actions_path.exists():
        raise ConfigError(f"rule set {directory}: actions.yaml is missing (it lists the actions "
                          "rules may take and their owners)")
    rule_files = sorted(p for p in directory.glob("*.yaml") if p.name != "actions.yaml")
    if not rule_files:
        raise ConfigError(f"rule set {directory}: no rule files (*.yaml besides actions.yaml)")
    hasher = hashlib.sha256()
    for path in [actions_path, *rule_files]:
        hasher.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    actions, owners, holdout = _load_actions(actions_path, problems)
    rules: list[Rule] = []
    declared: set[str] = set()  # every rule id written down, including rules with problems
    for path in rule_files:
        rules += _load_rule_file(path, actions, problems, declared)
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in seen:
            first = seen[rule.id]
            problems.add(rule.file, rule.line, rule.id,
                         f"duplicate rule id (first defined at {first.file}:{first.line})")
        seen.setdefault(rule.id, rule)
    for rule in rules:
        for target in rule.suppresses:
            if target not in declared:  # a rule with problems of its own is not "unknown"
                problems.add(rule.file, rule.line, rule.id,
                             f"suppresses unknown rule {target!r}")
    for cycle in _suppression_cycles(rules):
        first = seen[cycle[0]]
        problems.add(first.file, first.line, first.id,
                     f"the rules suppress each other in a cycle ({' -> '.join(cycle)}): when "
                     "all of them fire, every one of them would be dropped; remove one "
                     "'suppresses' entry")
    if problems.items:
        raise problems.error(directory)
    ruleset = RuleSet(tuple(rules), actions, owners, hasher.hexdigest()[:12], str(directory),
                      holdout)
    # A rule set that passes every check above must also compile, or the run would fail.
    for rule_id, error in (refused(ruleset) if refused is not None else {}).items():
        rule = ruleset.rule(rule_id)
        problems.add(rule.file, rule.line, rule.id,
                     f"the rules engine cannot compile this condition ({error}); most "
                     "often it has too many all/any groups (in, not_in and between count "
                     "as groups too): split it into simpler rules")
    if problems.items:
        raise problems.error(directory)
    return ruleset


def _suppression_cycles(rules: list[Rule]) -> list[list[str]]:
    """Each cycle of the 'suppresses' graph once, as rule ids ending where they start."""
    targets = {rule.id: rule.suppresses for rule in rules}
    cycles: list[list[str]] = []
    reported: set[frozenset[str]] = set()

    def walk(path: list[str]) -> None:
        for target in targets.get(path[-1], ()):
            if target == path[0]:
                if frozenset(path) not in reported:
                    reported.add(frozenset(path))
                    cycles.append([*path, target])
            elif target not in path and target in targets:
                walk([*path, target])

    for rule_id in targets:
        walk([rule_id])
    return cycles


def _compose(path: Path, problems: _Problems) -> tuple[Any, yaml.Node | None]:
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yamlfile.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.add(path.name, mark.line + 1 if mark else 1, None,
                     f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return None, None
    return data, node


def _item_lines(node: yaml.Node | None, key: str) -> list[int]:
    """Line numbers (1-based) of the items of the top-level list under ``key``."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key_node, value_node in node.value:
        if key_node.value == key and isinstance(value_node, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value_node.value]
    return []


def _mapping_lines(node: yaml.Node | None, key: str) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key_node, value_node in node.value:
        if key_node.value == key and isinstance(value_node, yaml.MappingNode):
            return {k.value: k.start_mark.line + 1 for k, _ in value_node.value}
    return {}


def _nested_lines(node: yaml.Node | None, key: str, field_name: str) -> dict[str, int]:
    """Per entry of the top-level mapping ``key``, the line of its ``field_name`` (if given)."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key_node, value_node in node.value:
        if key_node.value == key and isinstance(value_node, yaml.MappingNode):
            return {k.value: f.start_mark.line + 1 for k, v in value_node.value
                    if isinstance(v, yaml.MappingNode)
                    for f, _ in v.value if f.value == field_name}
    return {}


def _load_actions(path: Path, problems: _Problems,
                  ) -> tuple[dict[str, ActionSpec], tuple[str, ...], HoldoutPolicy]:
    data, node = _compose(path, problems)
    if data is None:
        return {}, (), HoldoutPolicy()
    if not isinstance(data, Mapping) or not isinstance(data.get("actions"), Mapping):
        problems.add(path.name, 1, None, "must have an 'actions:' mapping")
        return {}, (), HoldoutPolicy()
    owners = tuple(data.get("owners") or ())
    if not owners:
        problems.add(path.name, 1, None, "must list the owner roles under 'owners:'")
    lines = _mapping_lines(node, "actions")
    holdout_lines = _nested_lines(node, "actions", "holdout")
    actions = {}
    for name, spec in data["actions"].items():
        line = lines.get(name, 1)
        if not isinstance(spec, Mapping):
            problems.add(path.name, line, None, f"action {name!r} must be a mapping")
            continue
        for key in sorted(set(spec) - set(ACTION_KEYS) - set(OPTIONAL_ACTION_KEYS)):
            problems.add(path.name, line, None,
                         f"action {name!r}: unknown field {key!r}; allowed: "
                         + ", ".join(ACTION_KEYS + OPTIONAL_ACTION_KEYS))
        if spec.get("email", "digest") not in EMAIL_MODES:
            problems.add(path.name, line, None,
                         f"action {name!r}: email must be one of {', '.join(EMAIL_MODES)}, "
                         f"not {spec.get('email')!r}")
        if spec.get("urgent", False) not in (True, False):
            problems.add(path.name, line, None,
                         f"action {name!r}: urgent must be true or false, not "
                         f"{spec.get('urgent')!r}")
        missing = [k for k in ACTION_KEYS if k not in spec]
        if "title" not in spec and name not in vocabulary.codes("action"):
            missing.insert(0, "title (not a built-in action: give {en: ..., zh: ...})")
        if missing:
            problems.add(path.name, line, None, f"action {name!r}: missing {', '.join(missing)}")
            continue
        if spec["owner"] not in owners:
            problems.add(path.name, line, None,
                         f"action {name!r}: unknown owner role {spec['owner']!r}; "
                         f"known: {', '.join(owners)}")
        title = _title(name, spec.get("title"))
        if not _positive_numbers(spec, ("priority", "due_in_days", "cooldown_days")):
            problems.add(path.name, line, None,
                         f"action {name!r}: priority, due_in_days and cooldown_days must be "
                         "non-negative numbers")
            continue
        share = _holdout_share(name, spec, path.name, holdout_lines.get(name, line), problems)
        actions[name] = ActionSpec(name, str(title.get("en", name)),
                                   str(title.get("zh", title.get("en", name))), spec["owner"],
                                   int(spec["priority"]), float(spec["due_in_days"]),
                                   float(spec["cooldown_days"]),
                                   # urgent: true is email: own (its own email, at once) and,
                                   # by that, never held back by its owner's capacity
                                   "own" if spec.get("urgent") is True
                                   else str(spec.get("email", "digest")), share)
    policy = _holdout_policy(data.get("holdout"), actions, path.name,
                             _mapping_lines(node, "holdout"), problems)
    return actions, owners, policy


def _holdout_share(name: str, spec: Mapping[str, Any], file: str, line: int,
                   problems: _Problems) -> float:
    """An action's ``holdout: 5%`` as a share (0 when absent); refused on the work that is a
    promise, not a bet (rules/holdout.py NEVER_HELD_OUT), with its file and line."""
    if "holdout" not in spec:
        return 0.0
    raw = spec["holdout"]
    share = _percent(raw)
    if share is None:
        problems.add(file, line, None, f"action {name!r}: holdout must be a percentage such as "
                     f"5% (at most {MAX_SHARE:.0%}), not {raw!r}")
        return 0.0
    if share == 0:
        return 0.0
    never = ("it is an escalation to the department" if spec.get("owner") == DEPARTMENT
             or name == "escalate_to_key_account"
             else "complaint follow-ups are a promise to the customer"
             if name == "complaint_follow_up"
             else "SLA reviews are a contractual duty" if name == "sla_review"
             else "it is urgent (urgent: true): urgent work is never held back"
             if spec.get("urgent") is True or spec.get("email") == "own" else None)
    if never is not None or name in NEVER_HELD_OUT:
        problems.add(file, line, None, f"action {name!r}: no holdout allowed ({never}); remove "
                     "'holdout' or set it to 0%")
        return 0.0
    return share


def _percent(raw: Any) -> float | None:
    """``5%``, ``2.5 %`` or 0 as a share in [0, MAX_SHARE]; None for anything else."""
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw == 0:
        return 0.0
    if not isinstance(raw, str) or not raw.strip().endswith("%"):
        return None
    try:
        share = float(raw.strip()[:-1].strip()) / 100
    except ValueError:
        return None
    return share if 0 <= share <= MAX_SHARE else None


def _holdout_policy(raw: Any, actions: Mapping[str, ActionSpec], file: str,
                    lines: Mapping[str, int], problems: _Problems) -> HoldoutPolicy:
    """The ``holdout:`` section (period, max_monthly_revenue) with each action's share."""
    shares = {name: a.holdout for name, a in actions.items() if a.holdout}
    if raw is None:
        return HoldoutPolicy(shares)
    if not isinstance(raw, Mapping):
        problems.add(file, 1, None, "'holdout' must be a mapping with period and "
                     "max_monthly_revenue")
        return HoldoutPolicy(shares)
    for key in sorted(set(raw) - {"period", "max_monthly_revenue"}):
        problems.add(file, lines.get(key, 1), None, f"holdout: unknown field {key!r}; allowed: "
                     "period, max_monthly_revenue")
    period = raw.get("period", "quarter")
    if period not in PERIODS:
        problems.add(file, lines.get("period", 1), None,
                     f"holdout: period must be one of {', '.join(PERIODS)}, not {period!r}")
        period = "quarter"
    cap = raw.get("max_monthly_revenue")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int | float)
                            or cap <= 0):
        problems.add(file, lines.get("max_monthly_revenue", 1), None,
                     f"holdout: max_monthly_revenue must be a positive amount (CNY a month), "
                     f"not {cap!r}")
        cap = None
    return HoldoutPolicy(shares, str(period), float(cap) if cap is not None else None)


def _title(action: str, given: Any) -> dict[str, str]:
    """An action's {en, zh} title: as the file gives it (a string is English), completed from
    the vocabulary for a built-in action; a missing zh falls back to en."""
    title = dict(given) if isinstance(given, Mapping) else {"en": given} if given else {}
    if action in vocabulary.codes("action"):
        for lang in ("en", "zh"):
            title.setdefault(lang, vocabulary.label("action", action, lang))
    return title


def wording(ruleset: RuleSet) -> vocabulary.Wording:
    """The rule set's words for emails: its action titles and its rules' descriptions."""
    return vocabulary.Wording(
        {name: (a.title_en, a.title_zh) for name, a in ruleset.actions.items()},
        {rule.id: (rule.description_en, rule.description_zh) for rule in ruleset.rules})


def _positive_numbers(spec: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    return all(isinstance(spec.get(k), int | float) and not isinstance(spec.get(k), bool)
               and spec[k] >= 0 for k in keys if k in spec)


def _load_rule_file(path: Path, actions: Mapping[str, ActionSpec], problems: _Problems,
                    declared: set[str]) -> list[Rule]:
    data, node = _compose(path, problems)
    if data is None:
        return []
    if not isinstance(data, Mapping) or not isinstance(data.get("rules"), list):
        problems.add(path.name, 1, None, "must have a 'rules:' list")
        return []
    lines = _item_lines(node, "rules")
    rules = []
    for index, raw in enumerate(data["rules"]):
        line = lines[index] if index < len(lines) else 1
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
            declared.add(raw["id"])
        rule = _parse_rule(raw, path.name, line, actions, problems)
        if rule is not None:
            rules.append(rule)
    return rules


def _parse_rule(raw: Any, file: str, line: int, actions: Mapping[str, ActionSpec],
                problems: _Problems) -> Rule | None:
    if not isinstance(raw, Mapping):
        problems.add(file, line, None, "a rule must be a mapping with id, when and then")
        return None
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip():
        problems.add(file, line, None, "rule has no 'id'")
        return None
    before = len(problems.items)
    for key in sorted(set(raw) - set(RULE_KEYS)):
        problems.add(file, line, rule_id, f"unknown field {key!r}; allowed: {', '.join(RULE_KEYS)}")
    description = raw.get("description") or {}
    if isinstance(description, str):
        description = {"en": description}
    if not isinstance(description, Mapping) or not description.get("en"):
        problems.add(file, line, rule_id, "needs a description (at least 'en')")
        description = {}
    if "when" not in raw:
        problems.add(file, line, rule_id, "has no 'when' condition")
        return None
    when = _parse_condition(raw["when"], file, line, rule_id, problems)
    if when is not None:
        for contradiction in _contradictions(when):
            problems.add(file, line, rule_id, f"condition can never be true: {contradiction}")
    then = _parse_then(raw.get("then"), file, line, rule_id, actions, problems)
    kind = raw.get("kind", "risk")
    if kind not in RULE_KINDS:
        problems.add(file, line, rule_id, f"kind must be one of {', '.join(RULE_KINDS)}, not "
                     f"{kind!r}")
    suppresses = raw.get("suppresses") or []
    if isinstance(suppresses, str):
        suppresses = [suppresses]
    if not isinstance(suppresses, list) or not all(isinstance(s, str) for s in suppresses):
        problems.add(file, line, rule_id, "'suppresses' must be a list of rule ids")
        suppresses = []
    if rule_id in suppresses:
        problems.add(file, line, rule_id, "a rule cannot suppress itself")
    if len(problems.items) > before or when is None:
        return None
    return Rule(rule_id, str(description.get("en", "")),
                str(description.get("zh", description.get("en", ""))), when, tuple(then),
                tuple(suppresses), file, line, str(kind))


def _parse_then(raw: Any, file: str, line: int, rule_id: str,
                actions: Mapping[str, ActionSpec], problems: _Problems) -> list[Consequence]:
    if isinstance(raw, str | Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        problems.add(file, line, rule_id, "'then' must list at least one action")
        return []
    out = []
    for item in raw:
        item = {"action": item} if isinstance(item, str) else item
        if not isinstance(item, Mapping):
            problems.add(file, line, rule_id, f"'then' item {item!r} must name an action")
            continue
        for key in sorted(set(item) - set(OVERRIDE_KEYS)):
            problems.add(file, line, rule_id, f"unknown field {key!r} in 'then'; allowed: "
                         + ", ".join(OVERRIDE_KEYS))
        name = str(item.get("action"))
        if name not in actions:
            problems.add(file, line, rule_id, f"unknown action {name!r}; known: "
                         + ", ".join(sorted(actions)))
            continue
        if not _positive_numbers(item, ("priority", "due_in_days", "cooldown_days")):
            problems.add(file, line, rule_id, "priority, due_in_days and cooldown_days must be "
                         "non-negative numbers")
            continue
        every = None
        if "every" in item:
            if "cooldown_days" in item:
                problems.add(file, line, rule_id, f"action {name!r}: give 'every' or "
                             "'cooldown_days', not both (every sets the cooldown)")
                continue
            every = _cadence_days(item["every"])
            if every is None:
                problems.add(file, line, rule_id, f"action {name!r}: every must be a period "
                             f"such as 30d, 2w, 3m or 1y (at most {MAX_CADENCE_DAYS} days), not "
                             f"{item['every']!r}")
                continue
        spec = actions[name]
        cooldown = every if every is not None else float(item.get("cooldown_days",
                                                                    spec.cooldown_days))
        out.append(Consequence(name, int(item.get("priority", spec.priority)),
                               float(item.get("due_in_days", spec.due_in_days)), cooldown,
                               every))
    return out


def _cadence_days(raw: Any) -> float | None:
    """``every``'s period in days: ``30d``, ``2w``, ``3m`` (30 days a month), ``1y`` (365
    days), or a plain number of days; None if it is none of these or out of range."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        days = float(raw)
    elif isinstance(raw, str) and len(raw.strip()) > 1 and raw.strip()[-1] in CADENCE_UNITS:
        number = raw.strip()[:-1].strip()
        if not number.isdigit():
            return None
        days = float(int(number) * CADENCE_UNITS[raw.strip()[-1]])
    else:
        return None
    return days if 0 < days <= MAX_CADENCE_DAYS else None


def _parse_condition(raw: Any, file: str, line: int, rule_id: str,
                     problems: _Problems) -> Condition | None:
    def bad(message: str) -> None:
        problems.add(file, line, rule_id, message)

    if not isinstance(raw, Mapping) or len(raw) != 1:
        bad(f"a condition must be a single 'field: {{op: value}}', 'all', 'any' or 'not', "
            f"not {raw!r}")
        return None
    (key, body), = raw.items()
    if key in ("all", "any"):
        if not isinstance(body, list) or not body:
            bad(f"'{key}' needs a non-empty list of conditions")
            return None
        children = [_parse_condition(c, file, line, rule_id, problems) for c in body]
        if any(c is None for c in children):
            return None
        return Node(key, tuple(c for c in children if c is not None))
    if key == "not":
        child = _parse_condition(body, file, line, rule_id, problems)
        return None if child is None else Node("not", (child,))
    if key not in FIELDS and key not in _SIGNALS.get():
        hint = (" (operator signals are known only with the mapping that declares them: "
                "--mapping FILE)" if str(key).startswith(SIGNAL_PREFIX) and not _SIGNALS.get()
                else "")
        bad(f"unknown field {key!r}{hint}; known fields: "
            f"{', '.join([*FIELDS, *_SIGNALS.get()])}")
        return None
    if not isinstance(body, Mapping):
        body = {"eq": body}
    if len(body) != 1:
        bad(f"field {key!r}: give exactly one operator, not {dict(body)!r}")
        return None
    (op, value), = body.items()
    if op not in OPERATORS:
        bad(f"field {key!r}: unknown operator {op!r}; known: {', '.join(OPERATORS)}")
        return None
    return _check_leaf(Leaf(key, op, value), bad)


def _check_signal_leaf(leaf: Leaf, signal: Signal, bad: Any) -> Leaf | None:
    """An operator signal's condition: a categorical one against its declared levels, a
    boolean one as true/false (1/0); a numeric one is checked as any number field."""
    if not signal.required:
        bad(f"field {leaf.field!r}: the mapping does not declare the signal {signal.name!r} "
            "required, so an account could have no value and the rule no answer; add "
            "'required: true' to its declaration")
        return None
    values = leaf.value if isinstance(leaf.value, list) else [leaf.value]
    if signal.type == "categorical":
        if leaf.op not in ("eq", "ne", "in", "not_in"):
            bad(f"field {leaf.field!r} is categorical: use eq, ne, in or not_in, not "
                f"{leaf.op!r}")
            return None
        for value in values:
            if not isinstance(value, str) or value not in signal.levels:
                bad(f"field {leaf.field!r}: unknown level {value!r}; known levels: "
                    f"{', '.join(signal.levels)}")
                return None
        return _check_leaf(leaf, bad, categorical=True, signal=False)
    if signal.type == "boolean":
        if leaf.op not in ("eq", "ne") or not isinstance(leaf.value, bool | int) or \
                leaf.value not in (0, 1):
            bad(f"field {leaf.field!r} is yes/no: test it with eq or ne and true or false")
            return None
        return Leaf(leaf.field, leaf.op, float(leaf.value))
    return _check_leaf(leaf, bad, signal=False)


def _check_leaf(leaf: Leaf, bad: Any, categorical: bool = False,
                signal: bool = True) -> Leaf | None:
    if signal and leaf.field in _SIGNALS.get():
        return _check_signal_leaf(leaf, _SIGNALS.get()[leaf.field], bad)
    values = leaf.value if leaf.op in ("in", "not_in", "between") else [leaf.value]
    if leaf.op in ("in", "not_in", "between") and not isinstance(leaf.value, list):
        bad(f"field {leaf.field!r}: '{leaf.op}' needs a list, not {leaf.value!r}")
        return None
    if leaf.op == "between" and len(values) != 2:
        bad(f"field {leaf.field!r}: 'between' needs [low, high]")
        return None
    if leaf.field in CATEGORIES or categorical:
        if leaf.op not in ("eq", "ne", "in", "not_in"):
            bad(f"field {leaf.field!r} is a category: use eq, ne, in or not_in, not {leaf.op!r}")
            return None
        allowed = CATEGORIES.get(leaf.field)
        for value in values:
            if not isinstance(value, str):
                bad(f"field {leaf.field!r}: {value!r} must be text")
                return None
            if allowed is not None and value not in allowed:
                bad(f"field {leaf.field!r}: unknown value {value!r}; known: {', '.join(allowed)}")
                return None
        return Leaf(leaf.field, leaf.op, tuple(values) if leaf.op in ("in", "not_in")
                    else leaf.value)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad(f"field {leaf.field!r} is a number: {value!r} is not")
            return None
    if leaf.op == "between":
        low, high = values
        if low > high:
            bad(f"field {leaf.field!r}: between [{low}, {high}] is empty (low > high)")
            return None
        return Leaf(leaf.field, leaf.op, (float(low), float(high)))
    if leaf.op in ("in", "not_in"):
        return Leaf(leaf.field, leaf.op, tuple(float(v) for v in values))
    return Leaf(leaf.field, leaf.op, float(leaf.value))


def _contradictions(condition: Condition) -> list[str]:
    """Empty intervals and clashing categories among the direct leaves of an ``all``."""
    found = []
    if isinstance(condition, Node):
        for child in condition.children:
            found += _contradictions(child)
        if condition.kind == "all":
            found += _clashing_leaves([c for c in condition.children if isinstance(c, Leaf)])
    return found


def _clashing_leaves(items: list[Leaf]) -> list[str]:
    found = []
    by_field: dict[str, list[Leaf]] = {}
    for leaf in items:
        by_field.setdefault(leaf.field, []).append(leaf)
    for name, group in by_field.items():
        if name in CATEGORIES or any(isinstance(v, str) for leaf in group
                                     for v in (leaf.value if isinstance(leaf.value, tuple)
                                               else (leaf.value,))):
            allowed: set[str] | None = None
            for leaf in group:
                if leaf.op in ("eq", "in"):
                    values = {leaf.value} if leaf.op == "eq" else set(leaf.value)
                    allowed = values if allowed is None else allowed & values
            excluded = {v for leaf in group if leaf.op in ("ne", "not_in")
                        for v in ({leaf.value} if leaf.op == "ne" else set(leaf.value))}
            if allowed is not None and not (allowed - excluded):
                found.append(f"no value of {name!r} satisfies all of its conditions")
            continue
        bounds = _Bounds()
        for leaf in group:
            if leaf.op in ("gt", "gte"):
                bounds.raise_low(leaf.value, strict=leaf.op == "gt")
            elif leaf.op in ("lt", "lte"):
                bounds.lower_high(leaf.value, strict=leaf.op == "lt")
            elif leaf.op in ("between", "eq"):
                low, high = leaf.value if leaf.op == "between" else (leaf.value, leaf.value)
                bounds.raise_low(low, strict=False)
                bounds.lower_high(high, strict=False)
        if bounds.empty:
            found.append(f"{name!r} cannot be both above {bounds.low} and below {bounds.high}")
    return found


@dataclass
class _Bounds:
    low: float = -float("inf")
    low_strict: bool = False
    high: float = float("inf")
    high_strict: bool = False

    def raise_low(self, value: float, strict: bool) -> None:
        if value > self.low or (value == self.low and strict):
            self.low, self.low_strict = value, strict

    def lower_high(self, value: float, strict: bool) -> None:
        if value < self.high or (value == self.high and strict):
            self.high, self.high_strict = value, strict

    @property
    def empty(self) -> bool:
        return self.low > self.high or (
            self.low == self.high and (self.low_strict or self.high_strict))
