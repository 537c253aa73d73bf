"""Rendering many emails in worker processes, streamed back in order.

A national first run renders ~450,000 task rows into ~13,000 emails (3 GB of text): ~20 s of
Jinja and link signing on one core. `render_in_workers` spreads that over processes while the
caller (the task store) stores what comes back, so every core works.

- Each worker is a fresh interpreter (`python -m kamflow.notifications.workers`), not a fork and
  not a multiprocessing spawn, which is why this is a hand-written pool and not
  `concurrent.futures.ProcessPoolExecutor` (re-checked on Python 3.11 with its three start
  methods): under "fork" each worker would copy the job's gigabytes and any lock another thread
  (Prefect's) holds at that moment; under "spawn" and "forkserver" every worker (or the fork
  server) re-imports the caller's main script as `__mp_main__`, so a script that runs the flow at
  its top level, without a `__main__` guard, would start a second run in each worker.
- ``render`` goes to each worker once and must be picklable (a module-level class or function).
  Then chunks of parts go round-robin, so chunk *i* comes back from worker *i* mod *n* and the
  results are yielded in the order of ``parts``.
- At most ``window`` chunks are in flight: a slow consumer never has more than a few MB of
  rendered email waiting. A thread per worker feeds its stdin, so a worker blocked on writing
  results can never deadlock the caller writing the next chunk.
- A worker that fails or dies raises `RenderWorkerError` here, in the caller, naming what went
  wrong: the caller's transaction rolls back as for an in-process rendering error.
"""

from __future__ import annotations

import itertools
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

__all__ = ["EmailPart", "RenderWorkerError", "render_in_workers"]

# (owner_name, owner_email, task views) in; (subject, text, html) out
EmailPart = tuple[str, str, list[dict[str, Any]]]
Rendered = tuple[str, str, str]
_CHUNK_TASKS = 2000  # task rows per chunk sent to a worker (~20 ms of rendering each)


class RenderWorkerError(RuntimeError):
    """A render worker failed (its error is in the message) or exited unexpectedly."""


def render_in_workers(render: Callable[[str, str, list[dict[str, Any]]], Rendered],
                      parts: Iterable[EmailPart], workers: int,
                      window: int | None = None) -> Iterator[Rendered]:
    """``render(*part)`` for every part, computed in ``workers`` processes; yields the results
    in the order of ``parts``."""
    with RenderPool(render, workers, window) as pool:
        yield from pool(parts)


class RenderPool:
    """Render workers kept for several batches: a dispatch committed in slices renders each
    slice's emails in the same processes (a fresh worker costs about a second to start, five
    slices of a 100k first run cost 10 worker starts instead of 2). Call it with a batch of
    parts; close it (or use ``with``) when the last batch is done. A batch left unfinished
    (an error, a generator closed early) stops the workers: the next batch starts new ones,
    never reading results left in a pipe."""

    def __init__(self, render: Callable[..., Rendered], workers: int,
                 window: int | None = None) -> None:
        self.render, self.workers = render, workers
        self.window = window or 3 * workers
        self._pool: list[_Worker] = []

    def __call__(self, parts: Iterable[EmailPart]) -> Iterator[Rendered]:
        chunks = _chunks(parts)
        first = next(chunks, None)
        if first is None:
            return  # nothing to render: no worker started
        if not self._pool:
            self._pool = [_Worker(self.render) for _ in range(self.workers)]
        pool, workers, finished = self._pool, self.workers, False
        try:
            sent = received = 0
            for chunk in itertools.chain([first], chunks):
                pool[sent % workers].submit(chunk)
                sent += 1
                if sent - received >= self.window:
                    yield from pool[received % workers].result()
                    received += 1
            while received < sent:
                yield from pool[received % workers].result()
                received += 1
            finished = True
        finally:
            if not finished:
                self.close()

    def close(self) -> None:
        pool, self._pool = self._pool, []
        for worker in pool:
            worker.stop()

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Worker:
    def __init__(self, render: Callable[..., Rendered]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen([sys.executable, "-m", "kamflow.notifications.workers"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._inbox.put(render)
        self._feeder = threading.Thread(target=self._feed, name="kamflow-render-feed",
                                        daemon=True)
        self._feeder.start()

    def submit(self, chunk: list[EmailPart]) -> None:
        self._inbox.put(chunk)

    def result(self) -> list[Rendered]:
        assert self._process.stdout is not None
        try:
            status, value = pickle.load(self._process.stdout)
        except (EOFError, pickle.UnpicklingError):
            code = self._process.wait()
            raise RenderWorkerError(f"an email render worker exited unexpectedly (exit code "
                                    f"{code}); its error, if any, is in the log above") from None
        if status != "ok":
            raise RenderWorkerError(f"rendering an email failed in a worker: {value}")
        return value

    def _feed(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            while (item := self._inbox.get()) is not None:
                pickle.dump(item, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died: result() reports it
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._inbox.put(None)  # end of input: the worker exits once its queue is drained
        self._feeder.join(timeout=10)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def _chunks(parts: Iterable[EmailPart]) -> Iterator[list[EmailPart]]:
    chunk: list[EmailPart] = []
    size = 0
    for part in parts:
        chunk.append(part)
        size += len(part[2])
        if size >= _CHUNK_TASKS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def serve(inbox: IO[bytes], outbox: IO[bytes]) -> int:
    """The worker's loop: a renderer, then chunks until end of input; one result per chunk."""
    try:
        render = pickle.load(inbox)
    except EOFError:
        return 0
    while True:
        try:
            chunk = pickle.load(inbox)
        except EOFError:
            return 0
        try:
            result: tuple[str, Any] = ("ok", [render(*part) for part in chunk])
        except Exception as exc:  # reported to the caller, who fails the run with it
            result = ("error", f"{type(exc).__name__}: {exc}")
        try:
            pickle.dump(result, outbox, protocol=pickle.HIGHEST_PROTOCOL)
            outbox.flush()
        except BrokenPipeError:
            return 0  # the caller stopped listening (it failed or was interrupted)


if __name__ == "__main__":
    # Results go through a private copy of stdout; anything else printing goes to stderr.
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.exit(serve(sys.stdin.buffer, results))
