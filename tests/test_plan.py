"""The one plan function (flows/plan.py): every entry point that decides goes through it, so they
decide alike and refuse alike."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from kamflow import config
from kamflow.flows.plan import PlanConfig, plan_snapshot
from kamflow.rules import RULES_DIR, load_ruleset, wording
from kamflow.worklist import TaskStore, plan_tasks
from tests.conftest import AS_OF

# conf/pipeline.yaml: the newest billing month may be at most 45 days older than the snapshot
# date; the generated snapshot's newest month is AS_OF's, so this date makes it stale.
STALE_AS_OF = AS_OF + dt.timedelta(days=120)
FRESHNESS = "billing.csv: expect_column_max_to_be_between"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kamflow.cli", *args],
                          env={**os.environ, "KAMFLOW_HOME": str(home)}, capture_output=True,
                          text=True, timeout=600)


def run_flow(prefect_api: str, source: Path, as_of: dt.date):
    from kamflow.flows.retention import retention_run

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        return retention_run(source=str(source), as_of=as_of.isoformat(), return_state=True)


KEY = ["account_id", "action"]
SAME = ["rule_id", "priority", "ruleset_version", "owner_email", "reason"]


def test_run_and_simulate_decide_alike(prefect_api, snapshot_dir, kamflow_home, tmp_path):
    """`kamflow run` and `kamflow simulate` on the same snapshot and configuration make the
    same decisions: same accounts and actions, rule, priority, owner and reason."""
    from tests.test_flow import run_with, summary_markdown

    state, summary, run_id = run_with(prefect_api, snapshot_dir)
    assert state.is_completed(), state.message
    with TaskStore(f"sqlite:///{kamflow_home / 'kamflow.db'}") as store:
        stored = pd.DataFrame([{c: getattr(t, c) for c in (*KEY, *SAME, "value_at_risk",
                                                          "status")}
                               for t in store.list_tasks()])
    target = tmp_path / "decisions.csv"
    result = cli(tmp_path / "simulate-home", "simulate", "--source", str(snapshot_dir),
                 "--rules", str(RULES_DIR), "--as-of", AS_OF.isoformat(), "--json",
                 "--decisions", str(target))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == []
    simulated = pd.read_csv(target, dtype={"account_id": str}, keep_default_na=False)
    # the reason and owner as the task store words them (worklist.plan_tasks)
    titles = {k: en for k, (en, _) in wording(load_ruleset()).items()}
    planned = plan_tasks(simulated, config.load_owners(), titles, dt.datetime.now(dt.UTC))
    assert len(stored) > 50 and len(planned) == len(stored)
    both = stored.merge(planned, on=KEY, how="outer", suffixes=("_run", "_simulate"),
                        indicator=True)
    assert (both["_merge"] == "both").all(), both.loc[both["_merge"] != "both", KEY]
    for column in SAME:
        run_side = both[f"{column}_run"].astype(str)
        simulate_side = both[f"{column}_simulate"].astype(str)
        assert (run_side == simulate_side).all(), (column, both.loc[
            run_side != simulate_side, [*KEY, f"{column}_run", f"{column}_simulate"]].head())
    assert (both["value_at_risk_run"] - both["value_at_risk_simulate"]).abs().max() < 0.01
    # and the same control group: held out in the simulation, a held_out row in the store
    held = both["held_out"].astype(str) == "True"
    assert held.any() and ((both["status"] == "held_out") == held).all()
    # the control group in the run summary, in simulate's output and in `tasks list`
    by_action = both.loc[held, "action"].value_counts().sort_index().to_dict()
    assert summary["held_out_by_action"] == by_action
    assert summary["decisions_held_out"] == summary["tasks_held_out"] == held.sum()
    assert json.loads(result.stdout)["held_out"] == by_action
    assert f"| decisions held out (control group; no task, no email) | {held.sum():,} |" in \
        summary_markdown(prefect_api, run_id)
    listed = cli(kamflow_home, "tasks", "list", "--status", "held_out", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(t["account_id"] + "|" + t["action"] for t in json.loads(listed.stdout)) == \
        sorted(both.loc[held, "account_id"] + "|" + both.loc[held, "action"])
    # the managers' own listing shows their work, not the control group
    default = json.loads(cli(kamflow_home, "tasks", "list", "--json").stdout)
    assert len(default) == len(stored) - held.sum()
    assert all(t["status"] != "held_out" for t in default)


def test_a_stale_snapshot_is_refused_by_every_entry_point(prefect_api, snapshot_dir,
                                                          kamflow_home, tmp_path):
    """A snapshot whose newest billing month is older than the freshness limit is stopped by
    the run, simulate, validate and outcome alike, each naming the freshness expectation."""
    stale = STALE_AS_OF.isoformat()
    state = run_flow(prefect_api, snapshot_dir, STALE_AS_OF)
    assert state.is_failed()
    assert FRESHNESS in state.message and "no task was created" in state.message
    assert not list((kamflow_home / "outbox").glob("*.eml"))
    home = tmp_path / "cli-home"
    refused = {
        "validate": cli(home, "validate", "--source", str(snapshot_dir), "--as-of", stale),
        "simulate": cli(home, "simulate", "--source", str(snapshot_dir), "--rules",
                        str(RULES_DIR), "--as-of", stale),
        "outcome": cli(home, "outcome", "--source", str(snapshot_dir), "--as-of", stale,
                       "--days", "2"),
    }
    for name, result in refused.items():
        assert result.returncode == 3, (name, result.stderr)
        assert FRESHNESS in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr, name
    # and on the fresh date the same snapshot goes on
    assert cli(home, "validate", "--source", str(snapshot_dir), "--as-of",
               AS_OF.isoformat()).returncode == 0


def test_plan_is_the_same_in_pieces(snapshot_dir):
    """The partitioned plan (a scaled-out run) equals the one-piece plan."""
    conf = PlanConfig.load(config.conf_dir())
    whole = plan_snapshot(snapshot_dir, AS_OF, conf)
    pieces = plan_snapshot(snapshot_dir, AS_OF, conf, partitions=3)
    assert whole.decisions is not None and pieces.decisions is not None
    assert len(whole.decisions) > 50
    pd.testing.assert_frame_equal(whole.decisions.reset_index(drop=True),
                                  pieces.decisions.reset_index(drop=True))


def test_simulate_and_outcome_ask_for_the_snapshot_date(snapshot_dir, tmp_path):
    """A tool given a snapshot from elsewhere does not guess its date."""
    home = tmp_path / "home"
    simulate = cli(home, "simulate", "--source", str(snapshot_dir), "--rules", str(RULES_DIR))
    assert simulate.returncode == 2 and "--as-of" in simulate.stderr
    outcome = cli(home, "outcome", "--source", str(snapshot_dir))
    assert outcome.returncode == 2 and "--as-of" in outcome.stderr
    assert "Traceback" not in simulate.stderr + outcome.stderr


@pytest.mark.parametrize("entry", ["flows/retention.py", "kamflow/cli/rules.py",
                                   "flows/outcome.py", "kamflow/cli/validate.py",
                                   "flows/history.py"])
def test_only_the_plan_composes_the_pipeline(entry):
    """No entry point calls validation, scoring or the rules itself (grep finds the
    composition in flows/plan.py alone)."""
    root = Path(__file__).resolve().parent.parent
    text = (root / entry).read_text(encoding="utf-8")
    for call in ("validate_snapshot(", "score_accounts(", "decide(", "read_snapshot(",
                 "build_customer_view("):
        assert call not in text, (entry, call)
    assert "validate_snapshot(" in (root / "flows" / "plan.py").read_text(encoding="utf-8")
