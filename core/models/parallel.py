"""Run one-item model calls on a few threads at once (onnxruntime releases the GIL)."""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

_DONE = object()


class Priority(Protocol):
    """Work that goes first: while :meth:`busy`, background model calls step aside."""

    def busy(self) -> bool:
        """Whether higher-priority work is running now."""
        ...

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        """Block until it is not."""
        ...


_YIELD_TO: contextvars.ContextVar[Priority | None] = contextvars.ContextVar(
    "yield_to", default=None
)


def in_background() -> bool:
    """Whether this thread's model calls run as :func:`background` work (they give way to
    visitors, so their wall time is not the model's speed)."""
    return _YIELD_TO.get() is not None


@contextmanager
def background(priority: Priority) -> Iterator[None]:
    """Run the ``with`` block's model calls as background work: between two items, a
    :meth:`WorkerPool.map` started in this block checks ``priority``; while it is busy,
    the helper threads stop taking items (leaving the cores and the shared helpers to
    the foreground) and the calling thread waits, then finishes the rest alone.

    The same items are computed either way, one per call, so no result changes.
    """
    token = _YIELD_TO.set(priority)
    try:
        yield
    finally:
        _YIELD_TO.reset(token)


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
        priority = _YIELD_TO.get()
        helpers = min(self.workers, len(items)) - 1
        if helpers <= 0:
            for item in items:
                if priority is not None and priority.busy():
                    priority.wait_until_idle()
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

        def drain(helper: bool = True) -> None:
            while not failed.is_set():
                if priority is not None and priority.busy():
                    if helper:
                        return
                    priority.wait_until_idle()
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
            drain(helper=False)
        finally:
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
