"""Learning churn risk from a labelled history for the daily run: information-gain weights and
the logistic model change how accounts are scored, are measured on held-out accounts, and bad
history input is refused naming the file and the column. (The run itself: test_flow.py and
test_cli.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kamflow.config import load_scoring
from kamflow.core.errors import BatchRejected, InputError
from kamflow.expectations import ValidationPolicy, validate_snapshot
from kamflow.flows.history import HistorySource, read_labelled_history
from kamflow.generate import make_snapshot, typed_tables
from kamflow.intake import build_customer_view
from kamflow.scoring import ScoringConfig, roc_auc, score_accounts
from kamflow.scoring.backtest import split_by_outcome
from kamflow.scoring.learn import MIN_ACCOUNTS, UnusableHistory, history_problem, learn_churn
from tests.conftest import AS_OF
from tests.test_scoring import quiet_account


@pytest.fixture(scope="module")
def config() -> ScoringConfig:
    return load_scoring()


# --------------------------------------------------------------------------- a telling history

def complaints_history(n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    """Accounts where complaints tell who churned and revenue decline tells nothing: every
    churner complained 4 times, no stayer did; half of each group lost 40 % of revenue."""
    churned = np.arange(n) % 2 == 0
    declining = (np.arange(n) // 2) % 2 == 0
    rows = [quiet_account(account_id=f"KA{i}", complaints_90d=4.0 if churned[i] else 0.0,
                          revenue_trend=-0.40 if declining[i] else 0.0) for i in range(n)]
    return pd.DataFrame(rows), churned.astype(int)


def today() -> pd.DataFrame:
    """A complains (4 in 90 days); B lost 40 % of its revenue."""
    return pd.DataFrame([quiet_account(account_id="A", complaints_90d=4.0),
                         quiet_account(account_id="B", revenue_trend=-0.40)])


def test_configured_weights_rate_revenue_decline_above_complaints(config) -> None:
    """The starting point: with the shipped weights, B (revenue -40 %) outranks A."""
    risk = score_accounts(today(), config).set_index("account_id")["churn_risk"]
    assert risk["B"] > risk["A"]


def test_information_gain_weights_reorder_churn_risk(config) -> None:
    """Weights learnt from a history where complaints tell churn put A above B: the learnt
    weights, not the configured ones, make churn_risk, and A's reason is its complaints."""
    history, churned = complaints_history()
    learnt = learn_churn(history, churned, config, "information_gain")
    weights = learnt.factor_weights
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-3)
    assert weights["complaints"] > 0.8 and weights["revenue_decline"] < 0.1
    scored = score_accounts(today(), learnt.scoring(config), model=learnt.model)
    risk = scored.set_index("account_id")["churn_risk"]
    assert risk["A"] > risk["B"]
    first = scored.set_index("account_id").loc["A"]
    assert (first["churn_factor_1"], first["churn_factor_1_value"],
            first["churn_factor_1_level"]) == ("complaints", 4.0, 1.0)


def test_logistic_model_makes_churn_risk_its_probability(config) -> None:
    """With the logistic model, churn_risk is its churn probability in %, cut into bands by the
    configured cut-offs; A (complaints) is critical, B (revenue decline alone) is low, and A's
    reason is its complaints with their value and level."""
    history, churned = complaints_history()
    learnt = learn_churn(history, churned, config, "logistic_regression")
    assert learnt.model is not None and learnt.factor_weights is None
    scored = score_accounts(today(), learnt.scoring(config), model=learnt.model)
    expected = np.round(learnt.model.risk(today(), config), 1)
    np.testing.assert_allclose(scored["churn_risk"], expected)
    a, b = scored.set_index("account_id").loc["A"], scored.set_index("account_id").loc["B"]
    assert a["churn_risk"] >= config.band_critical and a["churn_band"] == "critical"
    assert b["churn_risk"] < config.band_medium and b["churn_band"] == "low"
    assert (a["churn_factor_1"], a["churn_factor_1_value"],
            a["churn_factor_1_level"]) == ("complaints", 4.0, 1.0)


# --------------------------------------------------------------------------- generated data

