"""Scale-out: the retention run with its partitions spread over a Dask cluster.

    from kamflow.flows.scaleout import retention_run_on_dask
    retention_run_on_dask(address="tcp://scheduler:8786")(source=..., partitions=16)

With no address a local cluster is started (``workers`` processes, one thread each). On several
machines: start `dask scheduler` on one, `dask worker tcp://scheduler:8786` on each of the others
(each with the kamflow package installed), and point every worker and the flow at the same
KAMFLOW_DATABASE_URL; only the dispatch stage writes it, from the flow's own process.
"""

from __future__ import annotations

from typing import Any

from kamflow.flows.retention import retention_run


def retention_run_on_dask(address: str | None = None, workers: int = 2) -> Any:
    from prefect_dask import DaskTaskRunner

    runner = (DaskTaskRunner(address=address) if address else DaskTaskRunner(
        cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}))
    # prefect-dask's runner is a TaskRunner of its own futures: right at run time, unlike
    # Flow.with_options's annotation (PrefectFuture[Any]) says.
    return retention_run.with_options(task_runner=runner)  # type: ignore[arg-type]
