"""Scale-out: partitions scored and decided on a local Dask cluster give the one-piece result."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from kamflow.worklist import TaskStore
from tests.conftest import AS_OF


def tasks_of(home) -> set[tuple]:
    with TaskStore(f"sqlite:///{home / 'kamflow.db'}") as store:
        return {(t.account_id, t.action, t.rule_id, t.owner_email, t.priority, t.reason,
                 t.ruleset_version) for t in store.list_tasks()}


def test_dask_partitions_equal_single_process(prefect_api, snapshot_dir, tmp_path, monkeypatch):
    """4 partitions on a 2-worker Dask cluster raise exactly the tasks of a one-piece run."""
    from kamflow.flows.retention import retention_run
    from kamflow.flows.scaleout import retention_run_on_dask

    results = {}
    for name, run, partitions in (("single", retention_run, 1),
                                  ("dask", retention_run_on_dask(workers=2), 4)):
        home = tmp_path / name
        monkeypatch.setenv("KAMFLOW_HOME", str(home))
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            state = run(source=str(snapshot_dir), as_of=AS_OF.isoformat(),
                        partitions=partitions, return_state=True)
        assert state.is_completed(), state.message
        results[name] = tasks_of(home)
    assert results["single"], "the snapshot has accounts at risk: tasks are expected"
    assert results["dask"] == results["single"]


@pytest.mark.parametrize("partitions", [2, 7])
def test_partitioned_scores_equal_whole(frames, partitions):
    """Scoring pieces against the whole population gives the whole-snapshot scores exactly."""
    import pandas as pd

    from kamflow.config import load_scoring
    from kamflow.expectations import validate_snapshot
    from kamflow.generate import typed_tables
    from kamflow.intake import build_customer_view, read_snapshot  # noqa: F401 - same path as the flow
    from kamflow.scoring import fit_population, score_accounts

    tables = typed_tables(frames)
    outcome = validate_snapshot(tables, pd.DataFrame(
        columns=["table", "row", "account_id", "column", "value", "reason"]))
    view = build_customer_view(outcome.accepted, AS_OF)
    config = load_scoring()
    whole = score_accounts(view, config)
    population = fit_population(view, config)
    size = -(-len(view) // partitions)
    pieces = pd.concat([score_accounts(view.iloc[i:i + size], config, population)
                        for i in range(0, len(view), size)], ignore_index=True)
    pd.testing.assert_frame_equal(pieces, whole)


def test_partitions_score_with_the_learnt_model(prefect_api, snapshot_dir, tmp_path, monkeypatch):
    """With a labelled history, a partitioned run (here: threads) scores every partition with
    the learnt model: its tasks equal the one-piece run's, and differ from a run without it."""
    from kamflow.flows.history import HistorySource
    from kamflow.flows.retention import retention_run
    from kamflow.generate import make_snapshot, write_snapshot

    history = tmp_path / "history"
    write_snapshot(make_snapshot(1200, AS_OF, seed=3), history)
    results = {}
    for name, partitions, learnt in (("single", 1, True), ("partitioned", 3, True),
                                     ("configured", 3, False)):
        home = tmp_path / name
        monkeypatch.setenv("KAMFLOW_HOME", str(home))
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            state = retention_run(source=str(snapshot_dir), as_of=AS_OF.isoformat(),
                                  partitions=partitions, return_state=True,
                                  history=HistorySource(str(history)) if learnt else None)
        assert state.is_completed(), state.message
        results[name] = tasks_of(home)
    assert results["single"], "the snapshot has accounts at risk: tasks are expected"
    assert results["partitioned"] == results["single"]
    assert results["configured"] != results["single"]


def test_the_local_cluster_listens_on_loopback_only():
    """The local cluster `--partitions` starts: scheduler, workers and dashboard listen on
    127.0.0.1 only (Dask's default is every interface, the dashboard on 0.0.0.0:8787)."""
    import psutil
    from distributed import Client, LocalCluster

    from kamflow.flows.scaleout import local_cluster_kwargs

    with LocalCluster(**local_cluster_kwargs(2)) as cluster:
        cluster.wait_for_workers(2, timeout=60)
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert cluster.dashboard_link.startswith("http://127.0.0.1:")
        me = psutil.Process()
        processes = [me, *me.children(recursive=True)]
        listening = {(c.laddr.ip, c.laddr.port) for p in processes
                     for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
        with Client(cluster) as client:
            workers = client.scheduler_info()["workers"]
    assert len(workers) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in workers)
    assert listening and {ip for ip, _ in listening} == {"127.0.0.1"}, listening
