"""Scale-out: the retention run with its partitions spread over a Dask cluster.

    from kamflow.flows.scaleout import retention_run_on_dask
    retention_run_on_dask(address="tcp://scheduler:8786")(source=..., partitions=16)

With no address a local cluster is started (``workers`` processes, one thread each), its
scheduler, workers and dashboard listening on loopback only (``host``): whoever reaches a Dask
scheduler can run code in its workers. On several machines, run the cluster over TLS with
certificates (``tls://`` addresses; docs/security.md has the recipe): plain ``tcp://`` has
neither encryption nor authentication. Only the dispatch stage writes the task store, from the
flow's own process.
"""

from __future__ import annotations

from typing import Any

from kamflow.flows.retention import retention_run

LOOPBACK = "127.0.0.1"


def local_cluster_kwargs(workers: int, host: str = LOOPBACK) -> dict[str, Any]:
    """The local cluster: ``workers`` processes of one thread, everything bound to ``host``
    (Dask's default is every interface, the dashboard on 0.0.0.0:8787)."""
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True, "host": host,
            "dashboard_address": f"{host}:8787"}


def retention_run_on_dask(address: str | None = None, workers: int = 2,
                          host: str = LOOPBACK) -> Any:
    """The retention flow on the Dask scheduler at ``address`` (``tls://`` with the
    certificates of Dask's configuration, see docs/security.md), or on a local cluster bound
    to ``host``."""
    from prefect_dask import DaskTaskRunner

    runner = (DaskTaskRunner(address=address) if address else DaskTaskRunner(
        cluster_kwargs=local_cluster_kwargs(workers, host)))
    # prefect-dask's runner is a TaskRunner of its own futures: right at run time, unlike
    # Flow.with_options's annotation (PrefectFuture[Any]) says.
    return retention_run.with_options(task_runner=runner)  # type: ignore[arg-type]
