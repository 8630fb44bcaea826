"""What a visitor may make the server compute: costs asked before they are spent.

Work that a link or a file can start (a whole-corpus rerank, an evaluation, a tuning
run, embedding an upload) is priced before it runs. Two rules, one module:

* above :func:`confirm_seconds` (default 60 s, ``RERANK_CONFIRM_SECONDS``) the page shows
  the estimate and waits for a click;
* each visitor (one browser session) has a budget of estimated compute per hour
  (:func:`budget_seconds`, default 30 minutes, ``RERANK_VISITOR_BUDGET_MIN``; 0 turns the
  budget off): work that would go past it is refused with one line saying when it frees.

A :class:`VisitorBudget` is a small object kept in the visitor's session; it holds the
charges of the last hour and nothing else. Estimates come from the callers (the
reranker's measured tokens per second, the encoder's documents per second).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from core.search.passages import format_seconds

CONFIRM_ENV = "RERANK_CONFIRM_SECONDS"
BUDGET_ENV = "RERANK_VISITOR_BUDGET_MIN"
DEFAULT_CONFIRM_SECONDS = 60.0
DEFAULT_BUDGET_MINUTES = 30.0
WINDOW_SECONDS = 3600.0


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value >= 0 else default


def confirm_seconds() -> float:
    """Estimated seconds above which work waits for a click (``RERANK_CONFIRM_SECONDS``)."""
    return _env_float(CONFIRM_ENV, DEFAULT_CONFIRM_SECONDS)


def budget_seconds() -> float:
    """Estimated compute seconds one visitor may start per hour (0: no limit)."""
    return _env_float(BUDGET_ENV, DEFAULT_BUDGET_MINUTES) * 60.0


@dataclass(frozen=True)
class Cost:
    """An estimate of work: ``seconds`` of this server's time, and what it is."""

    seconds: float
    what: str

    @property
    def needs_click(self) -> bool:
        """Whether this work must wait for a click (it costs more than the threshold)."""
        return self.seconds > confirm_seconds()

    def line(self) -> str:
        """One line for the page: what will run and about how long it takes."""
        return f"{self.what}: about {format_seconds(self.seconds)} on this server"


@dataclass
class VisitorBudget:
    """One visitor's charges in the last hour (kept in the visitor's session)."""

    charges: list[tuple[float, float]] = field(default_factory=list)

    def _recent(self, now: float) -> list[tuple[float, float]]:
        self.charges = [(t, s) for t, s in self.charges if now - t < WINDOW_SECONDS]
        return self.charges

    def spent(self, now: float | None = None) -> float:
        """Estimated seconds started in the last hour."""
        return sum(s for _, s in self._recent(time.time() if now is None else now))

    def refusal(self, cost: Cost, now: float | None = None) -> str | None:
        """None when ``cost`` fits the budget; else one line saying why and when it frees."""
        limit = budget_seconds()
        if limit <= 0:
            return None
        now = time.time() if now is None else now
        spent = self.spent(now)
        if spent + cost.seconds <= limit:
            return None
        if cost.seconds > limit:
            return (
                f"{cost.line()}, more than one visitor may start here "
                f"({format_seconds(limit)} an hour, {BUDGET_ENV}); ask the operator"
            )
        wait = WINDOW_SECONDS - (now - self.charges[0][0]) if self.charges else 0.0
        return (
            f"{cost.line()}; this session has started {format_seconds(spent)} of work in the "
            f"last hour (limit {format_seconds(limit)}, {BUDGET_ENV}); try again in "
            f"{format_seconds(max(wait, 1.0))}"
        )

    def charge(self, cost: Cost, now: float | None = None) -> None:
        """Record that ``cost`` was started."""
        now = time.time() if now is None else now
        self._recent(now)
        if cost.seconds > 0:
            self.charges.append((now, cost.seconds))