def generated(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    frames = make_snapshot(n, AS_OF, seed=seed)
    outcome = validate_snapshot(typed_tables(frames), pd.DataFrame(
        columns=["table", "row", "account_id", "column", "value", "reason"]))
    view = build_customer_view(outcome.accepted, AS_OF)
    truth = frames["ground_truth"].set_index("account_id")["declining"]
    return view, view["account_id"].map(truth).to_numpy()


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, np.ndarray]:
    return generated(1500, 5)


@pytest.fixture(scope="module")
def todays() -> tuple[pd.DataFrame, np.ndarray]:
    return generated(600, 11)


@pytest.mark.parametrize("method", ["information_gain", "logistic_regression"])
def test_learnt_scoring_finds_todays_churners_and_explains_them(config, history, todays,
                                                                method) -> None:
    """Learnt on one generated history and used on another snapshot, churn risk still ranks
    the declining accounts first (AUC ≥ 0.95); every account in a high or critical band has a
    top factor with its value, and only raised warnings are named (a quiet account has none)."""
    learnt = learn_churn(*history, config, method)
    view, truth = todays
    scored = score_accounts(view, learnt.scoring(config), model=learnt.model)
    assert roc_auc(scored["churn_risk"].to_numpy(), truth) >= 0.95
    at_risk = scored[scored["churn_band"].isin(["high", "critical"])]
    assert len(at_risk) > 0
    assert (at_risk["churn_factor_1"] != "").all()
    assert at_risk["churn_factor_1_value"].notna().all()
    for rank in (1, 2, 3):  # only a raised warning is ever a reason
        named = scored[f"churn_factor_{rank}"] != ""
        assert scored.loc[named, f"churn_factor_{rank}_level"].gt(0).all()
    quiet = score_accounts(pd.DataFrame([quiet_account()]), learnt.scoring(config),
                           model=learnt.model).iloc[0]
    assert quiet["churn_factor_1"] == "" and np.isnan(quiet["churn_factor_1_value"])


def test_learning_is_measured_on_held_out_accounts(config, history) -> None:
    """The metrics are taken on the held-out share of the history, beside the configured
    weights on the same accounts; the record is JSON without the fitted model."""
    view, churned = history
    learnt = learn_churn(view, churned, config, "logistic_regression")
    assert learnt.accounts == len(view) and learnt.churned == int(churned.sum())
    assert learnt.train_accounts + learnt.held_out_accounts == len(view)
    assert learnt.held_out_accounts == pytest.approx(0.3 * len(view), abs=2)
    assert 0 < learnt.held_out_churned < learnt.churned
    assert learnt.learnt.auc >= 0.95 and learnt.configured.auc >= 0.95
    assert [k.share for k in learnt.learnt.top_k] == list(config.backtest.top_k)
    assert learnt.learnt.top_k[1].lift > 4
    record = json.loads(json.dumps(learnt.as_dict()))
    assert "model" not in record and record["coefficients"]
    assert record["learnt"]["auc"] == pytest.approx(learnt.learnt.auc)
    assert "held-out AUC" in record["description"]
    assert f"{len(view):,} labelled accounts" in learnt.describe()


def test_split_keeps_rare_churners_on_both_sides() -> None:
    """Two churners among 100 accounts: one is learnt from, one is held out to be found."""
    churned = np.zeros(100, dtype=int)
    churned[[17, 64]] = 1
    train, test = split_by_outcome(churned, 0.3, 7)
    assert churned[train].sum() == 1 and churned[test].sum() == 1
    assert len(test) == 1 + round(0.3 * 98) and not set(train) & set(test)
    assert sorted({*train, *test}) == list(range(100))


@pytest.mark.parametrize(("churned", "says"), [
    (np.array([0, 1] * 20), f"at least {MIN_ACCOUNTS}"),
    (np.zeros(300, dtype=int), "same outcome (retained)"),
    (np.r_[np.ones(5, dtype=int), np.zeros(295, dtype=int)], "only 5 labelled accounts churned"),
])
def test_a_history_too_thin_to_learn_from_is_refused(config, churned, says) -> None:
    """Too few labelled accounts, one outcome only, or too few churners: refused, saying so."""
    assert says in history_problem(churned)
    view = pd.DataFrame([quiet_account(account_id=f"KA{i}") for i in range(len(churned))])
    with pytest.raises(UnusableHistory, match=says.replace("(", r"\(").replace(")", r"\)")):
        learn_churn(view, churned, config)


