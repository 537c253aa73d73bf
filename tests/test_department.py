"""The department's churn measures: the roster over days of snapshots, and `kamflow report`."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kamflow.cli import main
from kamflow.config import load_scoring
from kamflow.core.errors import ConfigError
from kamflow.expectations import validate_snapshot
from kamflow.flows.charts import png_size
from kamflow.flows.retention import roster_columns, roster_stage, with_scores
from kamflow.generate import make_snapshot, write_snapshot
from kamflow.intake import build_customer_view, read_snapshot
from kamflow.scoring import score_accounts
from kamflow.worklist.measures import Ceilings, department_report

DAYS = 6  # the first snapshot, then five days with departures
GONE_PER_DAY = 3  # below the roster's 5 % partial-export guard


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Six daily snapshots of 400 generated accounts through the roster stage, three known
    accounts leaving each day from the second on: the database and what left when."""
    home = tmp_path_factory.mktemp("department")
    first = dt.datetime.now(dt.UTC).replace(hour=6, minute=0, second=0, microsecond=0) \
        - dt.timedelta(days=DAYS + 1)
    frames = make_snapshot(400, first.date(), seed=21, bad_share=0.0)
    write_snapshot(frames, home / "snapshot")
    snapshot = read_snapshot(home / "snapshot")
    outcome = validate_snapshot(snapshot.tables, snapshot.problems)
    scored = score_accounts(build_customer_view(outcome.accepted, first.date()), load_scoring())
    accounts = frames["accounts"]
    rng = np.random.default_rng(5)
    order = rng.permutation(accounts["account_id"].to_numpy())
    url = f"sqlite:///{home / 'kamflow.db'}"
    gone: list[str] = []
    for day in range(DAYS):
        if day:
            gone += order[(day - 1) * GONE_PER_DAY:day * GONE_PER_DAY].tolist()
        present = accounts.loc[~accounts["account_id"].isin(gone)]
        change = roster_stage.fn(with_scores(roster_columns(present), scored), url,
                                 first + dt.timedelta(days=day))
        assert change.lost == (GONE_PER_DAY if day else 0)
    return {"home": home, "url": url, "first": first, "accounts": accounts, "gone": gone,
            "scored": scored}


def expected_by(played: dict, column: str) -> dict[str, tuple[int, int]]:
    """Counted from the generated data: per group, (accounts at the start, accounts gone)."""
    accounts = played["accounts"].assign(manager_email=played["accounts"]["manager_email"]
                                         .str.lower())
    left = accounts["account_id"].isin(played["gone"])
    return {str(k): (int(len(g)), int(left[g.index].sum()))
            for k, g in accounts.groupby(column)}


def report(played: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
           *args: str) -> str:
    monkeypatch.setenv("KAMFLOW_HOME", str(played["home"]))
    assert main(["report", "--since", f"{played['first']:%Y-%m-%d}", *args]) == 0
    return capsys.readouterr().out


def test_report_json_counts_churn_as_the_generated_data(played, monkeypatch, capsys) -> None:
    """Churn rate, revenue lost and the breakdowns by region and manager match a count made
    from the generated accounts and the known departures."""
    found = json.loads(report(played, monkeypatch, capsys, "--format", "json"))
    total, lost = len(played["accounts"]), len(played["gone"])
    period = found["periods"][-1]
    assert (period["accounts at start"], period["accounts lost"]) == (total, lost)
    assert period["churn rate"] == pytest.approx(lost / total)
    days = (dt.datetime.fromisoformat(period["to"])
            - dt.datetime.fromisoformat(period["from"])) / dt.timedelta(days=365)
    assert period["churn ceiling"] == pytest.approx(0.01 * days)
    assert period["over ceiling"] is True  # 15 of 400 in a week is far over 1 % a year
    scored = played["scored"].set_index("account_id")["avg_monthly_billed"]
    assert period["revenue lost"] == pytest.approx(scored[played["gone"]].sum(), abs=0.01)
    assert period["revenue churn rate"] == pytest.approx(
        scored[played["gone"]].sum() / scored.sum())
    for dimension, column in (("region", "region"), ("manager", "manager_email")):
        expected = expected_by(played, column)
        rows = {r[dimension]: r for r in found["breakdowns"][dimension]}
        assert set(rows) == set(expected)
        for key, (base, gone) in expected.items():
            assert (rows[key]["accounts at start"], rows[key]["accounts lost"]) == (base, gone)
            assert rows[key]["accounts"] == base - gone
            assert rows[key]["churn rate"] == pytest.approx(gone / base)


