"""Searches visitors are waiting for, counted process-wide.

Background work that only fills caches (the server's warm-up scoring the example
queries) runs under :func:`core.models.parallel.background` with
:data:`VISITOR_SEARCHES`, so it steps aside between two model calls while a visitor's
search is running: on a small machine both compete for the same cores, and the visitor
is the one watching a spinner. ``app.py`` wraps every page run in
:func:`visitor_search` (a first page load imports and lays out for seconds), and the
pages wrap their search calls in it too; nothing else counts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SearchActivity:
    """A thread-safe count of searches in progress, and a way to wait until none is."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0

    @property
    def running(self) -> int:
        """How many searches are in progress now."""
        with self._changed:
            return self._running

    def busy(self) -> bool:
        """Whether a search is in progress now (background model work steps aside:
        :func:`core.models.parallel.background`)."""
        return self.running > 0

    @contextmanager
    def search(self) -> Iterator[None]:
        """Count one search for the duration of the ``with`` block (also if it raises)."""
        with self._changed:
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        """Block until no search is in progress; False if ``timeout`` s passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._running == 0, timeout)


VISITOR_SEARCHES = SearchActivity()
"""The visitors' searches in this process (the app's sessions share it)."""


def visitor_search():
    """Context manager: count a visitor's search in :data:`VISITOR_SEARCHES`."""
    return VISITOR_SEARCHES.search()
