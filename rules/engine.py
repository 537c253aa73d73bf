"""The durable-rules adapter: the only module that imports ``durable``.

It hides the engine's traps (see the engineering notes): rulesets are registered once per process
under a content-hashed name (a changed rule set gets a new name, so it loads without a restart);
definitions are deep-copied (the engine deletes ``run``); every fact is asserted and retracted one
at a time (batch calls race with the engine's timer thread and lose results); a fact that matches
no rule is "no action", not an error; each fact carries a unique ``gid`` so facts never collide.

Numbers never reach the engine as numbers: its JSON parser rejects what Python's ``json`` writes for
floats such as ``1e-05`` or ``1e+16`` (an exponent without a decimal point) and infinity, failing
with "error code: 204". Each number is sent as its place among the rule set's constants of that
field (``2k + 1`` for the k-th constant, even codes for the gaps between them), which compares with
every constant exactly as the number does. ``decide`` groups accounts by the same places ("cells").
"""

from __future__ import annotations

import bisect
import copy
import json
import math
import numbers
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import durable_rules_engine
from durable import engine as durable_engine

from kamflow.core.errors import ConfigError
from kamflow.rules.conditions import nnf
from kamflow.rules.language import NUMBERS, Condition, Leaf, RuleSet, leaves

# durable-rules 2.0.28's capacity limits, found by testing: one fact may pass at most 64 of a
# ruleset's tests at once ("error code: 303", e.g. 65 rules, or 65 `any` branches, that hold for
# one account), and ~150 rules sharing one test do not compile ("error code: 107"). So a rule set
# is registered in chunks of at most CHUNK_RULES rules, and a fact that still overflows a chunk
# is asserted again rule by rule.
CHUNK_RULES = 32
_OVERFLOW = "error code: 303"

_lock = threading.Lock()
_host: _CollectingHost | None = None
_durable_names: set[str] = set()


@dataclass(frozen=True)
class _Compiled:
    constants: dict[str, list[float]]  # sorted constants per number field
    chunks: tuple[tuple[str, tuple[str, ...]], ...]  # (durable ruleset name, its rule ids)
    definition: dict[str, Any]  # rule id -> durable rule, for one-rule rulesets on overflow


_registered: dict[str, _Compiled] = {}  # kamflow ruleset name -> its compiled form


class _CollectingHost(durable_engine.Host):
    """Resolves each rule's ``run`` (the rule id) to a callback recording the match."""

    def __init__(self) -> None:
        super().__init__()
        self.matches: list[tuple[int, str]] = []

    def get_action(self, action_name: str) -> Any:
        def record(context: Any) -> None:
            self.matches.append((context.m["gid"], action_name))
        return record


def ruleset_name(ruleset: RuleSet) -> str:
    return f"kamflow_{ruleset.version}"


def to_durable(ruleset: RuleSet) -> dict[str, Any]:
    """The rule set as durable-rules JSON: one rule per rule id, its ``run`` named by the id."""
    constants = number_constants(ruleset)
    return {rule.id: {"all": [{"m": _expression(nnf(rule.when), constants)}], "run": rule.id}
            for rule in ruleset.rules}


def number_constants(ruleset: RuleSet) -> dict[str, list[float]]:
    """The sorted distinct constants each number field is compared with."""
    found: dict[str, set[float]] = {}
    for rule in ruleset.rules:
        for leaf in leaves(rule.when):
            values = leaf.value if isinstance(leaf.value, tuple) else (leaf.value,)
            # A number field, or an operator signal tested with numbers (signal_<name>).
            if leaf.field in NUMBERS or all(isinstance(v, float) for v in values):
                found.setdefault(leaf.field, set()).update(values)
    return {name: sorted(values) for name, values in found.items()}


