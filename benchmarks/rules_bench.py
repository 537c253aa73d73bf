"""Rules benchmark: kamflow's engine path against plain durable-rules and zen-engine.

Same rule set (the shipped rules plus benchmarks/rules30/extra.yaml: 30+ rules), same scored
accounts, collect semantics (every matching rule), compared before suppression:
- kamflow: `rules.decide.match_rules` (distinct threshold cells decided once by durable-rules);
  `decide_accounts_per_s` adds suppression, explanations and the decision table;
- durable per fact: one assert + retract per account through the same durable ruleset;
- zen-engine: the rules as one JDM decision table (hit policy collect), best of three modes
  (decision.evaluate per account, engine.evaluate_batch, one compiled expression per rule).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

AS_OF = dt.date(2026, 11, 25)
HERE = Path(__file__).resolve().parent


def scored_accounts(accounts: int) -> pd.DataFrame:
    from kamflow.config import load_scoring
    from kamflow.generate import make_snapshot, typed_tables
    from kamflow.intake import build_customer_view
    from kamflow.scoring import score_accounts

    frames = make_snapshot(accounts, AS_OF, seed=7, bad_share=0.0)
    return score_accounts(build_customer_view(typed_tables(frames), AS_OF), load_scoring())


def ruleset_30() -> Any:
    from kamflow.rules import RULES_DIR, load_ruleset

    work = Path(tempfile.mkdtemp(prefix="kamflow-rules30-"))
    for path in RULES_DIR.glob("*.yaml"):
        shutil.copy(path, work / path.name)
    shutil.copy(HERE / "rules30" / "extra.yaml", work / "zz-extra.yaml")
    return load_ruleset(work)


def zen_expression(condition: Any) -> str:
    from kamflow.rules.language import Leaf

    if isinstance(condition, Leaf):
        name, op, value = condition.field, condition.op, condition.value

        def lit(v: Any) -> str:
            return f"'{v}'" if isinstance(v, str) else repr(float(v))
        symbol = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
        if op in symbol:
            return f"{name} {symbol[op]} {lit(value)}"
        if op == "in":
            return f"{name} in [{', '.join(lit(v) for v in value)}]"
        if op == "not_in":
            return f"not ({name} in [{', '.join(lit(v) for v in value)}])"
        return f"({name} >= {lit(value[0])} and {name} <= {lit(value[1])})"
    parts = [f"({zen_expression(c)})" for c in condition.children]
    if condition.kind == "not":
        return f"not {parts[0]}"
    return (" and " if condition.kind == "all" else " or ").join(parts)


def zen_decision_table(ruleset: Any) -> dict[str, Any]:
    """One decision table: a row per rule, its condition as a full expression, collect."""
    rules = [{"_id": f"r{i}", "c0": zen_expression(rule.when), "o0": f'"{rule.id}"'}
             for i, rule in enumerate(ruleset.rules)]
    return {"nodes": [
        {"id": "in", "type": "inputNode", "name": "accounts", "position": {"x": 0, "y": 0}},
        {"id": "table", "type": "decisionTableNode", "name": "retention",
         "position": {"x": 200, "y": 0},
         "content": {"hitPolicy": "collect", "rules": rules,
                     "inputs": [{"id": "c0", "name": "condition"}],
                     "outputs": [{"id": "o0", "name": "rule", "field": "rule"}]}},
        {"id": "out", "type": "outputNode", "name": "out", "position": {"x": 400, "y": 0}}],
        "edges": [{"id": "e1", "sourceId": "in", "targetId": "table", "type": "edge"},
                  {"id": "e2", "sourceId": "table", "targetId": "out", "type": "edge"}]}


def run(accounts: int) -> dict[str, Any]:
    import json

    import zen

    from kamflow.rules import decide, engine
    from kamflow.rules.decide import match_rules

    scored = scored_accounts(accounts)
    ruleset = ruleset_30()
    position = {rule.id: i for i, rule in enumerate(ruleset.rules)}
    fields = list(ruleset.fields)
    engine.match(ruleset, [])  # register the ruleset outside the timings

    started = time.perf_counter()
    kamflow = match_rules(scored, ruleset)
    kamflow_s = time.perf_counter() - started
    started = time.perf_counter()
    decisions = decide(scored, ruleset)
    decide_s = time.perf_counter() - started

    # Plain durable-rules: every account is a fact (a sample when the population is large).
    sample = min(accounts, 100_000)
    records = scored[fields].iloc[:sample].to_dict("records")
    for gid, record in enumerate(records):
        record["gid"] = gid
    started = time.perf_counter()
    per_fact = engine.match(ruleset, records)
    durable_s = time.perf_counter() - started
    durable = np.zeros((len(ruleset.rules), sample), dtype=bool)
    for gid, rule_id in per_fact:
        durable[position[rule_id], gid] = True

    # zen-engine, best of three evaluation modes, on a smaller sample (it is far slower here).
    zen_sample = min(sample, 20_000)
    inputs = scored[fields].iloc[:zen_sample].to_dict("records")
    content = json.dumps(zen_decision_table(ruleset))
    zen_modes: dict[str, float] = {}
    zen_matrix = np.zeros((len(ruleset.rules), zen_sample), dtype=bool)

    decision = zen.ZenEngine().create_decision(content)
    started = time.perf_counter()
    for i, account in enumerate(inputs):
        for hit in decision.evaluate(account)["result"]:
            zen_matrix[position[hit["rule"]], i] = True
    zen_modes["decision_evaluate"] = zen_sample / (time.perf_counter() - started)

    batch_engine = zen.ZenEngine({"loader": lambda key: content})
    started = time.perf_counter()
    answers = batch_engine.evaluate_batch([{"key": "t", "context": a} for a in inputs])
    zen_modes["engine_evaluate_batch"] = zen_sample / (time.perf_counter() - started)
    batch_matrix = np.zeros_like(zen_matrix)
    for i, answer in enumerate(answers):
        for hit in answer["data"]["result"]:
            batch_matrix[position[hit["rule"]], i] = True

    compiled = [zen.compile_expression(zen_expression(rule.when)) for rule in ruleset.rules]
    compiled_matrix = np.zeros_like(zen_matrix)
    started = time.perf_counter()
    for i, account in enumerate(inputs):
        for r, expression in enumerate(compiled):
            compiled_matrix[r, i] = bool(expression.evaluate(account))
    zen_modes["compiled_expressions"] = zen_sample / (time.perf_counter() - started)
    zen_agree = bool(np.array_equal(zen_matrix, batch_matrix)
                     and np.array_equal(zen_matrix, compiled_matrix))

    identical = bool(np.array_equal(kamflow[:, :sample], durable)
                     and np.array_equal(durable[:, :zen_sample], zen_matrix) and zen_agree)
    return {"benchmark": "rules", "accounts": accounts, "rules": len(ruleset.rules),
            "accounts_per_s": round(accounts / kamflow_s),
            "decide_accounts_per_s": round(accounts / decide_s),
            "durable_per_fact_per_s": round(sample / durable_s),
            "zen_engine_per_s": round(max(zen_modes.values())),
            "zen_engine_modes_per_s": {k: round(v) for k, v in zen_modes.items()},
            "compared_accounts": sample, "zen_compared_accounts": zen_sample,
            "identical": identical,
            "matches": int(kamflow.sum()), "decisions": len(decisions)}
