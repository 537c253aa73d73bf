"""Tests for kamflow.generate: the deterministic sample-snapshot generator."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from kamflow.generate import (
    COMPLAINT_CATEGORIES,
    INDUSTRIES,
    REGIONS,
    generate_snapshot,
    make_snapshot,
    write_snapshot,
)

AS_OF = dt.date(2024, 6, 15)
N = 5_000

COLUMNS = {
    "accounts": [
        "account_id", "name_zh", "name_en", "industry", "region", "account_manager",
        "manager_email", "contract_start", "contract_end", "products_held", "new_services",
        "employees", "cost_to_serve", "last_contact_date",
    ],
    "billing": ["account_id", "month", "billed", "paid"],
    "complaints": ["complaint_id", "account_id", "opened_date", "category"],
    "sla_incidents": ["incident_id", "account_id", "start_date", "outage_hours", "sla_breach"],
    "ground_truth": ["account_id", "declining"],
}
DATE_COLUMNS = {
    "accounts": ["contract_start", "contract_end", "last_contact_date"],
    "complaints": ["opened_date"],
    "sla_incidents": ["start_date"],
}
TS = pd.Timestamp(AS_OF)


@pytest.fixture(scope="module")
def snap():
    return make_snapshot(N, AS_OF, seed=7, bad_share=0.005)


@pytest.fixture(scope="module")
def clean():
    return make_snapshot(N, AS_OF, seed=7, bad_share=0.0)


def _assert_snapshots_equal(a, b):
    assert list(a) == list(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def _monthly(frames):
    """Billed amounts of real accounts as an account x month table."""
    billing = frames["billing"]
    good = billing[billing["account_id"].isin(frames["accounts"]["account_id"])]
    return good.pivot(index="account_id", columns="month", values="billed").sort_index(axis=1)


def _days_before(series):
    return (TS - series).dt.days


# --------------------------------------------------------------------------- determinism
def test_same_arguments_give_identical_frames(snap):
    """The same (accounts, as_of, seed, bad_share) reproduces every frame exactly."""
    _assert_snapshots_equal(snap, make_snapshot(N, AS_OF, seed=7, bad_share=0.005))


def test_different_seed_gives_different_frames(snap):
    """Another seed changes the data (amounts, names, decliners)."""
    other = make_snapshot(N, AS_OF, seed=8, bad_share=0.005)
    assert not snap["billing"]["billed"].equals(other["billing"]["billed"])
    assert not snap["accounts"]["name_zh"].equals(other["accounts"]["name_zh"])
    assert not snap["ground_truth"]["declining"].equals(other["ground_truth"]["declining"])


def test_good_data_does_not_depend_on_bad_share(snap, clean):
    """Bad rows are drawn last: apart from them, bad_share=0 and bad_share>0 agree."""
    acc, acc0 = snap["accounts"], clean["accounts"]
    same = (acc["industry"] != "unknown") & acc["manager_email"].notna()
    pd.testing.assert_frame_equal(acc[same], acc0[same])
    n_good = 12 * N
    b, b0 = snap["billing"].iloc[:n_good], clean["billing"]
    assert (b["billed"].abs() == b0["billed"]).all()
    for name in ("complaints", "sla_incidents", "ground_truth"):
        pd.testing.assert_frame_equal(snap[name], clean[name])


# --------------------------------------------------------------------------- shape
def test_returns_the_five_tables_with_exact_columns(snap):
    """make_snapshot returns exactly the contract's tables, each with exactly its columns."""
    assert set(snap) == set(COLUMNS)
    for name, columns in COLUMNS.items():
        assert list(snap[name].columns) == columns, name


def test_row_counts(snap, clean):
    """One accounts/ground_truth row per account; 12 billing rows per account plus orphans."""
    for frames in (snap, clean):
        assert len(frames["accounts"]) == N
        assert len(frames["ground_truth"]) == N
    orphans = ~snap["billing"]["account_id"].isin(snap["accounts"]["account_id"])
    assert orphans.sum() >= 1
    assert len(snap["billing"]) == 12 * N + orphans.sum()
    assert len(clean["billing"]) == 12 * N
    assert clean["billing"].groupby("account_id").size().eq(12).all()


