"""Run one-item model calls on a few threads at once (onnxruntime releases the GIL)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

_DONE = object()


def default_workers() -> int:
    """Parallel model calls: one per core (this machine has 2), at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


class WorkerPool:
    """Apply ``fn`` to items on up to ``workers`` threads, the caller being one of them.

    Items are taken in order from one shared queue (put the longest first, and the
    threads finish together); an exception stops the others and reaches the caller.
    Helper threads are started on first use and shared by all callers.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._executor = None
        self._lock = threading.Lock()

    def map(self, fn: Callable[[Any], None], items: Sequence[Any]) -> None:
        helpers = min(self.workers, len(items)) - 1
        if helpers <= 0:
            for item in items:
                fn(item)
            return
        with self._lock:
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(
                    self.workers - 1, thread_name_prefix="model-worker"
                )
        queue = iter(items)
        queue_lock = threading.Lock()
        failed = threading.Event()

        def drain() -> None:
            while not failed.is_set():
                with queue_lock:
                    item = next(queue, _DONE)
                if item is _DONE:
                    return
                try:
                    fn(item)
                except BaseException:
                    failed.set()
                    raise

        futures = [self._executor.submit(drain) for _ in range(helpers)]
        try:
            drain()
        finally:
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