def test_report_table_shows_the_rate_against_the_ceiling(played, monkeypatch, capsys) -> None:
    """The table names the ceiling, and each manager's line shows churn rate and verdict."""
    out = report(played, monkeypatch, capsys, "--by", "manager")
    assert "Churn ceilings (conf/department.yaml): accounts 1.000 % a year" in out
    assert "By manager" in out and "By region" not in out
    for email, (base, gone) in expected_by(played, "manager_email").items():
        line = next(x for x in out.splitlines() if x.startswith(email + " "))
        assert f"{100 * gone / base:.3f} %" in line
        assert ("OVER" in line) == (gone > 0) and ("within" in line) == (gone == 0)


def test_report_csv_has_one_row_per_region(played, monkeypatch, capsys) -> None:
    """--format csv: the periods, then one row per region with its churn rate."""
    rows = list(csv.DictReader(io.StringIO(
        report(played, monkeypatch, capsys, "--by", "region", "--format", "csv"))))
    regions = {r["group"]: r for r in rows if r["dimension"] == "region"}
    for region, (base, gone) in expected_by(played, "region").items():
        assert float(regions[region]["churn rate"]) == pytest.approx(gone / base)
    assert any(r["group"] == "trailing 12 months" for r in rows if r["dimension"] == "period")


def test_report_refuses_an_unknown_breakdown(played, monkeypatch, capsys) -> None:
    """--by with another name exits 2 with the choices named."""
    monkeypatch.setenv("KAMFLOW_HOME", str(played["home"]))
    assert main(["report", "--by", "city"]) == 2
    assert "--by must be one of region, industry, class, manager" in capsys.readouterr().err


def test_tasks_count_on_time_and_overdue_for_their_owner() -> None:
    """Tasks raised in the period: the shares done by the deadline and open past it."""
    now = pd.Timestamp("2026-11-30T12:00", tz="UTC")
    roster = pd.DataFrame({
        "account_id": ["a", "b"], "manager_email": ["m@x", "m@x"], "manager_name": ["M", "M"],
        "first_seen": [now - pd.Timedelta(days=60)] * 2, "lost_at": [pd.NaT, now],
        "monthly_revenue": [100.0, 300.0], "region": ["north", "south"],
        "industry": ["it", "it"], "value_class": ["high", "low"]})
    day = pd.Timedelta(days=1)
    tasks = pd.DataFrame({
        "account_id": ["a", "a", "b", "b"], "owner_email": ["m@x"] * 4,
        "owner_name": ["M"] * 4, "status": ["done", "done", "open", "open"],
        "created_at": [now - 9 * day] * 4,
        "due_at": [now - 5 * day, now - 5 * day, now - day, now + day],
        "closed_at": [now - 6 * day, now - 4 * day, pd.NaT, pd.NaT]})
    found = department_report(roster, tasks, now.to_pydatetime(),
                              (now - 30 * day).to_pydatetime())
    manager = found.breakdowns["manager"][0]
    assert (manager["tasks raised"], manager["on time share"], manager["overdue share"]) == (
        4, 0.25, 0.25)
    assert (manager["accounts lost"], manager["churn rate"]) == (1, 0.5)
    assert manager["revenue churn rate"] == pytest.approx(0.75)
    south = next(r for r in found.breakdowns["region"] if r["region"] == "south")
    assert (south["tasks raised"], south["overdue share"]) == (2, 0.5)


@pytest.mark.parametrize("doc", [{"ceilings": {"accounts_per_year": 1.5}},
                                 {"ceilings": {"accounts": 0.01}}, {"ceiling": {}}])
def test_bad_ceilings_are_refused_with_the_key_named(doc: dict) -> None:
    """A ceiling out of 0..1 or an unknown key stops with the key named."""
    with pytest.raises(ConfigError, match="ceiling"):
        Ceilings.from_mapping(doc, "conf/department.yaml")