def place(value: Any, constants: list[float]) -> int:
    """``value``'s place among sorted ``constants``: 2k+1 on the k-th, 2k just below it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{value!r} is not a number")
    index = bisect.bisect_left(constants, value)
    return 2 * index + int(index < len(constants) and constants[index] == value)


def _expression(condition: Condition, constants: Mapping[str, list[float]]) -> dict[str, Any]:
    if isinstance(condition, Leaf):
        return _leaf(condition, constants)
    gate = "$and" if condition.kind == "all" else "$or"
    parts: list[dict[str, Any]] = []
    for child in condition.children:
        part = _expression(child, constants)
        # An $and inside an $and (a `between`, a `not_in`, a nested `all`) is the same $and: the
        # engine compiles at most 15 $and/$or groups per rule, so none is spent needlessly.
        parts += part[gate] if list(part) == [gate] else [part]
    if len(parts) == 1:
        return parts[0]
    return {gate: parts}


def _leaf(leaf: Leaf, constants: Mapping[str, list[float]]) -> dict[str, Any]:
    name, op, value = leaf.field, leaf.op, leaf.value
    if name in constants:
        value = tuple(place(v, constants[name]) for v in value) if isinstance(value, tuple) \
            else place(value, constants[name])
    simple = {"ne": "$neq", "lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte"}
    if op == "eq":
        return {name: value}
    if op in simple:
        return {simple[op]: {name: value}}
    if op == "in":
        options = [{name: v} for v in value]
        return options[0] if len(options) == 1 else {"$or": options}
    if op == "not_in":
        options = [{"$neq": {name: v}} for v in value]
        return options[0] if len(options) == 1 else {"$and": options}
    if op == "between":
        return {"$and": [{"$gte": {name: value[0]}}, {"$lte": {name: value[1]}}]}
    raise ValueError(f"unknown operator {op!r}")


def refused_rules(ruleset: RuleSet) -> dict[str, str]:
    """Rules the engine cannot compile (e.g. too many all/any groups), each with its error."""
    refused = {}
    with _lock:
        for rule_id, definition in to_durable(ruleset).items():
            body = {key: value for key, value in definition.items() if key != "run"}
            try:
                handle = durable_rules_engine.create_ruleset(
                    "kamflow_check", json.dumps({rule_id: body}, ensure_ascii=False))
            except durable_rules_engine.error as exc:
                refused[rule_id] = str(exc)
            else:
                durable_rules_engine.delete_ruleset(handle)
    return refused


def _register(name: str, definition: Mapping[str, Any]) -> str:
    """Register a durable ruleset once per process (the engine cannot redefine a name)."""
    global _host
    if _host is None:
        _host = _CollectingHost()
    if name not in _durable_names:
        _host.set_rulesets({name: copy.deepcopy(dict(definition))})
        _durable_names.add(name)
    return name


def _ensure_registered(ruleset: RuleSet) -> _Compiled:
    name = ruleset_name(ruleset)
    if name not in _registered:
        definition = to_durable(ruleset)
        ids = list(definition)
        chunks = []
        for start in range(0, len(ids), CHUNK_RULES):
            part = ids[start:start + CHUNK_RULES]
            chunk = _register(f"{name}_{start // CHUNK_RULES}", {i: definition[i] for i in part})
            chunks.append((chunk, tuple(part)))
        _registered[name] = _Compiled(number_constants(ruleset), tuple(chunks), definition)
    return _registered[name]


def _encode(fact: Mapping[str, Any], fields: tuple[str, ...],
            constants: Mapping[str, list[float]]) -> dict[str, Any]:
    """The fields the rules test (numbers as places) and the ``gid``; nothing else."""
    encoded = {"gid": fact["gid"]}
    for name in fields:
        value = fact[name]
        if name in constants:
            try:
                value = place(value, constants[name])
            except ValueError:
                raise ValueError(f"field {name!r} of fact {fact['gid']} is {value!r}, not a "
                                 "number") from None
        encoded[name] = value
    return encoded


def _assert(host: _CollectingHost, name: str, fact: dict[str, Any]) -> bool:
    """Assert then retract one fact; False if it overflowed the engine (nothing was recorded)."""
    try:
        host.assert_fact(name, fact)
    except durable_engine.MessageNotHandledException:
        return True  # no rule matched: no action for this fact
    except durable_rules_engine.error as exc:
        if _OVERFLOW in str(exc):
            return False  # the engine rejected the fact whole: no action ran, nothing is kept
        raise
    host.retract_fact(name, fact)
    return True


def match(ruleset: RuleSet, facts: Iterable[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """(gid, rule id) for every rule each fact satisfies. Facts need a unique int ``gid``."""
    fields = ruleset.fields
    with _lock:
        compiled = _ensure_registered(ruleset)
        host = _host
        assert host is not None
        host.matches = []
        for fact in facts:
            encoded = _encode(fact, fields, compiled.constants)
            for chunk, rule_ids in compiled.chunks:
                if _assert(host, chunk, encoded):
                    continue
                for index, rule_id in enumerate(rule_ids):  # overflow: one rule at a time
                    single = _register(f"{chunk}_{index}", {rule_id: compiled.definition[rule_id]})
                    if not _assert(host, single, encoded):
                        rule = ruleset.rule(rule_id)
                        raise ConfigError(
                            f"{rule.file}:{rule.line}, rule {rule_id!r}: more than 64 of its "
                            "any/in branches hold at once for one account, more than the rules "
                            "engine can evaluate; split it into simpler rules")
        matches, host.matches = host.matches, []
    return matches
