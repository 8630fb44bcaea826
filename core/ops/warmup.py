"""Warm start: do once, at server start, what the first visitor would otherwise wait for.

On a fresh server the first search on movies used to take ~33 s: the bi-encoder's ONNX
export, loading both models, embedding the 1,000 movies. :class:`Warmup` does that work
in a background thread as soon as the server starts (``serve.py``), or synchronously at
setup (``python -m core warmup``), and reports its progress so that a visitor who
arrives early sees what is happening instead of a bare spinner.

Nothing is computed twice when sessions arrive together: the models come from the
process-wide registry (one lock per kind), the corpus embeddings from
:func:`core.search.index.build_index` (one lock per key, then the disk cache), so a
session that needs the same thing waits for the warm-up's copy. After the models and
the index ("ready"), the example queries of the default dataset are searched once, which
fills the reranker's score cache: clicking an example afterwards costs a query encoding
and a dictionary look-up per candidate. That stage only saves later clicks, so it yields
to visitors: before each example, and between two model calls within one
(:func:`core.models.parallel.background`), it waits while any visitor's search or page
run is in progress (:data:`core.search.activity.VISITOR_SEARCHES`), instead of
competing for the cores.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER
from core.models.parallel import background
from core.present.views import EXAMPLE_QUERIES, SearchSettings
from core.search.activity import VISITOR_SEARCHES, SearchActivity

# Stage ids, in order; ``READY_AFTER`` is the last one a first search needs.
STAGES = ("dataset", "reranker", "encoder", "index", "examples")
READY_AFTER = "index"
STAGE_LABELS = {
    "dataset": "Loading the {dataset} dataset",
    "reranker": "Loading the cross-encoder",
    "encoder": "Loading the bi-encoder (exported to ONNX on a first start)",
    "index": "Embedding the {dataset} corpus",
    "examples": "Scoring the example queries",
}


@dataclass(frozen=True)
class WarmupStatus:
    """A snapshot of the warm-up: where it is and how far, for the page and the CLI."""

    stage: str  # one of STAGES, "" before the start, "done" at the end
    label: str  # what it is doing, in words
    done: int  # items done within the stage (records embedded, queries scored)
    total: int  # items in the stage (0 when it has no count)
    started: bool
    ready: bool  # a first search needs nothing more from the warm-up
    finished: bool
    error: str | None
    seconds: float  # since the start
    stage_seconds: dict[str, float] = field(default_factory=dict)
    paused: bool = False  # waiting for visitors' searches before the next example

    @property
    def fraction(self) -> float:
        """Overall progress in 0..1 (each stage one equal share; counts within it)."""
        if self.finished:
            return 1.0
        if self.stage not in STAGES:
            return 0.0
        position = STAGES.index(self.stage)
        within = self.done / self.total if self.total else 0.0
        return min(1.0, (position + within) / len(STAGES))


class Warmup:
    """Load the default models, embed the default dataset and score its example queries.

    ``start()`` runs it once in a daemon thread (later calls do nothing); ``run()`` runs it
    in the caller's thread. ``status()`` is safe to call from any thread. Errors do not
    escape: they end the warm-up and appear in ``status().error``; a session then meets
    the same error in its own, ordinary code path and explains it there.
    """

    def __init__(
        self,
        *,
        dataset: str = "movies",
        encoder: str = DEFAULT_ENCODER,
        reranker: str = PACKAGED_CROSS_ENCODER,
        examples: Sequence[str] | None = None,
        candidates: int = SearchSettings.candidates,
        results: int = SearchSettings.results,
        visitors: SearchActivity = VISITOR_SEARCHES,
    ) -> None:
        self.dataset_name = dataset
        self.encoder_id = encoder
        self.reranker_id = reranker
        self.examples = tuple(EXAMPLE_QUERIES.get(dataset, ()) if examples is None else examples)
        self.candidates = candidates
        self.results = results
        self.visitors = visitors
        self._paused = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._stage = ""
        self._done = 0
        self._total = 0
        self._error: str | None = None
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self.encoder = None  # what it loaded: the registry's shared instances
        self.reranker = None
        self._stage_started = 0.0
        self._stage_seconds: dict[str, float] = {}

    # --- control ------------------------------------------------------------------------

    def start(self, progress: Callable[[WarmupStatus], None] | None = None) -> bool:
        """Start the warm-up in a background thread; False if it was already started.

        ``progress`` is called (in that thread) with the status at every step.
        """
        with self._lock:
            if self._started_at is not None:
                return False
            self._started_at = time.perf_counter()
            self._thread = threading.Thread(
                target=self._work, args=(progress,), name="rerank-warmup", daemon=True
            )
        self._thread.start()
        return True

    def run(self, progress: Callable[[WarmupStatus], None] | None = None) -> WarmupStatus:
        """Run the warm-up in this thread (once); return the final status."""
        with self._lock:
            if self._started_at is None:
                self._started_at = time.perf_counter()
                mine = True
            else:
                mine = False
        if mine:
            self._work(progress)
        else:
            self._finished.wait()
        return self.status()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until a first search needs nothing more (or the warm-up ended)."""
        return self._ready.wait(timeout)

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Block until the warm-up ended (done or failed)."""
        return self._finished.wait(timeout)

    def status(self) -> WarmupStatus:
        """Where the warm-up is now."""
        with self._lock:
            started = self._started_at is not None
            end = self._ended_at if self._ended_at is not None else time.perf_counter()
            elapsed = end - self._started_at if started else 0.0
            stage = self._stage
            label = STAGE_LABELS.get(stage, "Ready" if stage == "done" else "Starting")
            if self._paused:
                label += " (paused while visitors search)"
            return WarmupStatus(
                stage=stage,
                label=label.format(dataset=self.dataset_name),
                done=self._done,
                total=self._total,
                started=started,
                ready=self._ready.is_set(),
                finished=self._finished.is_set(),
                error=self._error,
                seconds=elapsed,
                stage_seconds=dict(self._stage_seconds),
                paused=self._paused,
            )

    # --- work ---------------------------------------------------------------------------

    def _enter(self, stage: str, total: int = 0) -> None:
        now = time.perf_counter()
        with self._lock:
            if self._stage in STAGES:
                self._stage_seconds[self._stage] = now - self._stage_started
            self._stage, self._done, self._total = stage, 0, total
            self._stage_started = now

    def _yield_to_visitors(self, report: Callable[[], None]) -> None:
        """Wait while any visitor's search is running (status: paused meanwhile)."""
        if self.visitors.running == 0:
            return
        with self._lock:
            self._paused = True
        report()
        self.visitors.wait_until_idle()
        with self._lock:
            self._paused = False
        report()

    def _count(self, done: int, total: int) -> None:
        with self._lock:
            self._done, self._total = done, total

    def _work(self, progress: Callable[[WarmupStatus], None] | None = None) -> None:
        def report() -> None:
            if progress is not None:
                progress(self.status())

        def counted(done: int, total: int) -> None:
            self._count(done, total)
            report()

        try:
            from core.data.datasets import load_dataset
            from core.models.registry import load_encoder, load_reranker
            from core.search.index import build_index
            from core.search.pipeline import search_with_rerank

            self._enter("dataset")
            report()
            dataset = load_dataset(self.dataset_name)
            self._enter("reranker")
            report()
            reranker = self.reranker = load_reranker(self.reranker_id)
            self._enter("encoder")
            report()
            encoder = self.encoder = load_encoder(self.encoder_id)
            embed_fields = dataset.default_embed_fields
            self._enter("index", len(dataset))
            report()
            build = build_index(dataset, encoder, embed_fields, progress=counted)
            self._ready.set()
            self._enter("examples", len(self.examples))
            report()
            for number, query in enumerate(self.examples, start=1):
                self._yield_to_visitors(report)
                with background(self.visitors):
                    search_with_rerank(
                        dataset,
                        query,
                        encoder=encoder,
                        reranker=reranker,
                        embed_fields=embed_fields,
                        rerank_fields=dataset.default_rerank_fields,
                        num_candidates=self.candidates,
                        num_results=self.results,
                        index=build.index,
                    )
                counted(number, len(self.examples))
            self._enter("done")
        except Exception as exc:  # reported in the status; sessions meet it themselves
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            with self._lock:
                self._ended_at = time.perf_counter()
            self._ready.set()
            self._finished.set()
            report()


