"""Peak memory of a benchmark: the main process and its child processes (render workers)."""

from __future__ import annotations

import resource
import threading
import time

import psutil


def main_peak_mb() -> float:
    """This process's own peak resident memory (the kernel's count)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss_mb() -> float:
    """This process's peak resident memory, or the peak of it and its child processes (the
    email render workers) together when `TreeMemory` sampled more."""
    return max(main_peak_mb(), TREE.peak_mb)


class TreeMemory:
    """Samples every 20 ms this process's resident memory plus its descendants' private memory
    (psutil's USS: Private_Clean + Private_Dirty): the render workers run beside the main
    process, so the job's memory is their sum."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._running = False

    def start(self) -> None:
        if not self._running:
            self._running = True
            threading.Thread(target=self._sample, name="tree-memory", daemon=True).start()

    def _sample(self) -> None:
        main = psutil.Process()
        mine = main.cmdline()
        while self._running:
            # Children by their private pages (the libraries a worker maps are this process's
            # too), and only once they run their own program: a child between (v)fork and exec
            # still has this process's memory and command line, and would count it twice.
            children = sum(_private_mb(child) for child in main.children(recursive=True)
                           if _cmdline(child) != mine)
            self.peak_mb = max(self.peak_mb, main.memory_info().rss / MB + children)
            time.sleep(0.02)


MB = 1024.0 * 1024.0


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # ended meanwhile
        return []


def _private_mb(process: psutil.Process) -> float:
    try:
        return process.memory_full_info().uss / MB
    except psutil.AccessDenied:
        return process.memory_info().rss / MB
    except psutil.Error:  # ended meanwhile
        return 0.0


TREE = TreeMemory()
