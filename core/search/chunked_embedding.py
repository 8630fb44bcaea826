"""Chunked, resumable corpus encoding into the embedding cache.

A corpus is encoded ``chunk`` documents at a time (default 1,024). Each chunk's vectors
are appended to ``<cache dir>/embeddings/partial/<key>.f32`` (raw float32 rows), flushed
to disk, and only then counted in a small progress record next to it
(``<key>.json``, written atomically). A build that stops for any reason (a rerun, a
cancel, a killed server) resumes from the last chunk the record counts: bytes appended
after it are cut off, so at most the chunk in flight is encoded again.

Finishing writes ``<cache dir>/embeddings/<key>.npy`` byte for byte as
:func:`numpy.save` writes the whole matrix (the file :mod:`core.search.index` reads),
atomically, then removes the partial files. Documents are independent of their
neighbours in every local encoder (ONNX: one document per call; PyTorch: fixed batches
within chunks of a multiple of its batch size), so the vectors equal a one-shot
encoding's exactly.

Between chunks the build calls ``should_stop`` (a cancel ends it with
:class:`EmbeddingCancelled`, keeping what is done) and ``pause`` (background builds wait
there while visitors search).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data import upload_artefacts
from core.models.base import Encoder, ProgressFn
from core.models.errors import CoreError
from core.models.paths import atomic_write, cache_dir
from core.search.embedding_cache import key_lock

CHUNK_DOCS = 1024
PROGRESS_STEP = 64  # documents per encoder call within a chunk (ONNX encoders)
# Bump when the partial layout changes: older partial files are then started afresh.
PARTIAL_VERSION = 1


class EmbeddingCancelled(CoreError):
    """A chunked build stopped on request; the chunks done stay on disk for a resume."""


@dataclass(frozen=True)
class ChunkedResult:
    """Vectors of a chunked build and how they were obtained."""

    vectors: np.ndarray
    from_cache: bool  # the finished file was already there
    chunks: int  # chunks in the whole corpus
    chunks_resumed: int  # read back from a partial build
    chunks_encoded: int  # encoded by this call
    seconds: float


def final_path(key: str) -> Path:
    """The finished cache file of ``key`` (what :func:`core.search.index.build_index` reads)."""
    return cache_dir() / "embeddings" / f"{key}.npy"


def partial_paths(key: str) -> tuple[Path, Path]:
    """The partial vectors file and the progress record of ``key``."""
    folder = cache_dir() / "embeddings" / "partial"
    return folder / f"{key}.f32", folder / f"{key}.json"


def partial_progress(key: str) -> dict | None:
    """The progress record of an unfinished build of ``key`` (None if there is none)."""
    with contextlib.suppress(OSError, ValueError):
        return json.loads(partial_paths(key)[1].read_text())
    return None


def read_cached(path: Path, rows: int, dimension: int) -> np.ndarray | None:
    """The cached matrix at ``path`` if it has ``rows`` x ``dimension`` float32, else None."""
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # EOFError: an empty file
        return None
    if vectors.shape != (rows, dimension) or vectors.dtype != np.float32:
        return None
    return vectors


def encode_chunked(
    key: str,
    texts: Sequence[str],
    encoder: Encoder,
    *,
    chunk: int = CHUNK_DOCS,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    pause: Callable[[], None] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    owner: str | None = None,
) -> ChunkedResult:
    """The vectors of ``texts`` under cache key ``key``: read when finished, else encoded
    chunk by chunk from where an earlier build stopped, then written as the cache file.

    ``progress(done, total)`` counts documents (resumed ones included); ``on_chunk(done,
    total)`` counts chunks after each is on disk; ``on_start(done, total)`` is called
    once before encoding, with the documents read back from a partial build. Raises
    :class:`EmbeddingCancelled` when ``should_stop()`` turns true between chunks. One
    build per key at a time in this process (the key's lock) and across processes (a
    lock file). ``owner``: the dataset's name; for an upload (``upload-<16 hex>``) the
    files are recorded as its (:mod:`core.data.upload_artefacts`), evicted with it, and
    the upload store's cap is enforced once the finished file is written.
    """
    started = time.perf_counter()
    rows, dimension = len(texts), int(encoder.dimension or 0)
    if not dimension and hasattr(encoder, "ensure_dimension"):  # a hosted model: ask it
        dimension = int(encoder.ensure_dimension())
    chunk = max(1, int(chunk))
    chunks = -(-rows // chunk)
    target = final_path(key)
    vectors = read_cached(target, rows, dimension)  # finished: no lock needed to read it
    if vectors is not None:
        return ChunkedResult(vectors, True, chunks, 0, 0, time.perf_counter() - started)
    with key_lock(key), _file_lock(key):
        vectors = read_cached(target, rows, dimension)  # made while this waited
        if vectors is not None:
            return ChunkedResult(vectors, True, chunks, 0, 0, time.perf_counter() - started)
        spec = {"version": PARTIAL_VERSION, "rows": rows, "dimension": dimension, "chunk": chunk}
        data_path, record_path = partial_paths(key)
        if owner:
            upload_artefacts.note(owner, [data_path, record_path, _lock_path(key), target])
        done = _resume_point(data_path, record_path, spec)
        out = np.empty((rows, dimension), dtype=np.float32)
        if done:
            count = min(rows, done * chunk) * dimension
            saved = np.fromfile(data_path, dtype=np.float32, count=count)
            out[: len(saved) // dimension] = saved.reshape(-1, dimension)
        resumed = done
        if on_start is not None:
            on_start(min(rows, done * chunk), rows)
        if progress is not None and done:
            progress(min(rows, done * chunk), rows)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        with open(data_path, "ab") as handle:

            def keep(number: int, start: int, stop: int, block: np.ndarray) -> None:
                out[start:stop] = block
                handle.write(block.tobytes())
                handle.flush()
                os.fsync(handle.fileno())
                atomic_write(record_path, json.dumps({**spec, "done": number + 1}).encode())

            encode_chunks(
                texts,
                encoder,
                keep,
                chunk=chunk,
                first=done,
                dimension=dimension,
                progress=progress,
                should_stop=should_stop,
                pause=pause,
                on_chunk=on_chunk,
            )
        write_npy(target, out)
        data_path.unlink(missing_ok=True)
        record_path.unlink(missing_ok=True)
    # whoever takes the lock later finds the finished file first: the lock file can go
    _lock_path(key).unlink(missing_ok=True)
    if owner:
        _enforce_upload_cap(owner, target)
    seconds = time.perf_counter() - started
    return ChunkedResult(out, False, chunks, resumed, chunks - resumed, seconds)


def encode_chunks(
    texts: Sequence[str],
    encoder: Encoder,
    keep: Callable[[int, int, int, np.ndarray], None],
    *,
    chunk: int = CHUNK_DOCS,
    first: int = 0,
    dimension: int | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    pause: Callable[[], None] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> int:
    """The one chunked encoding loop (the cache's :func:`encode_chunked`, a collection
    build's vectors): chunks ``first`` to the last of ``texts``, ``chunk`` documents
    each; ``keep(number, start, stop, block)`` must make chunk ``number`` (rows ``start``
    to ``stop``) durable before it returns, so a stop anywhere loses at most the chunk in
    flight. Between chunks: ``pause()``, then ``should_stop()`` (true: raise
    :class:`EmbeddingCancelled`); within a chunk, ONNX encoders go in steps of
    :data:`PROGRESS_STEP` documents (:func:`_encode_block`). ``texts`` may be any
    sequence that slices (a collection reads each chunk's texts from its database).
    Returns the chunks encoded."""
    rows = len(texts)
    chunk = max(1, int(chunk))
    chunks = -(-rows // chunk)
    for number in range(first, chunks):
        if pause is not None:
            pause()
        if should_stop is not None and should_stop():
            raise EmbeddingCancelled(f"stopped after {number} of {chunks} chunks")
        start, stop = number * chunk, min(rows, (number + 1) * chunk)

        def within(part: int, _total: int, start: int = start) -> None:
            if progress is not None:
                progress(start + part, rows)

        block = _encode_block(encoder, texts[start:stop], within, should_stop)
        width = dimension or (block.shape[-1] if block.ndim == 2 else 0)
        if block.shape != (stop - start, width):
            raise ValueError(f"the encoder returned {block.shape} for {stop - start} texts")
        keep(number, start, stop, block)
        if on_chunk is not None:
            on_chunk(number + 1, chunks)
    return max(0, chunks - first)


def _encode_block(
    encoder: Encoder,
    texts: Sequence[str],
    progress: ProgressFn,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """One chunk's vectors. ONNX encoders run each document alone (its vector does not
    depend on its neighbours), so they get the chunk in steps of :data:`PROGRESS_STEP`
    documents: progress every few seconds, a cancel is seen between steps (the chunk is
    then dropped), and a pause for visitors leaves little of a step to finish on one
    core. Others get the whole chunk in one call."""
    texts = list(texts)
    step = PROGRESS_STEP if str(getattr(encoder, "backend", "")).startswith("onnx") else 0
    if not step or len(texts) <= step:
        return np.ascontiguousarray(encoder.encode(texts, progress=progress), dtype=np.float32)
    parts = []
    for begin in range(0, len(texts), step):
        if begin and should_stop is not None and should_stop():
            raise EmbeddingCancelled("stopped within a chunk (it is encoded again on resume)")
        parts.append(encoder.encode(texts[begin : begin + step]))
        progress(min(begin + step, len(texts)), len(texts))
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _enforce_upload_cap(owner: str, target: Path) -> None:
    """The finished file is the upload's (recorded again: an eviction during the build
    removed its record); older uploads make room if the store is now over its cap."""
    from core.data.upload_store import UploadStore, is_upload_id

    if not is_upload_id(owner):
        return
    try:
        upload_artefacts.note(owner, [target])
        UploadStore().evict(keep=owner)
    except (OSError, CoreError) as exc:  # the vectors are made: a failed clean-up is a log line
        print(f"upload store: could not enforce its cap: {exc}", file=sys.stderr)


def write_npy(path: Path, vectors: np.ndarray) -> None:
    """Write ``vectors`` as float32 ``.npy`` atomically, as :func:`numpy.save` does."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vectors, dtype=np.float32), allow_pickle=False)
    atomic_write(path, buffer.getvalue())


