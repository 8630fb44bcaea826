"""WorkerPool as background work: it steps aside while a foreground priority is busy."""

from __future__ import annotations

import threading

import numpy as np

from core.models.base import RerankDoc
from core.models.parallel import WorkerPool, background
from core.search.activity import SearchActivity


class Gate:
    """A priority that turns busy once ``busy_after`` items are done, and records the
    items done while it was busy and by which thread."""

    def __init__(self, busy_after: int) -> None:
        self.busy_after = busy_after
        self.done: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        self.busy_flag = False
        self.waits = 0

    def busy(self) -> bool:
        return self.busy_flag

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        with self.lock:
            self.waits += 1
            helpers_running = self.busy_flag
        assert helpers_running
        self.busy_flag = False  # the foreground work ended
        return True

    def record(self, item: int) -> None:
        with self.lock:
            self.done.append((item, threading.current_thread().name))
            if len(self.done) == self.busy_after:
                self.busy_flag = True


def test_background_map_steps_aside_then_the_caller_finishes_every_item_once() -> None:
    gate = Gate(busy_after=5)
    caller = threading.current_thread().name
    with background(gate):
        WorkerPool(3).map(gate.record, list(range(40)))
    items = [item for item, _ in gate.done]
    assert sorted(items) == list(range(40)), "every item exactly once"
    assert gate.waits == 1, "the caller waited once for the foreground to end"
    # After the gate turned busy, at most the items already taken by the helpers (one
    # each) finish on a helper thread; every later item is the caller's.
    after = gate.done[5:]
    on_helpers = [item for item, thread in after if thread != caller]
    assert len(on_helpers) <= 2
    assert all(thread == caller for _, thread in after[2:])


def test_outside_background_a_busy_priority_changes_nothing() -> None:
    gate = Gate(busy_after=1)
    WorkerPool(2).map(gate.record, list(range(10)))
    assert sorted(i for i, _ in gate.done) == list(range(10))
    assert gate.waits == 0


def test_a_single_worker_map_also_waits_before_each_item() -> None:
    gate = Gate(busy_after=3)
    with background(gate):
        WorkerPool(1).map(gate.record, list(range(6)))
    assert [i for i, _ in gate.done] == list(range(6))
    assert gate.waits == 1


def test_background_is_per_thread_context() -> None:
    """A visitor's map on another thread is never held back by the warm-up's priority."""
    activity = SearchActivity()
    seen: list[int] = []
    other = threading.Thread(target=lambda: WorkerPool(2).map(seen.append, list(range(20))))
    with activity.search(), background(activity):  # busy, in this thread's context only
        other.start()
        other.join(30)
    assert sorted(seen) == list(range(20))


def test_reranker_scores_are_the_same_when_computed_as_background_work(cross_encoder) -> None:
    """Stepping aside changes who computes a pair and when, never its score."""
    docs = [RerankDoc(f"d{i}", f"movie {i}: a heist crew plans job number {i}") for i in range(12)]
    plain = [r.score for r in cross_encoder.rank("a heist that goes wrong", docs)]
    cross_encoder.cache.clear()
    gate = Gate(busy_after=4)
    with background(gate):
        again = [r.score for r in cross_encoder.rank("a heist that goes wrong", docs)]
    np.testing.assert_array_equal(plain, again)