def test_ids_are_unique_and_well_formed(snap):
    """account_id is KA + 7 digits and unique; complaint/incident ids unique C…/I… numbers."""
    ids = snap["accounts"]["account_id"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"KA\d{7}").all()
    assert ids.iloc[0] == "KA0000001"
    assert (snap["ground_truth"]["account_id"] == ids).all()
    assert snap["complaints"]["complaint_id"].is_unique
    assert snap["complaints"]["complaint_id"].str.fullmatch(r"C\d+").all()
    assert snap["sla_incidents"]["incident_id"].is_unique
    assert snap["sla_incidents"]["incident_id"].str.fullmatch(r"I\d+").all()


def test_billing_covers_the_12_months_before_as_of_month(snap):
    """Billing months are the 12 calendar months before as_of's month, as YYYY-MM."""
    months = sorted(snap["billing"]["month"].unique())
    expected = [str(p) for p in pd.period_range("2023-06", "2024-05", freq="M")]
    assert months == expected


# --------------------------------------------------------------------------- values
def test_account_values_in_range(clean):
    """Good account rows respect the documented types and ranges."""
    a = clean["accounts"]
    assert a.drop(columns=["name_en", "last_contact_date"]).notna().all().all()
    assert set(a["industry"]) <= set(INDUSTRIES)
    assert set(a["region"]) == set(REGIONS)
    assert a["name_zh"].str.contains(r"[\u4e00-\u9fff]").all()
    assert a["account_manager"].str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()
    assert a["manager_email"].str.fullmatch(r"[a-z]+\.[a-z]+\.\d+@operator\.example").all()
    assert 0.0 < a["name_en"].isna().mean() < 0.2
    start, end = _days_before(a["contract_start"]), _days_before(a["contract_end"])
    assert start.between(365, 12 * 365 + 3).all()
    assert (-end).between(-30, 3 * 366).all()
    assert a["products_held"].between(1, 12).all() and a["products_held"].median() <= 3
    assert a["new_services"].between(0, 5).all()
    assert (a["employees"] >= 1).all() and a["employees"].max() > 20 * a["employees"].median()
    assert (a["cost_to_serve"] >= 0).all()
    contact = a["last_contact_date"]
    assert 0.015 < contact.isna().mean() < 0.05
    assert (contact.dropna() < TS).all()


def test_managers_about_one_per_150_accounts_with_stable_email(clean):
    """About accounts/150 managers (at least 3); each manager has exactly one email."""
    a = clean["accounts"]
    emails = a.groupby("manager_email")["account_manager"].nunique()
    assert (emails == 1).all()
    assert a["manager_email"].nunique() == round(N / 150)
    small = make_snapshot(50, AS_OF, bad_share=0.0)["accounts"]
    assert small["manager_email"].nunique() == 3


def test_industry_mix(clean):
    """Industries follow the documented weights (enterprise ~35 %, military ~3 %)."""
    share = clean["accounts"]["industry"].value_counts(normalize=True)
    assert share["enterprise"] == pytest.approx(0.35, abs=0.03)
    assert share["finance"] == pytest.approx(0.12, abs=0.02)
    assert share["military"] == pytest.approx(0.03, abs=0.01)


def test_billing_values_in_range(clean):
    """Good billing rows: amounts >= 0 with 2 decimals, paid <= billed, heavy-tailed revenue."""
    b = clean["billing"]
    assert (b["billed"] >= 0).all() and (b["paid"] >= 0).all()
    assert (b["paid"] <= b["billed"]).all()
    for col in ("billed", "paid"):
        assert np.allclose(b[col], b[col].round(2), rtol=0, atol=1e-9)
    per_account = b.groupby("account_id")["billed"].mean()
    assert 10_000 < per_account.median() < 20_000
    assert per_account.mean() > 1.3 * per_account.median()


def test_event_values_in_range(snap):
    """Complaints and SLA incidents fall in the year before as_of and reference real accounts."""
    ids = set(snap["accounts"]["account_id"])
    c, s = snap["complaints"], snap["sla_incidents"]
    assert _days_before(c["opened_date"]).between(1, 365).all()
    assert _days_before(s["start_date"]).between(1, 365).all()
    assert set(c["category"]) <= set(COMPLAINT_CATEGORIES)
    assert set(c["account_id"]) <= ids and set(s["account_id"]) <= ids
    assert (s["outage_hours"] >= 0).all()
    assert np.allclose(s["outage_hours"], s["outage_hours"].round(1), rtol=0, atol=1e-9)
    assert set(s["sla_breach"]) <= {0, 1}
    assert c["opened_date"].is_monotonic_increasing


