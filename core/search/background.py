"""Corpus embedding in the background: one job per corpus, shared, resumable, yielding.

A :class:`BackgroundEmbedder` owns one worker thread per process that builds dense
indexes one job at a time (the encoder itself uses every core). A job is named by what
decides its vectors: the dataset's content hash, the encoder's cache key, the embedded
fields and the dense-passage settings (:func:`job_key`). :meth:`BackgroundEmbedder.start`
starts a job or joins the one already there, so two sessions uploading the same file
share one build; each caller names itself as a *user*, and
:meth:`BackgroundEmbedder.release` cancels a job nobody uses any more (the chunks done
stay on disk: a later start resumes them).

Plain indexes are encoded by :func:`core.search.chunked_embedding.encode_chunked`:
chunk by chunk into the cache, resumable after a rerun, a cancel or a restart. Between
chunks, and between two documents within one, the job waits while a visitor's search or
page run is in progress (:data:`core.search.activity.VISITOR_SEARCHES`), as the warm-up
does. Dense-passage indexes are built in one piece by
:func:`core.search.index.build_index` (still in the background, not resumable).

:meth:`EmbeddingJob.status` is safe from any thread: state, documents done, the
measured docs/s (paused time excluded) and the time left at that rate.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.data.documents import Dataset
from core.models.base import Encoder
from core.models.parallel import background
from core.search.activity import VISITOR_SEARCHES, SearchActivity
from core.search.budget import (
    ENCODING_RATES,
    Cost,
    EmbeddingEstimate,
    embedding_estimate,
    encoder_key,
    sample_tokens,
)
from core.search.chunked_embedding import (
    CHUNK_DOCS,
    EmbeddingCancelled,
    encode_chunked,
    final_path,
    partial_progress,
)
from core.search.embedding_cache import embedding_cache_key, waiting_for_keys
from core.search.index import IndexBuild, VectorIndex, build_index
from core.search.passages import PassageSettings

JobKey = tuple[str, str, tuple[str, ...], PassageSettings | None]
STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = frozenset({"done", "failed", "cancelled"})
KEEP_FINISHED = 8  # finished jobs remembered (their builds too)


BACKGROUND_MIN_DOCS = 500  # smaller uploads embed in seconds, within the page's run


def background_min_docs() -> int:
    """Uploads with at least this many records are embedded in the background
    (``RERANK_BACKGROUND_MIN_DOCS``, default 500: ~7-11 s of encoding here)."""
    import os

    try:
        return max(0, int(os.environ.get("RERANK_BACKGROUND_MIN_DOCS", BACKGROUND_MIN_DOCS)))
    except ValueError:
        return BACKGROUND_MIN_DOCS


def job_key(
    dataset: Dataset, encoder: Encoder, fields: Sequence[str], passages: PassageSettings | None
) -> JobKey:
    """What names a job: content, encoder, fields, passage settings."""
    model = getattr(encoder, "cache_key", encoder.name)
    return (dataset.content_hash, model, tuple(fields), passages)


@dataclass(frozen=True)
class StartGate:
    """Whether a page may start the background embedding of a corpus now, and what it
    costs (costs are asked before they are spent: issue 29).

    ``job`` is a job already there for the same key, which the page joins without
    asking (queued, running, done or failed: another session's or this one's);
    ``cached``: the finished vectors are on disk, read rather than encoded. Otherwise
    the job would be new and ``estimate`` prices it (chunks an interrupted build left on
    disk excluded); above ``RERANK_CONFIRM_SECONDS`` it waits for a click
    (:attr:`needs_click`), and the visitor's budget is charged :attr:`cost` when it
    starts."""

    key: JobKey
    dataset: Dataset
    encoder: Encoder
    fields: tuple[str, ...]
    passages: PassageSettings | None
    estimate: EmbeddingEstimate | None = None
    job: EmbeddingJob | None = None
    cached: bool = False

    @property
    def new(self) -> bool:
        """Whether starting means encoding (no job to join, nothing finished on disk)."""
        return self.job is None and not self.cached

    @property
    def cost(self) -> Cost:
        """What starting spends: the estimate for a new job, nothing to join or read."""
        if self.new and self.estimate is not None:
            return self.estimate.cost
        return Cost(0.0, f"Embedding {len(self.dataset):,} records")

    @property
    def needs_click(self) -> bool:
        """Whether the job must wait for the visitor's click (a new job over the threshold)."""
        return self.new and self.cost.needs_click

    def line(self) -> str:
        """One line for the page: the estimate, or why nothing needs to be spent."""
        if self.job is not None:
            return f"The dense index is being built already ({self.job.status().state})"
        if self.cached:
            return "The dense index is on disk already"
        assert self.estimate is not None
        return self.estimate.line()