def discard_partial(key: str) -> None:
    """Remove an unfinished build of ``key`` (e.g. with its upload)."""
    for path in partial_paths(key):
        path.unlink(missing_ok=True)


def _resume_point(data_path: Path, record_path: Path, spec: dict) -> int:
    """Chunks of a partial build that are complete on disk; the data file is cut back to
    them (a chunk appended but not recorded is dropped). 0: start afresh."""
    record = None
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(record_path.read_text())
    done = int(record.get("done", 0)) if isinstance(record, dict) else 0
    if not record or {k: record.get(k) for k in spec} != spec:
        done = 0
    row_bytes = spec["dimension"] * 4
    need = min(spec["rows"], done * spec["chunk"]) * row_bytes
    size = data_path.stat().st_size if data_path.exists() else 0
    if size < need:  # the record claims more than the file holds: start again
        done, need = 0, 0
    if data_path.exists() and size != need:
        with open(data_path, "r+b") as handle:
            handle.truncate(need)
    if not done:
        record_path.unlink(missing_ok=True)
    return done


@contextlib.contextmanager
def _file_lock(key: str) -> Iterator[None]:
    """An exclusive lock on ``key`` across processes (released by the OS if one dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the in-process lock only
        yield
        return
    path = _lock_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _lock_path(key: str) -> Path:
    return partial_paths(key)[0].with_suffix(".lock")
