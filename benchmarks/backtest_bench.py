"""Backtest benchmark: ``kamflow backtest``'s learning against a bare scikit-learn fit.

    python benchmarks/run.py backtest --accounts 100000 [--json]

A realistic-mode snapshot (10 % churn, seed 7) with the two operator signals of
docs/examples/realistic-signals.mapping.yaml is generated and its customer view built before the
clock starts. Timed: ``scoring.backtest.run_backtest`` (what ``kamflow backtest`` runs after
reading: 5-fold cross-validation of the expert and information-gain weights, and of the logistic
regression and gradient boosting, each calibrated inside its training folds), and, in the same
process on the same feature matrix (the model's features, signals one-hot), the anchor: a bare
``sklearn.linear_model.LogisticRegression`` (after a StandardScaler: unscaled, lbfgs does not
converge on these features) fit once on every account, and its predict_proba. Both run
on one thread (kamflow's models do: scoring.model.one_thread). ``ratio`` = backtest / anchor.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.memory import peak_rss_mb

SEED = 7


def run(accounts: int) -> dict:
    import datetime as dt

    from threadpoolctl import threadpool_limits

    from kamflow import config
    from kamflow.generate import make_snapshot, typed_tables
    from kamflow.intake import build_customer_view, load_mapping
    from kamflow.scoring.backtest import run_backtest
    from kamflow.scoring.model import churn_features

    as_of = dt.date(2024, 6, 15)
    frames = make_snapshot(accounts, as_of, seed=SEED, bad_share=0.0, mode="realistic")
    tables = typed_tables(frames, signals=True)
    mapping = Path(__file__).resolve().parents[1] / "docs" / "examples" / \
        "realistic-signals.mapping.yaml"
    signals = load_mapping(mapping).signals
    view = build_customer_view(tables, as_of)
    truth = frames["ground_truth"].set_index("account_id")["declining"]
    churned = view["account_id"].map(truth).astype(int).to_numpy()
    scoring = config.load_scoring()
    del frames, tables

    started = time.perf_counter()
    result = run_backtest(view, churned, scoring, signals)
    backtest_seconds = time.perf_counter() - started

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = churn_features(view, scoring, signals)
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        anchor = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
            features, churned)
        anchor.predict_proba(features)
        anchor_seconds = time.perf_counter() - started
    aucs = {m.method: round(m.auc, 4) for m in result.methods}
    return {"benchmark": "backtest", "accounts": accounts, "churned": int(np.sum(churned)),
            "features": int(features.shape[1]), "folds": result.folds,
            "backtest_seconds": round(backtest_seconds, 2),
            "anchor_sklearn_fit_predict_seconds": round(anchor_seconds, 3),
            "ratio": round(backtest_seconds / anchor_seconds, 1),
            "auc": aucs, "chosen_model": result.chosen_model,
            "peak_rss_mb": round(peak_rss_mb())}