# --------------------------------------------------------------------------- decline
def test_declining_share_is_about_12_percent(snap):
    """ground_truth marks round(12 %) of the accounts as declining, as int 0/1."""
    d = snap["ground_truth"]["declining"]
    assert set(d) == {0, 1}
    assert d.sum() == round(0.12 * N)


def test_decliners_revenue_falls_in_the_last_3_months(clean):
    """Decliners' last-3-month revenue is well below their earlier months; healthy stay flat."""
    monthly = _monthly(clean)
    ratio = monthly.iloc[:, -3:].mean(axis=1) / monthly.iloc[:, :9].mean(axis=1)
    declining = clean["ground_truth"].set_index("account_id")["declining"].reindex(ratio.index)
    assert ratio[declining == 1].median() < 0.85
    assert ratio[declining == 1].mean() < ratio[declining == 0].mean() - 0.15
    assert ratio[declining == 0].median() == pytest.approx(1.0, abs=0.05)


def test_decliners_show_more_warning_signals(clean):
    """Decliners have more recent complaints, more arrears and longer silences than healthy."""
    truth = clean["ground_truth"].set_index("account_id")["declining"]
    c = clean["complaints"]
    recent = c[_days_before(c["opened_date"]) <= 90].groupby("account_id").size()
    recent = recent.reindex(truth.index, fill_value=0)
    assert recent[truth == 1].mean() > 3 * recent[truth == 0].mean()
    assert recent[truth == 0].mean() == pytest.approx(0.2, abs=0.08)
    b = clean["billing"]
    arrears = (b["paid"] < 0.9 * b["billed"]).groupby(b["account_id"]).any().reindex(truth.index)
    assert arrears[truth == 1].mean() > 0.3 > 0.05 > arrears[truth == 0].mean()
    a = clean["accounts"].set_index("account_id")
    silent = _days_before(a["last_contact_date"]) > 120
    assert silent[truth == 1].mean() > 3 * silent[truth == 0].mean()
    s = clean["sla_incidents"]
    breaches = s[(_days_before(s["start_date"]) <= 90) & (s["sla_breach"] == 1)]
    with_breach = truth.index.isin(breaches["account_id"])
    assert with_breach[truth.values == 1].mean() > 3 * with_breach[truth.values == 0].mean()


# --------------------------------------------------------------------------- bad rows
def _bad_counts(frames):
    a, b = frames["accounts"], frames["billing"]
    return {
        "negative_billed": int((b["billed"] < 0).sum()),
        "blank_email": int(a["manager_email"].isna().sum()),
        "unknown_industry": int((~a["industry"].isin(INDUSTRIES)).sum()),
        "orphan_billing": int((~b["account_id"].isin(a["account_id"])).sum()),
    }


def test_bad_rows_planted_when_bad_share_positive(snap):
    """With bad_share>0 each kind of bad row is present, about bad_share of accounts in all."""
    counts = _bad_counts(snap)
    assert all(v >= 1 for v in counts.values()), counts
    assert sum(counts.values()) == pytest.approx(0.005 * N, abs=4)
    assert set(snap["accounts"]["industry"]) - set(INDUSTRIES) == {"unknown"}
    orphans = snap["billing"].loc[~snap["billing"]["account_id"].isin(
        snap["accounts"]["account_id"]), "account_id"]
    assert orphans.iloc[0] == "KA9999999x"


def test_at_least_one_of_each_bad_row_from_200_accounts():
    """From 200 accounts, any bad_share>0 plants at least one bad row of each kind."""
    counts = _bad_counts(make_snapshot(200, AS_OF, bad_share=0.0001))
    assert all(v == 1 for v in counts.values()), counts


def test_no_bad_rows_when_bad_share_is_zero(clean):
    """bad_share=0 yields a fully valid snapshot."""
    assert _bad_counts(clean) == dict.fromkeys(_bad_counts(clean), 0)