def test_a_history_where_nothing_tells_churn_is_refused(config) -> None:
    """When no factor's warning says anything about churn there are no weights to learn."""
    churned = np.arange(200) % 2
    view = pd.DataFrame([quiet_account(account_id=f"KA{i}") for i in range(200)])
    with pytest.raises(UnusableHistory, match="tells anything"):
        learn_churn(view, churned, config, "information_gain")


# --------------------------------------------------------------------------- reading a history

def ids_of(snapshot_dir: Path) -> list[str]:
    return pd.read_csv(snapshot_dir / "ground_truth.csv", dtype=str)["account_id"].tolist()


def read(spec: HistorySource):
    return read_labelled_history(spec, None, ValidationPolicy(), AS_OF, history_problem)


def test_history_is_matched_to_its_outcomes_by_account_id(snapshot_dir, tmp_path) -> None:
    """Accounts without an outcome are left out; the rest keep their own outcome."""
    truth = pd.read_csv(snapshot_dir / "ground_truth.csv", dtype=str).iloc[:400]
    labels = tmp_path / "outcomes.csv"
    truth.rename(columns={"account_id": "id", "declining": "lost"}).to_csv(labels, index=False)
    history = read(HistorySource(str(snapshot_dir), str(labels), "id", "lost"))
    assert 350 <= len(history.view) <= 400 and history.accounts_without_outcome >= 190
    expected = truth.set_index("account_id")["declining"].astype(int)
    np.testing.assert_array_equal(history.churned, history.view["account_id"].map(expected))
    assert history.labels == labels and history.label_column == "lost"


def write_labels(path: Path, ids: list[str], outcomes: list[int]) -> Path:
    pd.DataFrame({"account_id": ids, "churned": outcomes}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case", ["no label column", "no labels file", "too few accounts",
                                  "one outcome", "too few churners", "not an outcome",
                                  "no history directory"])
def test_bad_history_input_names_the_file_and_field(snapshot_dir, tmp_path, case) -> None:
    """Each kind of bad history is an InputError naming the file (and the column where the
    problem is about one), never another exception."""
    ids = ids_of(snapshot_dir)
    labels = tmp_path / "labels.csv"
    spec, file, field, says = HistorySource(str(snapshot_dir), str(labels)), labels, "churned", ""
    if case == "no label column":
        spec, file, says = HistorySource(str(snapshot_dir), label_column="churned"), \
            snapshot_dir / "ground_truth.csv", "has no column 'churned'"
    elif case == "no labels file":
        field, says = None, "does not exist"
    elif case == "too few accounts":
        write_labels(labels, ids[:40], [0, 1] * 20)
        says = "at least 100"
    elif case == "one outcome":
        write_labels(labels, ids, [0] * len(ids))
        says = "same outcome"
    elif case == "too few churners":
        write_labels(labels, ids, [1, 1, 1] + [0] * (len(ids) - 3))
        says = "only 3 labelled accounts churned"
    elif case == "not an outcome":
        labels.write_text("account_id,churned\nKA0000001,1\nKA0000002,perhaps\n",
                          encoding="utf-8")
        field, says = None, "line 3: churned='perhaps' is not an outcome"
    else:
        spec = HistorySource(str(tmp_path / "nowhere"), str(labels))
        file, field, says = tmp_path / "nowhere", None, "does not exist"
    with pytest.raises(InputError) as caught:
        read(spec)
    message = str(caught.value)
    assert f"file {file}" in message and says in message, message
    if field:
        assert f"field {field!r}" in message, message


def test_a_history_stopped_by_validation_is_refused(snapshot_dir) -> None:
    """A history whose snapshot would stop a daily run stops the learning too, saying which."""
    accounts = pd.read_csv(snapshot_dir / "accounts.csv", dtype=str)
    accounts.drop(columns=["contract_end"]).to_csv(snapshot_dir / "accounts.csv", index=False)
    with pytest.raises(BatchRejected, match="history snapshot .* stopped by validation"):
        read(HistorySource(str(snapshot_dir)))