_DEFAULT: Warmup | None = None
_DEFAULT_LOCK = threading.Lock()


def default_warmup() -> Warmup:
    """The process-wide warm-up of the app's default view (movies, default models)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Warmup()
        return _DEFAULT


def log_line(status: WarmupStatus) -> str | None:
    """One line for a server log when the warm-up enters a stage or ends (else None)."""
    if status.error:
        return f"warm-up failed after {status.seconds:.1f} s: {status.error}"
    if status.finished:
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in status.stage_seconds.items())
        return f"warm-up done in {status.seconds:.1f} s ({stages})"
    if status.paused:
        return (
            f"warm-up: paused before example {status.done + 1} of {status.total}: "
            f"visitors are searching ({status.seconds:.1f} s)"
        )
    if status.done == 0 and status.stage in STAGES:
        return f"warm-up: {status.label}… ({status.seconds:.1f} s)"
    return None


def prepared_on_disk(dataset: str = "movies", encoder: str = DEFAULT_ENCODER) -> bool:
    """Whether the disk caches already hold the bi-encoder export and the dataset's
    embeddings (what ``python -m core warmup --if-needed`` would otherwise make).

    Reads no model: it only looks for the files the warm-up would write.
    """
    from core.data.datasets import load_dataset
    from core.models.encoders import _export_key
    from core.models.onnx_encoder import cached_export
    from core.models.paths import cache_dir
    from core.search.index import embedding_cache_key

    key = _export_key(encoder)
    if key is not None and cached_export(key, "fp32") is None:
        return False
    data = load_dataset(dataset)
    embeddings = embedding_cache_key(encoder, data, data.default_embed_fields)
    return (cache_dir() / "embeddings" / f"{embeddings}.npy").is_file()