# --------------------------------------------------------------------------- writing
def _read_back(path, name):
    return pd.read_csv(path / f"{name}.csv", encoding="utf-8",
                       parse_dates=DATE_COLUMNS.get(name, []), date_format="%Y-%m-%d")


def test_write_snapshot_round_trips_utf8_csv(tmp_path):
    """write_snapshot writes UTF-8 CSVs that pandas reads back equal, Chinese names intact."""
    frames = make_snapshot(300, AS_OF, seed=3)
    out = tmp_path / "nested" / "snapshot"
    rows = write_snapshot(frames, out)
    assert rows == {name: len(df) for name, df in frames.items()}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.csv" for n in COLUMNS)
    for name, frame in frames.items():
        back = _read_back(out, name)
        assert list(back.columns) == COLUMNS[name]
        for col in DATE_COLUMNS.get(name, []):  # compare dates at one resolution
            back[col] = back[col].astype("datetime64[s]")
        pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert _read_back(out, "accounts")["name_zh"].str.contains(r"[\u4e00-\u9fff]").all()


def test_written_text_layout(tmp_path):
    """Files have a plain header, YYYY-MM-DD dates, YYYY-MM months and blanks for missing."""
    frames = make_snapshot(300, AS_OF, seed=3)
    write_snapshot(frames, tmp_path)
    text = (tmp_path / "accounts.csv").read_bytes().decode("utf-8")
    lines = text.splitlines()
    assert lines[0] == ",".join(COLUMNS["accounts"])
    assert "\r" not in text and len(lines) == 301
    assert re.search(r",\d{4}-\d{2}-\d{2},\d{4}-\d{2}-\d{2},", lines[1])
    missing = frames["accounts"]["last_contact_date"].isna().to_numpy()
    row = int(np.flatnonzero(missing)[0])
    assert lines[1 + row].endswith(",")  # blank last_contact_date
    billing = (tmp_path / "billing.csv").read_text(encoding="utf-8").splitlines()
    assert billing[0] == "account_id,month,billed,paid"
    assert re.fullmatch(r"KA0000001,2023-06,\d+(\.\d{1,2})?,\d+(\.\d{1,2})?", billing[1])
    sla = (tmp_path / "sla_incidents.csv").read_text(encoding="utf-8").splitlines()
    assert re.fullmatch(r"I\d+,KA\d{7},\d{4}-\d{2}-\d{2},\d+(\.\d)?,[01]", sla[1])


def test_generate_snapshot_is_make_plus_write(tmp_path):
    """generate_snapshot writes the same files as make_snapshot + write_snapshot."""
    rows = generate_snapshot(tmp_path / "a", 250, AS_OF, seed=5, bad_share=0.01)
    rows_b = write_snapshot(make_snapshot(250, AS_OF, seed=5, bad_share=0.01), tmp_path / "b")
    assert rows == rows_b
    for name in COLUMNS:
        assert (tmp_path / "a" / f"{name}.csv").read_bytes() == \
            (tmp_path / "b" / f"{name}.csv").read_bytes()


def test_write_snapshot_overwrites_and_leaves_no_temp_files(tmp_path):
    """Writing twice replaces the files and leaves only the <name>.csv files behind."""
    write_snapshot(make_snapshot(100, AS_OF, seed=1), tmp_path)
    write_snapshot(make_snapshot(50, AS_OF, seed=2), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.csv" for n in COLUMNS)
    assert len(pd.read_csv(tmp_path / "accounts.csv")) == 50


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, error", [
    ({"accounts": 0}, ValueError),
    ({"accounts": 10_000_000}, ValueError),
    ({"accounts": 10.0}, TypeError),
    ({"as_of": "2024-06-15"}, TypeError),
    ({"bad_share": -0.1}, ValueError),
    ({"bad_share": 1.5}, ValueError),
    ({"seed": -1}, ValueError),
])
def test_rejects_bad_arguments(kwargs, error):
    """Out-of-range or mistyped arguments raise instead of producing odd data."""
    args = {"accounts": 10, "as_of": AS_OF, **kwargs}
    with pytest.raises(error):
        make_snapshot(**args)