# --------------------------------------------------------------------------- model choice

def test_best_model_is_chosen_by_cross_validated_auc(config, history) -> None:
    """best_model cross-validates both models on the training part and keeps the logistic
    regression unless gradient boosting is clearly better; the record says which and why."""
    from kamflow.scoring.model import CLEARLY_BETTER

    learnt = learn_churn(*history, config, "best_model")
    selection = {row["kind"]: row for row in learnt.as_dict()["model_selection"]}
    assert set(selection) == {"logistic_regression", "gradient_boosting"}
    chosen = [kind for kind, row in selection.items() if row["chosen"]]
    assert chosen == [learnt.model.kind]
    lr, gb = selection["logistic_regression"], selection["gradient_boosting"]
    expected = ("gradient_boosting" if gb["auc_mean"] > lr["auc_mean"] + CLEARLY_BETTER
                else "logistic_regression")
    assert learnt.model.kind == expected
    assert all(len(row["fold_aucs"]) == 5 for row in selection.values())
    assert learnt.model.kind.replace("_", " ") in learnt.describe()


def test_gradient_boosting_scores_and_explains(config, history, todays) -> None:
    """A gradient-boosting model rates today's accounts and names only raised warnings."""
    learnt = learn_churn(*history, config, "gradient_boosting")
    assert learnt.model.kind == "gradient_boosting" and learnt.coefficients is None
    view, truth = todays
    scored = score_accounts(view, config, model=learnt.model)
    assert roc_auc(scored["churn_risk"].to_numpy(), truth) >= 0.95
    for rank in (1, 2, 3):
        named = scored[f"churn_factor_{rank}"] != ""
        assert scored.loc[named, f"churn_factor_{rank}_level"].gt(0).all()


def test_labels_matching_no_account_are_refused_saying_so() -> None:
    """When no labelled id matches an accepted account, the message says to check the ids."""
    assert "no labelled account id matches" in history_problem(np.array([], dtype=int))


# --------------------------------------------------------------------------- learnt bands

@pytest.mark.parametrize(("risk", "base_rate", "bands"), [
    # 1 % churn: critical from 10 %, high from 4 %, medium from 2 % (no rank rule under 10)
    ([12.0, 5.0, 2.5, 1.0, 0.2], 0.01, ["critical", "high", "medium", "low", "low"]),
    # 30 % churn: the multiples pass the fixed cut-offs (15/22/40), which apply instead
    ([45.0, 30.0, 16.0, 10.0], 0.30, ["critical", "high", "medium", "low"]),
])
def test_learnt_bands_follow_the_base_rate(config, risk, base_rate, bands) -> None:
    """Under a learnt model a band is reached at a multiple of the base churn rate, capped
    at the fixed cut-off."""
    from kamflow.scoring.score import learnt_band

    assert learnt_band(np.array(risk), base_rate, config).tolist() == bands


def test_learnt_bands_by_rank_give_a_worklist_however_low_the_probabilities(config) -> None:
    """With every probability under the multiples, the top 1 % / 3 % / 10 % still get the
    critical / high / medium bands."""
    from kamflow.scoring.score import learnt_band

    risk = np.linspace(1.5, 0.1, 1000)  # all below 2 x a 1 % base rate
    bands = pd.Series(learnt_band(risk, 0.01, config))
    assert bands.value_counts().to_dict() == {"low": 900, "medium": 70, "high": 20,
                                              "critical": 10}
    assert (bands[:10] == "critical").all()