def test_shipped_department_config_loads() -> None:
    """conf/department.yaml holds the 1 % a year ceiling of DOMAIN.md."""
    from kamflow.config import read_yaml
    from kamflow.core.settings import DEFAULT_CONF_DIR

    path = Path(DEFAULT_CONF_DIR) / "department.yaml"
    assert Ceilings.from_mapping(read_yaml(path)).accounts_per_year == 0.01


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_roster_keeps_attributes_as_last_seen(backend: str, tmp_path: Path) -> None:
    """Revenue, region, industry and class follow the latest snapshot; a snapshot without a
    value (a quarantined account) keeps the roster's; a lost account keeps its last values."""
    from kamflow.worklist import TaskStore
    from tests.postgres import temporary_database

    def day(n: int) -> dt.datetime:
        return dt.datetime(2026, 11, 20 + n, 6, tzinfo=dt.UTC)

    def snapshot(rows: list[tuple]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=["account_id", "account_manager", "manager_email",
                                           "region", "industry", "avg_monthly_billed",
                                           "value_class"])

    def check(url: str) -> None:
        with TaskStore(url) as store:
            store.record_accounts(snapshot([
                ("A1", "王", "w@x", "北京", "it", 100.0, "high"),
                *((f"B{i}", "李", "L@x", "上海", "finance", 50.0, "low") for i in range(30))]),
                day(0))
            store.record_accounts(snapshot([
                ("A1", "王", "w@x", "天津", "it", np.nan, None),
                *((f"B{i}", "李", "l@x", "上海", "finance", 60.0, "low") for i in range(1, 30))]),
                day(1))
            rows = store.roster_rows().set_index("account_id")
        assert rows.loc["A1", ["region", "monthly_revenue", "value_class"]].tolist() == [
            "天津", 100.0, "high"]
        assert rows.loc["B1", "monthly_revenue"] == 60.0
        assert rows.loc["B0", "monthly_revenue"] == 50.0 and rows.loc["B0", "lost_at"] == day(1)
        assert rows["manager_email"].isin(["w@x", "l@x"]).all()

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'roster.db'}")
    else:
        with temporary_database() as url:
            check(url)


def test_run_figures_keep_each_runs_headline_for_the_trend(played) -> None:
    """Each run's headline figures are kept (a retried run replaces its row) and come back
    oldest first, as the trend artifact shows them against the ceiling."""
    from kamflow.flows.report import trend_table
    from kamflow.worklist import TaskStore
    from kamflow.worklist.measures import headline

    first = played["first"]
    with TaskStore(played["url"]) as store:
        found = department_report(store.roster_rows(), store.task_rows(first), first
                                  + dt.timedelta(days=DAYS), by=())
        figures = {**headline(found), "accounts_lost": 3, "top_value_share": 0.2,
                   "tasks_created": 7}
        for n in (2, 1, 2):  # run 2 recorded twice (a retry)
            store.record_run_figures(f"run-{n}", first + dt.timedelta(days=n), figures)
        trend = store.run_figures(90)
    assert [f["run_id"] for f in trend] == ["run-1", "run-2"]
    assert trend[0]["churn_rate_12m"] == pytest.approx(len(played["gone"]) / 400)
    assert trend[0]["accounts"] == 400 - len(played["gone"])
    table = trend_table(trend)
    assert table[0]["vs ceiling"] == "OVER" and table[0]["high + secondary value"] == "20.0 %"