@pytest.mark.parametrize("n", [1, 2, 199])
def test_tiny_snapshots_are_consistent(n):
    """Very small sizes still give a consistent snapshot (and no bad rows below 200)."""
    frames = make_snapshot(n, AS_OF)
    assert len(frames["accounts"]) == n
    assert len(frames["billing"]) == 12 * n
    assert frames["ground_truth"]["declining"].sum() == round(0.12 * n)


# --------------------------------------------------------------------------- realistic mode
@pytest.fixture(scope="module")
def realistic():
    return make_snapshot(N, AS_OF, seed=7, bad_share=0.0, mode="realistic", churn_rate=0.10)


def test_easy_mode_is_the_default_and_unchanged(clean):
    """mode="easy" is the default: the same frames, no realistic columns."""
    _assert_snapshots_equal(clean, make_snapshot(N, AS_OF, seed=7, bad_share=0.0, mode="easy"))
    assert list(clean["accounts"].columns) == COLUMNS["accounts"]


def test_realistic_mode_is_repeatable(realistic):
    """The same arguments give identical realistic frames."""
    _assert_snapshots_equal(realistic, make_snapshot(N, AS_OF, seed=7, bad_share=0.0,
                                                     mode="realistic", churn_rate=0.10))


@pytest.mark.parametrize("rate", [0.01, 0.03, 0.10])
def test_realistic_churn_rate_is_configurable(rate):
    """Exactly round(rate * accounts) accounts churn, down to key-account rates of 1 %."""
    frames = make_snapshot(N, AS_OF, seed=3, bad_share=0.0, mode="realistic", churn_rate=rate)
    assert frames["ground_truth"]["declining"].sum() == round(rate * N)


def test_realistic_labels_come_after_the_snapshot_within_the_horizon(realistic):
    """Each churner has a churn_date after as_of and within the horizon; stayers have none."""
    truth = realistic["ground_truth"]
    assert list(truth.columns[:2]) == COLUMNS["ground_truth"]
    days = (truth["churn_date"] - TS).dt.days
    churned = truth["declining"] == 1
    assert days[churned].between(1, 365).all()
    assert truth.loc[~churned, "churn_date"].isna().all()


def test_realistic_accounts_carry_operator_columns(realistic):
    """customer_since, contract_type, payment_method and auto_pay are added, with consistent
    dates."""
    accounts = realistic["accounts"]
    assert list(accounts.columns) == [*COLUMNS["accounts"], "customer_since", "contract_type",
                                      "payment_method", "auto_pay"]
    assert set(accounts["auto_pay"]) == {"yes", "no"}
    assert set(accounts["contract_type"]) == {"month-to-month", "one-year", "two-year"}
    assert set(accounts["payment_method"]) == {"auto-debit", "bank-transfer", "invoice"}
    assert (accounts["customer_since"] <= accounts["contract_start"]).all()
    assert (accounts["contract_start"] < accounts["contract_end"]).all()
    assert (accounts["customer_since"] < TS).all()
    monthly = accounts["contract_type"] == "month-to-month"
    assert _days_before(accounts.loc[monthly, "contract_end"]).between(-31, -1).all()


def test_realistic_signals_are_only_partly_informative(realistic):
    """No observable signal separates churners: contract type and complaints tell something,
    employees nothing, and many churners show no complaint at all."""
    accounts, truth = realistic["accounts"], realistic["ground_truth"]
    churned = truth["declining"].to_numpy() == 1
    rate = accounts.assign(c=churned).groupby("contract_type")["c"].mean()
    assert rate["month-to-month"] > 2 * rate["two-year"]
    assert 0.02 < rate["two-year"] < 0.10 < rate["month-to-month"] < 0.30
    complained = accounts["account_id"].isin(realistic["complaints"]["account_id"]).to_numpy()
    assert 0.3 < complained[churned].mean() < 0.9
    from scipy.stats import mannwhitneyu
    employees = accounts["employees"].to_numpy()
    auc = mannwhitneyu(employees[churned], employees[~churned]).statistic / (
        churned.sum() * (~churned).sum())
    assert 0.45 < auc < 0.55


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "hard"}, "mode must be one of"),
    ({"mode": "realistic", "churn_rate": 0.0}, "churn_rate must be above 0"),
    ({"mode": "realistic", "churn_rate": 0.9}, "churn_rate must be above 0"),
    ({"churn_rate": 0.05}, "applies to mode='realistic' only"),
    ({"mode": "realistic", "horizon_days": 0}, "horizon_days must be a positive int"),
])
def test_rejects_bad_realistic_arguments(kwargs, message):
    """A bad mode, churn rate or horizon is refused with a clear message."""
    with pytest.raises(ValueError, match=message):
        make_snapshot(10, AS_OF, **kwargs)


