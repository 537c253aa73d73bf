"""The durable-rules adapter: the only module that imports ``durable``.

It hides the engine's traps (see the engineering notes): rulesets are registered once per process
under a content-hashed name (a changed rule set gets a new name, so it loads without a restart);
definitions are deep-copied (the engine deletes ``run``); every fact is asserted and retracted one
at a time (batch calls race with the engine's timer thread and lose results); a fact that matches
no rule is "no action", not an error; each fact carries a unique ``gid`` so facts never collide.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from durable import engine as durable_engine

from rules.conditions import nnf
from rules.language import Condition, Leaf, RuleSet

_lock = threading.Lock()
_host: _CollectingHost | None = None
_registered: set[str] = set()


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
    return {rule.id: {"all": [{"m": _expression(nnf(rule.when))}], "run": rule.id}
            for rule in ruleset.rules}


def _expression(condition: Condition) -> dict[str, Any]:
    if isinstance(condition, Leaf):
        return _leaf(condition)
    parts = [_expression(child) for child in condition.children]
    if len(parts) == 1:
        return parts[0]
    return {"$and" if condition.kind == "all" else "$or": parts}


def _leaf(leaf: Leaf) -> dict[str, Any]:
    name, op, value = leaf.field, leaf.op, leaf.value
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


def _ensure_registered(ruleset: RuleSet) -> _CollectingHost:
    global _host
    if _host is None:
        _host = _CollectingHost()
    name = ruleset_name(ruleset)
    if name not in _registered:
        _host.set_rulesets({name: copy.deepcopy(to_durable(ruleset))})
        _registered.add(name)
    return _host


def match(ruleset: RuleSet, facts: Iterable[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """(gid, rule id) for every rule each fact satisfies. Facts need a unique int ``gid``."""
    with _lock:
        host = _ensure_registered(ruleset)
        name = ruleset_name(ruleset)
        host.matches = []
        for fact in facts:
            try:
                host.assert_fact(name, dict(fact))
            except durable_engine.MessageNotHandledException:
                continue  # no rule matched: no action for this fact
            host.retract_fact(name, dict(fact))
        matches, host.matches = host.matches, []
    return matches