def start_gate(
    dataset: Dataset,
    encoder: Encoder,
    fields: Sequence[str],
    passages: PassageSettings | None = None,
    *,
    embedder: BackgroundEmbedder | None = None,
    retry: bool = False,
) -> StartGate:
    """What starting the background embedding of ``dataset`` would take: a job to join,
    vectors already on disk, or a new job and its estimate (see :class:`StartGate`).
    A cancelled job is never joined (starting makes a new one); a failed one only
    without ``retry``."""
    embedder = embedder if embedder is not None else default_embedder()
    fields = tuple(fields)
    key = job_key(dataset, encoder, fields, passages)
    known = dict(key=key, dataset=dataset, encoder=encoder, fields=fields, passages=passages)
    job = embedder.get(key)
    ended = ("cancelled", "failed") if retry else ("cancelled",)
    if job is not None and job.status().state not in ended:
        return StartGate(**known, job=job)
    if vectors_on_disk(dataset, encoder, fields, passages):
        return StartGate(**known, cached=True)
    done = resumable_docs(dataset, encoder, fields) if passages is None else 0
    estimate = embedding_estimate(dataset, encoder, fields, passages, done=done)
    return StartGate(**known, estimate=estimate)


def vectors_on_disk(
    dataset: Dataset, encoder: Encoder, fields: Sequence[str], passages: PassageSettings | None
) -> bool:
    """Whether the finished vectors of this corpus and encoding are in the disk cache."""
    from core.search.passage_index import encoder_tokenizer, passage_spec

    fields = dataset.check_fields(fields, "embed")
    model = encoder_key(encoder)
    if passages is None:
        return final_path(embedding_cache_key(model, dataset, fields)).is_file()
    _, length, own = encoder_tokenizer(encoder)
    spec = passage_spec(passages, length, own)
    key = embedding_cache_key(model, dataset, fields, passages=spec)
    return final_path(key).with_suffix(".npz").is_file()