# --------------------------------------------------------------------------- days played out
def test_days_are_repeatable_and_day_one_is_the_snapshot():
    """Same arguments, same days; day 1 is make_snapshot's snapshot."""
    from kamflow.generate import make_days

    a = make_days(800, AS_OF, 4, seed=3, leave_rate=0.01, partial_rate=0.01)
    b = make_days(800, AS_OF, 4, seed=3, leave_rate=0.01, partial_rate=0.01)
    for x, y in zip(a.days, b.days, strict=True):
        _assert_snapshots_equal(x, y)
    pd.testing.assert_frame_equal(a.departures, b.departures)
    pd.testing.assert_frame_equal(a.revenue_drops, b.revenue_drops)
    _assert_snapshots_equal(a.days[0], make_snapshot(800, AS_OF, seed=3, bad_share=0.0))
    assert a.dates == [AS_OF + dt.timedelta(days=k) for k in range(4)]


def test_days_lose_the_departed_accounts_and_drop_partial_churners_revenue():
    """Each day holds the accounts that have not left by then; a partial churner's bill falls
    to its drop factor (times the drift), the others' move by the drift only."""
    from kamflow.generate import make_days

    play = make_days(2_000, AS_OF, 6, seed=9, leave_rate=0.01, revenue_drift=0.01,
                     partial_rate=0.01)
    ids = set(play.days[0]["accounts"]["account_id"])
    assert len(play.departures) > 20 and len(play.revenue_drops) > 20
    for k, frames in enumerate(play.days, start=1):
        left = set(play.departures.loc[play.departures["day"] <= k, "account_id"])
        assert set(frames["accounts"]["account_id"]) == ids - left
        assert set(frames["billing"]["account_id"]) == ids - left
        assert not set(frames["complaints"]["account_id"]) & left
    first = play.days[0]["billing"].groupby("account_id")["billed"].sum()
    last = play.days[-1]["billing"].groupby("account_id")["billed"].sum()
    ratio = (last / first.reindex(last.index)).dropna()
    dropped = play.revenue_drops.set_index("account_id")["factor"]
    kept = dropped.reindex(ratio.index).dropna()
    assert (ratio[kept.index] / kept).between(0.85, 1.15).all()
    others = ratio.drop(dropped.index, errors="ignore")
    assert others.between(0.85, 1.15).all() and (others != 1).mean() > 0.9
    assert set(play.departures["day"]) <= set(range(2, 7))


def test_days_move_billing_months_with_the_month():
    """A day in the next month has the twelve months before it."""
    from kamflow.generate import make_days

    play = make_days(50, dt.date(2024, 6, 29), 4, seed=1)
    months = sorted(play.days[-1]["billing"]["month"].unique())
    assert months[0] == "2023-07" and months[-1] == "2024-06"  # as of 2024-07-02
    assert sorted(play.days[0]["billing"]["month"].unique())[-1] == "2024-05"


def test_generate_days_writes_day_folders_and_ground_truth(tmp_path):
    """generate_days writes day-01 ... and departures.csv / revenue_drops.csv."""
    from kamflow.generate import generate_days

    play = generate_days(tmp_path, 300, AS_OF, 5, seed=2, leave_rate=0.02)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "day-01", "day-02", "day-03", "day-04", "day-05", "departures.csv",
        "revenue_drops.csv"]
    written = pd.read_csv(tmp_path / "departures.csv", dtype={"account_id": str})
    assert written["account_id"].tolist() == play.departures["account_id"].tolist()
    assert list(written.columns) == ["account_id", "day", "date"]


@pytest.mark.parametrize("kwargs", [{"days": 0}, {"leave_rate": 0.2}, {"partial_rate": -1}])
def test_days_refuse_bad_arguments(kwargs):
    from kamflow.generate import make_days

    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_days(**{"accounts": 10, "start": AS_OF, "days": 3, **kwargs})
