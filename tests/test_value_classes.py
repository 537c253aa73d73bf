"""Value classes of a sensible size: cut-offs as shares, scores or CNY, and each class's share."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml

from kamflow.config import load_scoring
from kamflow.core.errors import ConfigError
from kamflow.core.settings import DEFAULT_CONF_DIR
from kamflow.expectations import validate_snapshot
from kamflow.flows.report import RunSummary, class_shares, class_shares_text, markdown
from kamflow.generate import make_snapshot, write_snapshot
from kamflow.intake import build_customer_view, read_snapshot
from kamflow.scoring import VALUE_CLASSES, ScoringConfig, score_accounts
from kamflow.scoring.score import fit_population

AS_OF = dt.date(2026, 11, 25)


@pytest.fixture(scope="module")
def shipped() -> dict:
    """conf/scoring.yaml as a plain mapping."""
    return yaml.safe_load((DEFAULT_CONF_DIR / "scoring.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The demo: 2,000 generated accounts through the real intake and validation."""
    out = tmp_path_factory.mktemp("value-classes")
    write_snapshot(make_snapshot(2000, AS_OF, seed=3), out)
    snapshot = read_snapshot(out)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems)
    assert not outcome.stopped
    return build_customer_view(outcome.accepted, AS_OF)


def with_classes(shipped: dict, classes: dict) -> ScoringConfig:
    doc = copy.deepcopy(shipped)
    doc["value"]["classes"] = classes
    return ScoringConfig.from_mapping(doc)


def test_default_puts_about_a_fifth_in_high_and_secondary(view: pd.DataFrame) -> None:
    """With the shipped settings, high plus secondary value cover 15-25 % of the demo."""
    scored = score_accounts(view, load_scoring())
    top = scored["value_class"].isin(["high", "secondary"]).mean()
    assert 0.15 <= top <= 0.25
    assert (scored["value_class"] == "high").any() and (scored["value_class"] == "low").any()


def test_top_share_cut_is_the_share_of_accounts(view: pd.DataFrame, shipped: dict) -> None:
    """current_top_share 0.15: the accounts with the top 15 % of current value (ties in)."""
    config = with_classes(shipped, {"current_top_share": 0.15, "potential_top_share": 0.5})
    scored = score_accounts(view, config)
    upper = scored["value_class"].isin(["high", "secondary"])
    cut = scored.loc[upper, "current_value"].min()
    assert (scored.loc[~upper, "current_value"] < cut).all()
    assert int(np.floor(0.15 * len(view))) <= upper.sum() <= int(
        (scored["current_value"] >= cut).sum())
    assert upper.mean() == pytest.approx(0.15, abs=0.01)
    potential_upper = scored["value_class"].isin(["high", "potential"])
    assert potential_upper.mean() == pytest.approx(0.5, abs=0.01)


def test_cny_cut_follows_the_monthly_bill(view: pd.DataFrame, shipped: dict) -> None:
    """current_min_monthly_cny: upper current value is exactly a bill of at least that much."""
    threshold = float(view["avg_monthly_billed"].quantile(0.9))
    config = with_classes(shipped, {"current_min_monthly_cny": threshold,
                                    "potential_cutoff": 50})
    scored = score_accounts(view, config)
    upper = scored["value_class"].isin(["high", "secondary"])
    assert upper.tolist() == (view["avg_monthly_billed"] >= threshold).tolist()
    assert (scored["value_class"].isin(["high", "potential"])
            == (scored["potential_value"] >= 50)).all()


def test_partitioned_scoring_cuts_against_the_whole_snapshot(view: pd.DataFrame) -> None:
    """A top-share cut over chunks scored against the whole population equals one piece."""
    config = load_scoring()
    whole = score_accounts(view, config)
    population = fit_population(view, config)
    parts = pd.concat([score_accounts(view.iloc[i:i + 300], config, population)
                       for i in range(0, len(view), 300)])
    assert parts["value_class"].tolist() == whole["value_class"].tolist()


@pytest.mark.parametrize("classes", [
    {"current_cutoff": 50},  # potential missing
    {"current_cutoff": 50, "current_top_share": 0.2, "potential_cutoff": 50},  # two at once
    {"current_top_share": 1.5, "potential_cutoff": 50},  # not a share
    {"current_cutoff": 50, "potential_min_monthly_cny": 1000},  # CNY is current value only
    {"current_cutoff": 50, "potential_cutoff": 50, "high_share": 0.1},  # unknown key
])
def test_bad_class_cuts_are_refused_with_the_key_named(shipped: dict, classes: dict) -> None:
    """A missing, doubled, out-of-range or unknown cut stops with value.classes named."""
    with pytest.raises(ConfigError, match=r"value\.classes"):
        with_classes(shipped, classes)


def test_class_shares_of_accounts_and_revenue() -> None:
    """class_shares divides each class's accounts and monthly bill by the totals."""
    scored = pd.DataFrame({"value_class": ["high", "low", "low", "secondary"],
                           "avg_monthly_billed": [600.0, 100.0, 100.0, 200.0]})
    shares = class_shares(scored, VALUE_CLASSES)
    assert list(shares) == ["high", "secondary", "low"]
    assert shares["high"] == {"accounts": 0.25, "revenue": 0.6}
    assert shares["low"] == {"accounts": 0.5, "revenue": 0.2}
    assert "high value 25.0 % of accounts, 60.0 % of revenue" in class_shares_text(shares)


def test_summary_markdown_shows_the_class_shares(view: pd.DataFrame) -> None:
    """The run summary's markdown has each class's share of accounts and of revenue."""
    scored = score_accounts(view, load_scoring())
    summary = RunSummary("r1", "demo", str(AS_OF),
                         value_classes=scored["value_class"].value_counts().to_dict(),
                         value_class_shares=class_shares(scored, VALUE_CLASSES))
    text = markdown(summary)
    high = summary.value_class_shares["high"]
    assert "share of monthly revenue" in text
    assert f"{100 * high['accounts']:.1f} % | {100 * high['revenue']:.1f} % |" in text


def test_validate_prints_each_class_share(tmp_path, monkeypatch, capsys) -> None:
    """`kamflow validate` prints each value class's share of accounts and of revenue."""
    from kamflow.cli import main

    monkeypatch.setenv("KAMFLOW_HOME", str(tmp_path / "home"))
    write_snapshot(make_snapshot(300, AS_OF, seed=5), tmp_path / "snap")
    assert main(["validate", "--source", str(tmp_path / "snap"),
                 "--as-of", str(AS_OF)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines()
                if x.startswith("value classes:"))
    for name in ("high value", "secondary value", "potential value", "low value"):
        assert f"{name} " in line
    assert line.count("% of revenue") == 4