def test_each_run_publishes_the_churn_trend(prefect_api, kamflow_home, snapshot_dir) -> None:
    """Two runs: the second run's page has a churn-trend table with both runs, its summary the
    classes' shares of accounts and revenue."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kamflow.flows.retention import retention_run
    from tests.conftest import AS_OF

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        for _ in range(2):
            state = retention_run(source=str(snapshot_dir), as_of=AS_OF.isoformat(),
                                  return_state=True)
            assert state.is_completed(), state.message
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(
                    state.state_details.flow_run_id))])))
    by_key = {a.key: a for a in artifacts}
    trend = by_key["churn-trend"].data
    rows = json.loads(trend) if isinstance(trend, str) else trend
    assert len(rows) == 2 and rows[-1]["vs ceiling"] == "within"  # nobody left
    assert "share of monthly revenue" in by_key["retention-summary"].data
    department = by_key["department"].data  # the trend charts beside the breakdown tables
    images = re.findall(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", department)
    assert len(images) == 2
    assert all(png_size(base64.b64decode(i)) == (640, 260) for i in images)
    for heading in ("## By region", "## By industry", "## By class", "## By manager"):
        assert heading in department
    assert "last 2 runs" in department


# --------------------------------------------------------------------------- days played out
PLAYED_DAYS = 6


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`kamflow generate --days 6`: six daily snapshots of 500 accounts with departures and
    partial churn, each run through intake, scoring and the roster stage as a daily run does.
    The scored frame is given a value at risk (CNY/month) as the scoring branch will."""
    home = tmp_path_factory.mktemp("days")
    first = dt.datetime.now(dt.UTC).replace(hour=6, minute=0, second=0, microsecond=0) \
        - dt.timedelta(days=PLAYED_DAYS + 1)
    out = home / "days"
    assert main(["generate", "--out", str(out), "--accounts", "500", "--as-of",
                 f"{first:%Y-%m-%d}", "--days", str(PLAYED_DAYS), "--seed", "4",
                 "--bad-share", "0", "--leave-rate", "0.01", "--partial-rate", "0.01"]) == 0
    url = f"sqlite:///{home / 'kamflow.db'}"
    for day in range(PLAYED_DAYS):
        folder = out / f"day-{day + 1:02d}"
        as_of = (first + dt.timedelta(days=day)).date()
        snapshot = read_snapshot(folder)
        outcome = validate_snapshot(snapshot.tables, snapshot.problems)
        scored = score_accounts(build_customer_view(outcome.accepted, as_of), load_scoring())
        scored["value_at_risk"] = (scored["avg_monthly_billed"] * 0.1).round(2)
        accounts = snapshot.tables["accounts"]
        roster_stage.fn(with_scores(roster_columns(accounts), scored), url,
                        first + dt.timedelta(days=day))
    return {"home": home, "out": out, "url": url, "first": first}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"account_id": str})


def _monthly_revenue(folder: Path) -> pd.Series:
    """Counted from a day's CSV files: each account's average monthly bill."""
    billing = _read(folder / "billing.csv")
    return billing.groupby("account_id")["billed"].mean().round(2)


