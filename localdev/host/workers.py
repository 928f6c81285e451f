"""The Python worker's thread pool: where the worker runs synchronous functions.

The Python language worker runs every synchronous (`def`) function on one `ThreadPoolExecutor`
whose size is the app setting `PYTHON_THREADPOOL_THREAD_COUNT`; unset (or not a positive
integer), Python's default, `min(32, CPU count + 4)`. An invocation the host has started waits
in that pool's queue while every thread is busy, so the pool, not the host's queue batch, bounds
how many pulls actually wait on ARM at once. The local host runs queue messages on the same kind
of pool, sized the same way, so a local measurement of throughput means what it would in Azure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"


def default_thread_count() -> int:
    """Python's ThreadPoolExecutor default, which the worker uses when the setting is unset."""
    return min(32, (os.cpu_count() or 1) + 4)


def worker_thread_count(settings: Mapping[str, str]) -> int:
    """The worker's thread count for these app settings (an invalid value falls back, as the worker does)."""
    raw = settings.get(THREAD_COUNT_SETTING)
    if raw is None or not str(raw).strip():
        return default_thread_count()
    with contextlib.suppress(ValueError):
        if (value := int(str(raw).strip())) >= 1:
            return value
    default = default_thread_count()
    logger.warning("%s must be a positive integer, not %r; using the default (%s)", THREAD_COUNT_SETTING, raw, default)
    return default


class WorkerPool:
    """A fixed number of daemon threads running submitted calls in order, as the worker's pool does.

    Daemon threads, unlike `ThreadPoolExecutor`'s: a host stopped with invocations still running
    (their messages made visible again) must let the process exit without waiting for them.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._work: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"python-worker-{n}", daemon=True) for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._work.put((fn, args))

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            fn, args = item
            try:
                fn(*args)
            except Exception:
                logger.exception("A call on the worker pool failed")

    def shutdown(self) -> None:
        """Stop the threads once they finish what they run (calls not started yet are dropped)."""
        while True:
            try:
                self._work.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._work.put(None)


def worker_pool(settings: Mapping[str, str]) -> WorkerPool:
    return WorkerPool(worker_thread_count(settings))