def test_a_one_percent_portfolio_still_yields_a_usable_worklist(config) -> None:
    """Realistic mode at 1 % churn: a model learnt on one year's history puts about the top
    1 % of today's accounts in critical, and they churn several times the base rate."""
    def realistic(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        frames = make_snapshot(8000, AS_OF, seed=seed, bad_share=0.0, mode="realistic",
                               churn_rate=0.01)
        view = build_customer_view(typed_tables(frames), AS_OF)
        truth = frames["ground_truth"].set_index("account_id")["declining"]
        return view, view["account_id"].map(truth).to_numpy()

    learnt = learn_churn(*realistic(7), config, "logistic_regression")
    view, churned = realistic(8)
    scored = score_accounts(view, config, model=learnt.model)
    critical = (scored["churn_band"] == "critical").to_numpy()
    assert 0.01 <= critical.mean() <= 0.03
    assert churned[critical].mean() >= 3 * churned.mean()
    assert (scored["churn_band"] != "low").mean() <= 0.2
    assert scored["churn_risk"].mean() == pytest.approx(1.0, abs=0.5)  # calibrated


def test_partitions_rank_learnt_bands_against_the_whole_snapshot(config, history,
                                                                 todays) -> None:
    """Scored in pieces against the whole population, a learnt model's bands (rank rule
    included) equal those of scoring everything at once."""
    from kamflow.scoring import fit_population

    learnt = learn_churn(*history, config, "logistic_regression")
    view, _ = todays
    whole = score_accounts(view, config, model=learnt.model)
    population = fit_population(view, config, learnt.model)
    pieces = pd.concat([score_accounts(view.iloc[i:i + 150].reset_index(drop=True), config,
                                       population, learnt.model)
                        for i in range(0, len(view), 150)], ignore_index=True)
    pd.testing.assert_series_equal(pieces["churn_band"], whole["churn_band"])
    assert (whole["churn_band"] == "critical").sum() >= int(0.01 * len(view))


# --------------------------------------------------------------------------- value at risk

def test_calibration_refit_recovers_the_labels_map() -> None:
    """Platt scaling of outcomes drawn from a known map of the risk score finds that map:
    the refit moves a and b from the defaults to the labels' own."""
    from kamflow.scoring.config import Calibration
    from kamflow.scoring.learn import fit_calibration

    rng = np.random.default_rng(3)
    risk = rng.uniform(0, 100, 40_000)
    truth = Calibration(a=-3.0, b=4.0)
    churned = rng.random(risk.size) < truth.probability(risk)
    fitted = fit_calibration(risk, churned)
    assert fitted.a == pytest.approx(-3.0, abs=0.15) and fitted.b == pytest.approx(4.0, abs=0.2)
    assert (fitted.a, fitted.b) != (Calibration().a, Calibration().b)


def test_a_score_that_does_not_rise_with_churn_calibrates_to_the_churn_rate() -> None:
    """When churners have the lower scores, the refit gives everyone the history's churn rate
    (b = 0) rather than a probability that falls as the risk rises."""
    from kamflow.scoring.learn import fit_calibration

    risk = np.array([10.0] * 50 + [80.0] * 50)
    churned = np.array([1] * 10 + [0] * 40 + [0] * 50)
    fitted = fit_calibration(risk, churned)
    assert fitted.b == 0.0
    assert fitted.probability(np.array([0.0, 100.0])) == pytest.approx([0.1, 0.1], abs=1e-4)


def test_weights_only_learning_refits_the_calibration_toward_the_labels(config) -> None:
    """information_gain learns weights only, yet value at risk follows the history: the
    calibration is refitted on it, the scoring uses it, and the churners' probability is far
    above the stayers'."""
    history, churned = complaints_history()
    learnt = learn_churn(history, churned, config, "information_gain")
    assert learnt.calibration is not None and learnt.calibration != config.calibration
    assert learnt.scoring(config).calibration == learnt.calibration
    assert learnt.as_dict()["calibration"] == {"a": learnt.calibration.a,
                                               "b": learnt.calibration.b}
    scored = score_accounts(today(), learnt.scoring(config)).set_index("account_id")
    # half the history churned, every churner complained: A's probability is near 1, B's low
    assert scored.loc["A", "churn_probability"] > 0.9
    assert scored.loc["B", "churn_probability"] < 0.1
    assert scored.loc["A", "value_at_risk"] == pytest.approx(
        scored.loc["A", "monthly_revenue"] * scored.loc["A", "churn_probability"], abs=0.005)


def test_a_learnt_models_probability_is_the_churn_probability(config, history,
                                                              todays) -> None:
    """With a learnt model, churn_probability is the model's calibrated probability, not the
    configured calibration of a risk score."""
    learnt = learn_churn(*history, config, "logistic_regression")
    view, _ = todays
    scored = score_accounts(view, learnt.scoring(config), model=learnt.model)
    np.testing.assert_allclose(scored["churn_probability"],
                               learnt.model.risk(view, config) / 100, atol=1e-6)
    by_map = learnt.scoring(config).calibration.probability(scored["churn_risk"].to_numpy())
    assert not np.allclose(scored["churn_probability"], by_map, atol=1e-3)


# --------------------------------------------------------------------------- operator signals

def signal_history(tmp_path: Path, n: int = 1500) -> tuple[Any, np.ndarray, tuple]:
    """A realistic snapshot read through the shipped mapping with contract type and
    automatic payment declared as operator signals."""
    from kamflow.generate import write_snapshot
    from kamflow.intake import load_mapping, read_snapshot

    frames = make_snapshot(n, AS_OF, seed=4, bad_share=0.0, mode="realistic")
    write_snapshot(frames, tmp_path / "snap")
    mapping = load_mapping(Path(__file__).resolve().parents[1] / "docs" / "examples"
                           / "realistic-signals.mapping.yaml")
    snapshot = read_snapshot(tmp_path / "snap", mapping, AS_OF)
    view = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF,
                             signals=snapshot.signals).view.drop(columns=["_row"])
    truth = frames["ground_truth"].set_index("account_id")["declining"]
    return view, view["account_id"].map(truth).astype(int).to_numpy(), snapshot.signals


