"""Rule-set simulation: what a change would add and remove, with nothing dispatched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd

from kamflow.rules import RULES_DIR
from kamflow.rules.simulate import compare
from tests.conftest import AS_OF


def decision(account: str, action: str, rule: str, priority: int = 3) -> dict:
    return {"account_id": account, "account_name": f"客户{account}", "action": action,
            "rule_id": rule, "owner_role": "account_manager", "priority": priority,
            "due_in_days": 3.0}


def test_compare_counts_added_removed_and_changed():
    """Decisions only in the proposal are added, only in the current set removed; a different
    rule or priority for the same (account, action) is a change."""
    current = pd.DataFrame([decision("A", "care_call", "r1"), decision("B", "care_call", "r1"),
                            decision("C", "sla_review", "r2")])
    proposed = pd.DataFrame([decision("A", "care_call", "r1"), decision("C", "sla_review", "r2", 1),
                             decision("D", "care_call", "r3"), decision("E", "care_call", "r3")])
    diff = compare(current, proposed, 5, "v1", "v2")
    assert list(diff.added["account_id"]) == ["D", "E"]
    assert list(diff.removed["account_id"]) == ["B"]
    assert list(diff.changed["account_id"]) == ["C"]
    added = diff.by_rule("added")
    assert added == [{"rule": "r3", "action": "care_call", "owner": "account_manager",
                      "accounts": 2, "examples": "D 客户D, E 客户E"}]
    assert "2 added, 1 removed, 1 changed" in diff.markdown()


def test_simulate_command_previews_a_threshold_change(tmp_path, snapshot_dir):
    """Lowering a threshold in YAML shows the added care calls by rule, and dispatches nothing."""
    proposed = tmp_path / "proposed"
    shutil.copytree(RULES_DIR, proposed, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    rules = proposed / "retention.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace(
        "complaints_90d: {gte: 3}", "complaints_90d: {gte: 1}"), encoding="utf-8")
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "kamflow.cli", "simulate", "--source", str(snapshot_dir),
         "--rules", str(proposed), "--as-of", AS_OF.isoformat(), "--json"],
        env={**os.environ, "KAMFLOW_HOME": str(home)}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr
    diff = json.loads(result.stdout)
    assert diff["current_version"] != diff["proposed_version"]
    assert diff["removed"] == []
    assert [r["rule"] for r in diff["added"]] == ["complaints-care-call"]
    assert diff["added"][0]["accounts"] > 0 and diff["added"][0]["examples"]
    assert list((home / "reports" / "simulations").glob("*/simulation.md"))
    assert not (home / "kamflow.db").exists() and not (home / "outbox").exists()


def test_simulate_refuses_a_broken_rule_set(tmp_path, snapshot_dir):
    """A proposed rule set with a typo is refused with file, line and rule id, before any data."""
    proposed = tmp_path / "proposed"
    shutil.copytree(RULES_DIR, proposed, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    rules = proposed / "retention.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace(
        "complaints_90d: {gte: 3}", "complaints_90: {gte: 3}"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "kamflow.cli", "simulate", "--source", str(snapshot_dir),
         "--rules", str(proposed), "--as-of", AS_OF.isoformat()],
        env={**os.environ, "KAMFLOW_HOME": str(tmp_path / "h")},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "retention.yaml:" in result.stderr and "complaints-care-call" in result.stderr
    assert "complaints_90" in result.stderr and "Traceback" not in result.stderr