def resumable_docs(dataset: Dataset, encoder: Encoder, fields: Sequence[str]) -> int:
    """Documents an interrupted chunked build of this corpus left on disk (0 if none)."""
    fields = dataset.check_fields(fields, "embed")
    record = partial_progress(embedding_cache_key(encoder_key(encoder), dataset, fields))
    if not record or record.get("rows") != len(dataset):
        return 0
    try:
        return min(len(dataset), int(record["done"]) * int(record["chunk"]))
    except (KeyError, TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job, for the pages, the bench and the tests."""

    state: str  # one of STATES
    done: int  # documents embedded (resumed ones included)
    total: int
    docs_per_second: float | None  # measured on this job's own encoding, pauses excluded
    chunks: int  # chunks in the corpus (0 for a dense-passage build)
    chunks_resumed: int  # read back from an earlier, interrupted build
    chunks_encoded: int  # encoded by this job
    paused: bool  # waiting for visitors' searches
    seconds: float  # since the job started running
    error: str | None = None  # one line, when failed

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled."""
        return self.state in FINISHED

    @property
    def fraction(self) -> float:
        """Progress in 0..1."""
        if self.state == "done":
            return 1.0
        return self.done / self.total if self.total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the measured rate (None before a rate is known)."""
        if self.state == "done":
            return 0.0
        if not self.docs_per_second:
            return None
        return max(0, self.total - self.done) / self.docs_per_second

    def progress_text(self) -> str:
        """``43%, about 3 min left`` (or ``12%, starting`` before a rate is known)."""
        percent = f"{int(self.fraction * 100)}%"
        if self.state == "queued":
            return f"{percent}, waiting for another build to finish"
        if self.paused:
            return f"{percent}, paused while a search runs"
        eta = self.eta_seconds
        if eta is None:
            return f"{percent}, measuring the speed"
        return f"{percent}, about {_duration(eta)} left"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class _GiveWay:
    """When a background build steps aside: while visitors search, unless some thread
    waits for an embedding key's lock (a page run that needs the very index this job
    holds would otherwise wait for a job that waits for it)."""

    def __init__(self, visitors: SearchActivity) -> None:
        self.visitors = visitors

    def busy(self) -> bool:
        return self.visitors.busy() and not waiting_for_keys()

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return False
            self.visitors.wait_until_idle(left)
        return True


class EmbeddingJob:
    """One corpus being embedded; its result is :attr:`build` once ``state == "done"``."""

    def __init__(
        self,
        key: JobKey,
        dataset: Dataset,
        encoder: Encoder,
        fields: tuple[str, ...],
        passages: PassageSettings | None,
        *,
        visitors: SearchActivity,
        chunk: int,
    ) -> None:
        self.key = key
        self.dataset = dataset
        self.encoder = encoder
        self.fields = fields
        self.passages = passages
        self.visitors = _GiveWay(visitors)
        self.chunk = chunk
        self.users: set[str] = set()
        self.build: IndexBuild | None = None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._state = "queued"
        self._done = 0
        self._encoded_docs = 0
        self._chunks = 0
        self._resumed = 0
        self._encoded = 0
        self._paused = False
        self._paused_seconds = 0.0
        self._started: float | None = None
        self._ended: float | None = None
        self._error: str | None = None
        self._first_done: int | None = None

    # --- for callers --------------------------------------------------------------------

    def status(self) -> JobStatus:
        """Where the job is now."""
        with self._lock:
            now = self._ended or time.perf_counter()
            elapsed = now - self._started if self._started else 0.0
            active = elapsed - self._paused_seconds
            encoded = self._done - (self._first_done or 0)
            rate = encoded / active if encoded > 0 and active > 0 else None
            return JobStatus(
                state=self._state,
                done=self._done,
                total=len(self.dataset),
                docs_per_second=rate,
                chunks=self._chunks,
                chunks_resumed=self._resumed,
                chunks_encoded=self._encoded,
                paused=self._paused,
                seconds=elapsed,
                error=self._error,
            )

    def cancel(self) -> None:
        """Stop after the chunk in progress (a queued job never starts)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finished (done, failed or cancelled)."""
        return self._finished.wait(timeout)

    # --- work (the worker thread) -------------------------------------------------------

    def run(self) -> None:
        """Build the index; never raises (the state says how it ended)."""
        with self._lock:
            if self._cancel.is_set():
                self._finish("cancelled")
                return
            self._state, self._started = "running", time.perf_counter()
        try:
            with background(self.visitors):
                self.build = self._build()
            with self._lock:
                self._done = len(self.dataset)
                self._finish("done")
            self._record_rate()
        except EmbeddingCancelled:
            with self._lock:
                self._finish("cancelled")
            self._record_rate()
        except Exception as exc:  # one line for the pages; the trace for the log
            traceback.print_exc()
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                self._finish("failed")

    def _record_rate(self) -> None:
        """Tell :data:`core.search.budget.ENCODING_RATES` how fast this job encoded (the
        next estimate for this encoder uses it)."""
        if self.build is not None and self.build.from_cache:
            return
        with self._lock:
            if self._started is None or self._ended is None:
                return
            active = self._ended - self._started - self._paused_seconds
            if self.passages is not None:  # one piece: its progress counts passages
                encoded = len(self.dataset) if self._state == "done" else 0
            else:
                encoded = self._done - (self._first_done or 0)
        try:
            tokens, vectors = sample_tokens(self.dataset, self.encoder, self.fields, self.passages)
        except Exception:  # a rate is a nicety: never fail a finished job for it
            return
        ENCODING_RATES.record(encoder_key(self.encoder), encoded, active, tokens, vectors)

    def _finish(self, state: str) -> None:
        self._state = state
        self._ended = time.perf_counter()
        self._finished.set()

    def _build(self) -> IndexBuild:
        started = time.perf_counter()
        if self.passages is not None:
            self._pause()
            return build_index(
                self.dataset,
                self.encoder,
                self.fields,
                progress=self._progress,
                passages=self.passages,
            )
        fields = self.dataset.check_fields(self.fields, "embed")
        key = embedding_cache_key(self.key[1], self.dataset, fields)
        result = encode_chunked(
            key,
            self.dataset.texts(fields, "embed"),
            self.encoder,
            chunk=self.chunk,
            progress=self._progress,
            should_stop=self._cancel.is_set,
            pause=self._pause,
            on_chunk=self._on_chunk,
            on_start=self._start_encoding,
            owner=self.dataset.name,  # an upload's files go with it (upload_artefacts)
        )
        with self._lock:
            self._chunks, self._resumed = result.chunks, result.chunks_resumed
            self._encoded = result.chunks_encoded
        return IndexBuild(
            VectorIndex(self.dataset.ids, result.vectors),
            result.from_cache,
            time.perf_counter() - started,
            final_path(key),
        )

    def _start_encoding(self, resumed: int, total: int) -> None:
        with self._lock:  # resumed documents are not this job's speed: count from here
            self._first_done, self._done = resumed, resumed
            self._started, self._paused_seconds = time.perf_counter(), 0.0

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            if self._first_done is None:
                self._first_done = 0
            self._done = done

    def _on_chunk(self, done: int, total: int) -> None:
        with self._lock:
            self._chunks, self._encoded = total, self._encoded + 1
            self._resumed = done - self._encoded

    def _pause(self) -> None:
        """Wait while visitors search (paused time is not counted in the rate)."""
        if not self.visitors.busy():
            return
        started = time.perf_counter()
        with self._lock:
            self._paused = True
        self.visitors.wait_until_idle()
        with self._lock:
            self._paused = False
            self._paused_seconds += time.perf_counter() - started


class BackgroundEmbedder:
    """The process's embedding jobs and the worker thread that runs them in turn."""

    def __init__(
        self,
        *,
        visitors: SearchActivity = VISITOR_SEARCHES,
        chunk: int = CHUNK_DOCS,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.visitors = visitors
        self.chunk = chunk
        self.log = log
        self._jobs: OrderedDict[JobKey, EmbeddingJob] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[EmbeddingJob] = []
        self._thread: threading.Thread | None = None

    def start(
        self,
        dataset: Dataset,
        encoder: Encoder,
        fields: Sequence[str],
        passages: PassageSettings | None = None,
        *,
        user: str = "",
        retry: bool = False,
    ) -> EmbeddingJob:
        """The job for this corpus and encoding, started if there is none (or the last
        was cancelled; a failed one only with ``retry``); ``user`` joins its users."""
        key = job_key(dataset, encoder, fields, passages)
        with self._lock:
            job = self._jobs.get(key)
            ended = job is not None and job.status().state in ("cancelled", "failed")
            if job is None or (ended and (retry or job.status().state == "cancelled")):
                job = EmbeddingJob(
                    key,
                    dataset,
                    encoder,
                    tuple(fields),
                    passages,
                    visitors=self.visitors,
                    chunk=self.chunk,
                )
                self._jobs[key] = job
                self._queue.append(job)
                self._ensure_worker()
                self._wake.notify_all()
            self._jobs.move_to_end(key)
            if user:
                job.users.add(user)
            self._forget_old()
            return job

    def get(self, key: JobKey) -> EmbeddingJob | None:
        """The job of ``key``, if one was started (and not forgotten)."""
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[EmbeddingJob]:
        """Every job remembered, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def release(self, key: JobKey, user: str) -> bool:
        """``user`` no longer needs the job of ``key``; cancel it if nobody does and it is
        not finished. True if it was cancelled."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                return False
            job.users.discard(user)
            if job.users or job.status().finished:
                return False
            job.cancel()
            return True

    def prune_users(self, alive: Callable[[str], bool]) -> None:
        """Drop users for whom ``alive`` is False (closed sessions), cancelling jobs left
        without any."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            for user in [u for u in list(job.users) if not alive(u)]:
                self.release(job.key, user)

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="rerank-embedding", daemon=True)
            self._thread.start()

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.status().finished]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[key]

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
                job = self._queue.pop(0)
            if self.log is not None:
                self.log(f"embedding job {job.key[0][:12]}: started, {len(job.dataset):,} records")
            job.run()
            if self.log is not None:
                self.log(log_line(job))


def log_line(job: EmbeddingJob) -> str:
    """One line for a server log when a job ends: how, chunks encoded and resumed, rate."""
    status = job.status()
    rate = f"{status.docs_per_second:.1f} docs/s" if status.docs_per_second else "no rate"
    line = (
        f"embedding job {job.key[0][:12]}: {status.state} after {status.seconds:.1f} s, "
        f"{status.chunks_encoded} chunks encoded, {status.chunks_resumed} resumed "
        f"(of {status.chunks}), {rate}"
    )
    return line + (f": {status.error}" if status.error else "")


_DEFAULT: BackgroundEmbedder | None = None
_DEFAULT_LOCK = threading.Lock()


def default_embedder() -> BackgroundEmbedder:
    """The process-wide background embedder (shared by every session and page)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = BackgroundEmbedder(chunk=_chunk_docs(), log=_log)
        return _DEFAULT


def _chunk_docs() -> int:
    """Documents per chunk: ``RERANK_EMBED_CHUNK_DOCS``, default 1,024."""
    import os

    try:
        return max(1, int(os.environ.get("RERANK_EMBED_CHUNK_DOCS", CHUNK_DOCS)))
    except ValueError:
        return CHUNK_DOCS


def _log(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)