def test_models_learn_operator_signals_one_hot(config, tmp_path: Path) -> None:
    """Categorical signals become one column per declared level, booleans one 0/1 column; the
    fitted model keeps the declaration, so a later view is scored with the same columns."""
    from kamflow.scoring.model import churn_features, fit_churn_model

    view, churned, signals = signal_history(tmp_path)
    plain = churn_features(view, config)
    features = churn_features(view, config, signals)
    assert features.shape[1] == plain.shape[1] + 3 + 1
    one_hot = features[:, plain.shape[1]:plain.shape[1] + 3]
    assert (one_hot.sum(axis=1) == 1).all()
    monthly = (view["signal_contract_type"] == "month_to_month").to_numpy()
    assert (one_hot[:, 0] == monthly).all()
    model = fit_churn_model(view, churned, config, kinds=("logistic_regression",),
                            signals=signals)
    assert model.signals == signals
    coefficients = model.coefficients(config)
    for name in ("signal_contract_type=month_to_month", "signal_contract_type=two_year",
                 "signal_auto_pay"):
        assert name in coefficients
    # Month-to-month churns more than two-year; automatic payers churn less.
    assert coefficients["signal_contract_type=month_to_month"] > \
        coefficients["signal_contract_type=two_year"]
    assert coefficients["signal_auto_pay"] < 0
    # A later snapshot without the columns still gets the model's columns (all zero).
    assert model.risk(view.drop(columns=["signal_auto_pay"]).head(5), config).shape == (5,)


def test_explanations_name_operator_signals_in_the_readers_language(config,
                                                                   tmp_path: Path) -> None:
    from kamflow.core.vocabulary import Wording
    from kamflow.scoring.explain import factor_text
    from kamflow.scoring.model import fit_churn_model

    view, churned, signals = signal_history(tmp_path)
    model = fit_churn_model(view, churned, config, kinds=("logistic_regression",),
                            signals=signals)
    scored = score_accounts(view, config, model=model)
    top = scored[[f"churn_factor_{k}" for k in (1, 2, 3)]].to_numpy().ravel()
    assert "signal_contract_type" in set(top)
    shown = scored["churn_factor_1"] == "signal_contract_type"
    assert shown.any()
    # Only the riskier levels are reasons: a two-year contract never is.
    assert (scored.loc[shown, "signal_contract_type"] != "two_year").all()
    account = scored[shown & (scored["signal_contract_type"] == "month_to_month")].head(1)
    stored = factor_text(account)[0]
    assert "signal_contract_type: contract type = month-to-month | 合约类型为按月 (level 1.00)" \
        in stored
    # An email words it in its reader's language, from the labels the mapping gives.
    reason = f"fired. Top churn factors: {stored}"
    english, chinese = (Wording().reason("r", reason, lang) for lang in ("en", "zh-CN"))
    assert "contract type = month-to-month" in english and "合约类型" not in english
    assert "合约类型为按月" in chinese and "contract type" not in chinese