def test_report_over_generated_days_matches_the_ground_truth(generated, monkeypatch,
                                                              capsys) -> None:
    """Churn rate (overall, by region, by manager), partial churn, revenue retained and value at
    risk from `kamflow report` match a count made from the generated files and their ground
    truth (departures.csv, revenue_drops.csv)."""
    out = generated["out"]
    accounts = _read(out / "day-01" / "accounts.csv")
    accounts["manager_email"] = accounts["manager_email"].str.lower()
    departures = _read(out / "departures.csv")
    drops = _read(out / "revenue_drops.csv")
    last = out / f"day-{PLAYED_DAYS:02d}"
    assert len(departures) >= 5 and len(drops) >= 3  # something to count
    assert set(departures["day"]) <= set(range(2, PLAYED_DAYS + 1))
    # the last snapshot holds exactly the accounts that did not leave
    assert set(_read(last / "accounts.csv")["account_id"]) == \
        set(accounts["account_id"]) - set(departures["account_id"])
    gone = accounts["account_id"].isin(departures["account_id"])
    partial = accounts["account_id"].isin(drops["account_id"]) & ~gone
    then, now = _monthly_revenue(out / "day-01"), _monthly_revenue(last)
    accounts["then"] = accounts["account_id"].map(then)
    accounts["now"] = accounts["account_id"].map(now).where(~gone, 0.0)

    monkeypatch.setenv("KAMFLOW_HOME", str(generated["home"]))
    monkeypatch.setenv("KAMFLOW_DATABASE_URL", generated["url"])
    assert main(["report", "--since", f"{generated['first']:%Y-%m-%d}", "--format",
                 "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    period = found["periods"][-1]
    assert (period["accounts at start"], period["accounts lost"]) == (len(accounts), gone.sum())
    assert period["churn rate"] == pytest.approx(gone.sum() / len(accounts))
    assert period["partial churn accounts"] == partial.sum()
    assert period["partial churn rate"] == pytest.approx(partial.sum() / len(accounts))
    assert period["value at risk"] == pytest.approx(
        (now[accounts.loc[~gone, "account_id"]] * 0.1).round(2).round(0).sum(), abs=0.5)
    for dimension, column in (("region", "region"), ("manager", "manager_email")):
        rows = {r[dimension]: r for r in found["breakdowns"][dimension]}
        groups = accounts.groupby(column)
        assert set(rows) == set(groups.groups)
        for key, group in groups:
            row, lost = rows[key], gone[group.index]
            assert (row["accounts at start"], row["accounts lost"]) == (len(group), lost.sum())
            assert row["churn rate"] == pytest.approx(lost.sum() / len(group))
            assert row["partial churn accounts"] == partial[group.index].sum()
            assert row["revenue retained"] == pytest.approx(
                group["now"].sum() / group["then"].sum(), rel=1e-6)
    assert period["over ceiling"] is bool(gone.sum() > 0)


def test_report_table_over_generated_days_names_partial_churn(generated, monkeypatch,
                                                              capsys) -> None:
    """The table shows the partial-churn definition and each region's partial churn."""
    monkeypatch.setenv("KAMFLOW_HOME", str(generated["home"]))
    monkeypatch.setenv("KAMFLOW_DATABASE_URL", generated["url"])
    assert main(["report", "--since", f"{generated['first']:%Y-%m-%d}", "--by", "region"]) == 0
    out = capsys.readouterr().out
    assert "fell by more than 50 % of its revenue at the period's start" in out
    assert "partial churn" in out and "revenue retained" in out and "median h to ack" in out


def test_acknowledgement_time_is_the_median_per_group() -> None:
    """Median hours from a task's creation to its first acknowledgement, per manager; tasks
    never acknowledged do not count, a group without any shows none."""
    now = pd.Timestamp("2026-11-30T12:00", tz="UTC")
    roster = pd.DataFrame({
        "account_id": ["a", "b"], "manager_email": ["m@x", "n@x"], "manager_name": ["M", "N"],
        "first_seen": [now - pd.Timedelta(days=60)] * 2,
        "lost_at": pd.Series([pd.NaT] * 2, dtype="datetime64[ns, UTC]"),
        "monthly_revenue": [100.0, 300.0], "region": ["north", "south"],
        "industry": ["it", "it"], "value_class": ["high", "low"]})
    created = now - pd.Timedelta(days=5)
    hours = pd.to_timedelta([2, 4, 30, None], unit="h")
    tasks = pd.DataFrame({
        "account_id": ["a", "a", "a", "b"], "owner_email": ["m@x", "m@x", "m@x", "n@x"],
        "owner_name": ["M", "M", "M", "N"], "status": ["open"] * 4,
        "created_at": [created] * 4, "due_at": [now + pd.Timedelta(days=1)] * 4,
        "closed_at": pd.Series([pd.NaT] * 4, dtype="datetime64[ns, UTC]"),
        "acknowledged_at": created + hours})
    found = department_report(roster, tasks, now.to_pydatetime(),
                              (now - pd.Timedelta(days=30)).to_pydatetime(), by=("manager",))
    rows = {r["manager"]: r for r in found.breakdowns["manager"]}
    assert rows["m@x"]["median hours to acknowledge"] == 4.0
    assert rows["n@x"]["median hours to acknowledge"] is None


def test_partial_churn_threshold_is_configured() -> None:
    """partial_churn.revenue_fall is read from the config, and refused out of 0..1."""
    assert Ceilings.from_mapping({"partial_churn": {"revenue_fall": 0.3}}) \
        .partial_revenue_fall == 0.3
    with pytest.raises(ConfigError, match="partial_churn.revenue_fall"):
        Ceilings.from_mapping({"partial_churn": {"revenue_fall": 2}})


def test_task_rows_carry_the_first_acknowledgement_from_the_history(tmp_path: Path) -> None:
    """task_rows reads each task's first `acknowledged` event (the task history), so the
    report's median hours to acknowledge counts from creation to it; unacknowledged: none."""
    from kamflow.worklist import TaskStore
    from tests.test_worklist import NOW, planned, render

    rows = [("KA1", "care_call", "account_manager", "wang@operator.example"),
            ("KA2", "care_call", "account_manager", "wang@operator.example")]
    with TaskStore(f"sqlite:///{tmp_path / 'tasks.db'}") as store:
        store.raise_tasks(planned(rows), "run-1", render, NOW)
        first = min(t.id for t in store.list_tasks())  # KA1's
        store.transition(first, "ack", NOW + dt.timedelta(hours=3), "wang@operator.example")
        found = store.task_rows(NOW - dt.timedelta(days=1)).set_index("account_id")
    assert found.loc["KA1", "acknowledged_at"] == pd.Timestamp(NOW + dt.timedelta(hours=3))
    assert pd.isna(found.loc["KA2", "acknowledged_at"])
