"""Peak memory of a benchmark: the main process and its child processes (render workers)."""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path


def main_peak_mb() -> float:
    """This process's own peak resident memory (the kernel's count)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss_mb() -> float:
    """This process's peak resident memory, or the peak of it and its child processes (the
    email render workers) together when `TreeMemory` sampled more."""
    return max(main_peak_mb(), TREE.peak_mb)


class TreeMemory:
    """Samples every 20 ms this process's resident memory plus its descendants' private memory:
    the render workers run beside the main process, so the job's memory is their sum."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._running = False

    def start(self) -> None:
        if not self._running and Path("/proc/self/status").exists():
            self._running = True
            threading.Thread(target=self._sample, name="tree-memory", daemon=True).start()

    def _sample(self) -> None:
        while self._running:
            main, *children = _tree(os.getpid())
            # Children by their private pages (the libraries a worker maps are this process's
            # too), and only once they run their own program: a child between (v)fork and exec
            # still has this process's memory and command line, and would count it twice.
            mine = _cmdline(main)
            self.peak_mb = max(self.peak_mb, _rss_mb(main) + sum(
                _private_mb(child) for child in children if _cmdline(child) != mine))
            time.sleep(0.02)


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        for children in Path(f"/proc/{pids[i]}/task").glob("*/children"):
            try:
                pids += [int(c) for c in children.read_text().split()]
            except OSError:
                pass  # the process ended meanwhile
        i += 1
    return pids


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _private_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return _rss_mb(pid)
    kb = sum(int(line.split()[1]) for line in text.splitlines()
             if line.startswith(("Private_Clean:", "Private_Dirty:")))
    return kb / 1024.0


TREE = TreeMemory()
