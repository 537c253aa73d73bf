"""The kamflow command line, run as a user runs it (a subprocess, a real Prefect server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import AS_OF


def kamflow(*args: str, home: Path, api: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAMFLOW_HOME": str(home)}
    env.pop("PREFECT_HOME", None)  # the CLI puts it inside KAMFLOW_HOME
    if api:
        env["PREFECT_API_URL"] = api
    return subprocess.run([sys.executable, "-m", "kamflow.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [[], ["generate"], ["demo"], ["run"], ["tasks"],
                                     ["tasks", "list"], ["rules"], ["rules", "check"]])
def test_every_command_has_help(command, tmp_path):
    """`--help` works on every command and describes it."""
    result = kamflow(*command, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: kamflow" in result.stdout.lower() and len(result.stdout.splitlines()) > 3


def test_demo_leaves_tasks_and_emails(tmp_path, prefect_api):
    """`kamflow demo` exits 0, stores tasks and writes .eml files, and says where to look."""
    home = tmp_path / "home"
    result = kamflow("demo", "--accounts", "500", home=home, api=prefect_api)
    assert result.returncode == 0, result.stderr
    assert "tasks created" in result.stdout and str(home / "outbox") in result.stdout
    assert list((home / "outbox").glob("*.eml"))
    listing = kamflow("tasks", "list", "--json", home=home)
    tasks = json.loads(listing.stdout)
    assert tasks and {"id", "account_id", "action", "owner_email", "due_at", "reason",
                      "status"} <= set(tasks[0])
    # capacity (conf/owners.yaml): at most 8 new tasks per manager, the rest queued
    assert {t["status"] for t in tasks} == {"open", "queued"}
    opened: dict[str, int] = {}
    for task in tasks:
        if task["status"] == "open" and task["owner_role"] == "account_manager":
            opened[task["owner_email"]] = opened.get(task["owner_email"], 0) + 1
    assert opened and max(opened.values()) <= 8
    assert "released to their owners" in result.stdout and "queued" in result.stdout


def test_run_twice_keeps_task_and_email_counts(tmp_path, snapshot_dir, prefect_api):
    """Running the same snapshot twice leaves the task and email counts unchanged."""
    home = tmp_path / "home"
    first = kamflow("run", "--source", str(snapshot_dir), "--as-of", AS_OF.isoformat(),
                    home=home, api=prefect_api)
    assert first.returncode == 0, first.stderr
    tasks = len(json.loads(kamflow("tasks", "list", "--json", home=home).stdout))
    emails = len(list((home / "outbox").glob("*.eml")))
    second = kamflow("run", "--source", str(snapshot_dir), "--as-of", AS_OF.isoformat(),
                     home=home, api=prefect_api)
    assert second.returncode == 0, second.stderr
    assert "tasks created: 0" in second.stdout
    assert len(json.loads(kamflow("tasks", "list", "--json", home=home).stdout)) == tasks
    assert len(list((home / "outbox").glob("*.eml"))) == emails


def test_missing_column_exits_non_zero_with_a_clear_message(tmp_path, snapshot_dir, prefect_api):
    """A snapshot whose accounts file lacks a required column stops: message, no traceback,
    no task, no email."""
    home = tmp_path / "home"
    accounts = pd.read_csv(snapshot_dir / "accounts.csv", dtype=str)
    accounts.drop(columns=["contract_end"]).to_csv(snapshot_dir / "accounts.csv", index=False)
    result = kamflow("run", "--source", str(snapshot_dir), "--as-of", AS_OF.isoformat(),
                     home=home, api=prefect_api)
    assert result.returncode == 3
    assert "contract_end" in result.stderr and "no email was sent" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert json.loads(kamflow("tasks", "list", "--json", home=home).stdout) == []
    assert not list((home / "outbox").glob("*.eml"))


@pytest.mark.parametrize("args, expected", [
    (["run", "--source", "/nonexistent/snapshot"], "does not exist"),
    (["run", "--source", ".", "--as-of", "2026-13-40"], "is not a date"),
    (["generate", "--out", "x", "--accounts", "0"], "must be at least 1"),
    (["rules", "check", "/nonexistent/rules"], "actions.yaml is missing"),
    (["run", "--source", ".", "--history-labels", "labels.csv"], "needs --history DIR"),
    (["run", "--source", ".", "--history", "/nonexistent/history"],
     "history snapshot directory /nonexistent/history does not exist"),
])
def test_bad_arguments_get_a_one_line_reason(args, expected, tmp_path):
    """Bad arguments exit non-zero with a reason and no traceback."""
    result = kamflow(*args, home=tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_missing_snapshot_file_is_named(tmp_path, snapshot_dir, prefect_api):
    """A snapshot without billing.csv fails naming the file, with no traceback."""
    (snapshot_dir / "billing.csv").unlink()
    result = kamflow("run", "--source", str(snapshot_dir), home=tmp_path / "home",
                     api=prefect_api)
    assert result.returncode != 0
    assert "billing.csv" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_run_with_a_labelled_history_learns_and_says_so(tmp_path, snapshot_dir, prefect_api):
    """`kamflow run --history DIR` learns churn risk from the past snapshot and its outcomes,
    prints what it learnt with the held-out AUC, and keeps the metrics in the run summary."""
    from kamflow.generate import make_snapshot, write_snapshot

    history = tmp_path / "history"
    write_snapshot(make_snapshot(1200, AS_OF, seed=3), history)
    labels = tmp_path / "outcomes.csv"
    pd.read_csv(history / "ground_truth.csv", dtype=str).rename(
        columns={"account_id": "客户编号", "declining": "流失"}).to_csv(labels, index=False)
    home = tmp_path / "home"
    result = kamflow("run", "--source", str(snapshot_dir), "--as-of", AS_OF.isoformat(),
                     "--history", str(history), "--history-labels", str(labels),
                     "--history-id-column", "客户编号", "--history-label-column", "流失",
                     home=home, api=prefect_api)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("churn risk:"))
    assert "churn model (logistic regression) learnt from" in line and "held-out AUC" in line
    [summary_file] = (home / "reports").glob("*/summary.json")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    learning = summary["churn_learning"]
    assert learning["labels"] == str(labels) and learning["learnt"]["auc"] >= 0.95
    assert line == f"churn risk: {summary['churn_risk_from']}"
    assert json.loads(kamflow("tasks", "list", "--json", home=home).stdout)


def test_run_with_a_bad_history_names_the_file_and_column(tmp_path, snapshot_dir, prefect_api):
    """Labels without the named outcome column stop the run before any task or email, naming
    the labels file and the column, with no traceback."""
    labels = tmp_path / "outcomes.csv"
    labels.write_text("account_id,status\nKA0000001,1\n", encoding="utf-8")
    home = tmp_path / "home"
    result = kamflow("run", "--source", str(snapshot_dir), "--as-of", AS_OF.isoformat(),
                     "--history", str(snapshot_dir), "--history-labels", str(labels),
                     home=home, api=prefect_api)
    assert result.returncode == 2, result.stderr
    assert f"file {labels}, field 'churned'" in result.stderr
    assert "has no column 'churned'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert json.loads(kamflow("tasks", "list", "--json", home=home).stdout) == []
    assert not list((home / "outbox").glob("*.eml"))
