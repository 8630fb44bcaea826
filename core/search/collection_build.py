"""Build a collection on disk from a file, in stages, resumable after an interruption.

:func:`build_collection` writes the format described in :mod:`core.data.collection`:

1. **ingest** — stream the file (:func:`core.data.streams.iter_records`) into
   ``records.sqlite``, committing every :data:`INGEST_CHUNK` records; a resumed build
   skips the rows already stored.
2. **hash** — the content hash, one sequential pass over the stored rows.
3. **encode** — embed every record's embed text with the encoder into ``vectors.npy``
   (a float32 memmap) through the one chunked encoder of uploads and Milvus exports
   (:func:`core.search.chunked_embedding.encode_chunks`), :data:`ENCODE_CHUNK` rows per
   checkpoint; the encoder runs each document alone on every core (its vector never
   depends on its batch).
4. **bm25** (:mod:`core.search.collection_bm25`) — tokens per chunk of
   :data:`~core.search.collection_bm25.BM25_CHUNK` documents (checkpointed), then the
   BM25 score matrix written straight into bm25s' memory-mappable format.
5. **ann** (:mod:`core.search.collection_ann`) — at
   :data:`~core.search.collection_index.EXACT_THRESHOLD` rows or more, a faiss
   ``IVF{nlist},SQ8`` index trained on a sample, filled in blocks from the memmap,
   ``nprobe`` chosen as the smallest reaching recall@100 >=
   :data:`~core.search.collection_ann.TARGET_RECALL` on query-like runs of words from
   sample records; that recall is stored in the manifest.
6. **manifest** — written last; the working folder ``build/`` is removed.

Memory stays flat: one chunk of records, texts or tokens at a time, plus the posting
arrays of the BM25 stage, which are written into memmaps. What the stages share (the
resumable state, reading stored records) is in :mod:`core.search.collection_state`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data.collection import (
    ANN_INDEX,
    BM25_DIR,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    RECORDS,
    VECTORS,
    collection_path,
)
from core.data.documents import _TITLE_CANDIDATES, value_to_text
from core.data.streams import iter_records, source_format
from core.models.base import Encoder
from core.models.errors import DatasetError, FieldError
from core.models.paths import atomic_write
from core.search.chunked_embedding import CHUNK_DOCS, encode_chunks
from core.search.collection_ann import build_ann, sample_recall_queries
from core.search.collection_bm25 import BM25_B, BM25_K1, build_bm25
from core.search.collection_index import (
    EXACT_THRESHOLD,
)
from core.search.collection_state import BuildProgress, BuildState, StoredTexts, embed_texts
from core.search.retrievers import BM25_METHOD

INGEST_CHUNK = 5_000
ENCODE_CHUNK = CHUNK_DOCS  # the chunked encoder's chunk, as for uploads
STAGES = ("ingest", "hash", "encode", "ann", "bm25", "manifest")
_ID_CANDIDATES = ("id", "_id", "doc_id", "docid")


@dataclass
class BuildReport:
    """What a build did: counts, seconds per stage, the index chosen, disk use."""

    name: str
    folder: Path
    count: int
    dimension: int
    no_text: int
    index_kind: str
    recall_at_100: float | None
    nprobe: int | None
    recall_queries: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    resumed: dict[str, int] = field(default_factory=dict)
    disk_bytes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines for the terminal."""
        total = sum(self.seconds.values())
        index = (
            "exact (below the ANN threshold)"
            if self.index_kind == "exact"
            else f"faiss IVF-SQ8, nprobe {self.nprobe}, recall@100 vs exact "
            f"{self.recall_at_100:.3f} ({self.recall_queries})"
        )
        lines = [
            f"collection '{self.name}': {self.count:,} records, {self.dimension}-d vectors, "
            f"{self.no_text:,} without text to embed",
            f"index: {index}",
            "time: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
            + f"; total {total:.1f} s",
            "disk: "
            + ", ".join(f"{k} {_mb(v)}" for k, v in self.disk_bytes.items())
            + f"; total {_mb(sum(self.disk_bytes.values()))}",
            f"folder: {self.folder}",
        ]
        if self.resumed:
            lines.append(
                "resumed: " + ", ".join(f"{k} from row {v:,}" for k, v in self.resumed.items())
            )
        return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def build_collection(
    source: str | os.PathLike[str],
    name: str,
    *,
    encoder: Encoder,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
    id_field: str | None = None,
    title_field: str | None = None,
    restart: bool = False,
    exact_threshold: int = EXACT_THRESHOLD,
    progress: BuildProgress | None = None,
    records: Callable[[], Iterator[dict[str, Any]]] | None = None,
    recall_queries: tuple[str, np.ndarray] | None = None,
) -> BuildReport:
    """Build collection ``name`` from the file ``source`` (see the module docstring).

    An unfinished build of the same file with the same options resumes where it stopped;
    ``restart`` discards any earlier build (finished or not). ``records`` replaces the
    file reader (tests, generated corpora); ``source`` then only names the input.
    ``recall_queries`` (a description and unit query vectors) are the queries on which
    ``nprobe`` is chosen and recall measured; by default runs of 6-12 words from 200
    sample records, encoded with ``encoder`` as queries.
    """
    folder = collection_path(name)
    src = Path(source).expanduser()
    if records is None:
        source_format(src)  # a clear error for an unknown type, before anything else
        if not src.is_file():
            raise DatasetError(f"file not found: {src}")
    if restart and folder.exists():
        shutil.rmtree(folder)
    if (folder / MANIFEST).is_file():
        raise DatasetError(
            f"collection '{name}' is already built ({folder}); pass --restart to rebuild it"
        )
    fresh = not folder.exists()
    work = folder / "build"
    work.mkdir(parents=True, exist_ok=True)
    stat = src.stat() if src.is_file() else None
    wanted = {
        "source": {
            "path": str(src.resolve()) if stat else str(source),
            "bytes": stat.st_size if stat else None,
            "mtime_ns": stat.st_mtime_ns if stat else None,
        },
        "options": {
            "model_key": getattr(encoder, "cache_key", encoder.name),
            "embed_fields": list(embed_fields) if embed_fields else None,
            "rerank_fields": list(rerank_fields) if rerank_fields else None,
            "id_field": id_field,
            "title_field": title_field,
            "exact_threshold": int(exact_threshold),
        },
    }
    state_path = work / "state.json"
    if state_path.is_file():
        state = BuildState(state_path, json.loads(state_path.read_text()))
        if {k: state.data[k] for k in wanted} != wanted:
            raise DatasetError(
                f"an unfinished build of '{name}' from another file or with other options is "
                f"in {folder}; pass --restart to discard it"
            )
    else:
        state = BuildState(state_path, {**wanted, "done": [], "timings": {}, "resumed": {}})
        state.save()
    say = progress or (lambda stage, done, total: None)
    read = records or (lambda: iter_records(src))

    if not state.done("ingest"):
        t0 = time.perf_counter()
        try:
            _ingest(folder, state, read, id_field, say, src.name or str(source))
        except DatasetError:
            if fresh:  # a refused file leaves no "unfinished build" behind
                shutil.rmtree(folder, ignore_errors=True)
            raise
        state.finish("ingest", time.perf_counter() - t0)
    db = sqlite3.connect(folder / RECORDS)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta"))
        count = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        fields = tuple(json.loads(meta["fields"]))
        resolved = _resolve_fields(db, fields, state, embed_fields, rerank_fields, title_field)
        if not state.done("hash"):
            t0 = time.perf_counter()
            state.data["content_hash"] = _content_hash(db, count, say)
            state.finish("hash", time.perf_counter() - t0)
        if not state.done("encode"):
            t0 = time.perf_counter()
            _encode(folder, db, count, resolved["embed_fields"], encoder, state, say)
            state.finish("encode", time.perf_counter() - t0)
        # The ANN index (faiss, GIL released) is built on a thread while BM25 tokenizes.
        ann_thread = None
        if not state.done("ann"):
            if recall_queries is None and count >= exact_threshold:
                recall_queries = sample_recall_queries(folder, count, encoder, resolved)
            ann_thread = _Stage(
                lambda: build_ann(folder, count, int(exact_threshold), say, recall_queries)
            )
        try:
            if not state.done("bm25"):
                t0 = time.perf_counter()
                build_bm25(folder, db, count, resolved["embed_fields"], state, say)
                state.finish("bm25", time.perf_counter() - t0)
        finally:
            if ann_thread is not None:
                ann_thread.join()
        if ann_thread is not None:
            state.data["index"] = ann_thread.result()
            state.finish("ann", ann_thread.seconds)
    finally:
        db.close()

    t0 = time.perf_counter()
    vectors = np.load(folder / VECTORS, mmap_mode="r")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "count": int(count),
        "dimension": int(vectors.shape[1]),
        "model": encoder.name,
        "model_key": getattr(encoder, "cache_key", encoder.name),
        "encoder_backend": getattr(encoder, "backend", None),
        "fields": list(fields),
        "id_field": meta.get("id_field") or None,
        "title_field": resolved["title_field"],
        "embed_fields": list(resolved["embed_fields"]),
        "rerank_fields": list(resolved["rerank_fields"]),
        "no_text": int(state.data.get("no_text", 0)),
        "content_hash": state.data["content_hash"],
        "source": {**state.data["source"], "format": src.suffix.lower().lstrip(".") or None},
        "vectors": {"file": VECTORS, "dtype": "float32", "normalized": True, "metric": "cosine"},
        "index": state.data["index"],
        "bm25": {
            "dir": BM25_DIR,
            "method": BM25_METHOD,
            "k1": BM25_K1,
            "b": BM25_B,
            "stopwords": "en",
            "stemmer": "snowball-english",
            "vocabulary": int(state.data.get("bm25_vocab", 0)),
        },
        "versions": _versions(),
        "timings": state.data["timings"],
    }
    state.add_time("manifest", time.perf_counter() - t0)
    manifest["timings"] = state.data["timings"]
    atomic_write(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    shutil.rmtree(work, ignore_errors=True)
    return BuildReport(
        name=name,
        folder=folder,
        count=int(count),
        dimension=int(vectors.shape[1]),
        no_text=manifest["no_text"],
        index_kind=manifest["index"]["kind"],
        recall_at_100=manifest["index"].get("recall_at_100"),
        nprobe=manifest["index"].get("nprobe"),
        recall_queries=manifest["index"].get("recall_queries"),
        seconds=dict(state.data["timings"]),
        resumed=dict(state.data.get("resumed", {})),
        disk_bytes=disk_usage(folder),
    )


class _Stage(threading.Thread):
    """A build stage run on its own thread; :meth:`result` re-raises its error."""

    def __init__(self, fn) -> None:
        super().__init__(daemon=True, name="collection-build-stage")
        self.fn = fn
        self.value = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.start()

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            self.value = self.fn()
        except BaseException as exc:  # handed to the caller by result()
            self.error = exc
        self.seconds = time.perf_counter() - t0

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


def disk_usage(folder: Path) -> dict[str, int]:
    """Bytes per part of a collection folder (records, vectors, ann, bm25, manifest)."""
    parts = {
        "records": folder / RECORDS,
        "vectors": folder / VECTORS,
        "ann": folder / ANN_INDEX,
        "bm25": folder / BM25_DIR,
    }
    out = {}
    for key, path in parts.items():
        if path.is_dir():
            out[key] = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            out[key] = path.stat().st_size
    return out


def _versions() -> dict[str, str]:
    import bm25s
    import faiss

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "bm25s": bm25s.__version__,
        "sqlite": sqlite3.sqlite_version,
    }


# --- 1. ingest -------------------------------------------------------------------------
def _ingest(folder: Path, state: BuildState, read, id_field: str | None, say, source: str) -> None:
    db = sqlite3.connect(folder / RECORDS)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS records "
            "(pos INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, record TEXT NOT NULL)"
        )
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        db.commit()
        meta = dict(db.execute("SELECT key, value FROM meta"))
        stored = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        if stored:
            state.data.setdefault("resumed", {})["ingest"] = stored
            state.save()
        fields: dict[str, None] = dict.fromkeys(json.loads(meta.get("fields", "[]")))
        chosen_id = meta.get("id_field", id_field or "")
        pos = 0
        batch: list[tuple[int, str, str]] = []
        for record in read():
            if pos == 0 and "id_field" not in meta:
                chosen_id = id_field or next((f for f in _ID_CANDIDATES if f in record), "")
            if pos < stored:  # already stored by an interrupted run
                pos += 1
                continue
            fields.update(dict.fromkeys(str(k) for k in record))
            if chosen_id:
                value = record.get(chosen_id)
                doc_id = "" if isinstance(value, list | dict) else value_to_text(value)
                if not doc_id:
                    raise DatasetError(f"record {pos} has no usable id in field '{chosen_id}'")
            else:
                doc_id = str(pos)
            text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
            batch.append((pos, doc_id, text))
            pos += 1
            if len(batch) >= INGEST_CHUNK:
                _commit(db, batch, fields, chosen_id)
                batch = []
                say("ingest", pos, None)
        if batch or pos == stored:
            _commit(db, batch, fields, chosen_id)
        if pos == 0:
            raise DatasetError(f"{source} holds no records")
        say("ingest", pos, pos)
    finally:
        db.close()


def _commit(db: sqlite3.Connection, batch, fields: dict[str, None], id_field: str) -> None:
    try:
        with db:
            db.executemany("INSERT INTO records (pos, id, record) VALUES (?, ?, ?)", batch)
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("fields", json.dumps(list(fields))), ("id_field", id_field)],
            )
    except sqlite3.IntegrityError as exc:
        ids = [b[1] for b in batch]
        dupes = set()
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            marks = ",".join("?" * len(part))
            query = f"SELECT id FROM records WHERE id IN ({marks})"
            dupes.update(r[0] for r in db.execute(query, part))
        seen: set[str] = set()
        first = next((i for i in ids if i in dupes or i in seen or seen.add(i)), "?")
        raise DatasetError(
            f"id field '{id_field}' has duplicate values, e.g. {first!r}; "
            "pick another --id-field (or none, for row positions)"
        ) from exc


def _resolve_fields(db, fields, state, embed_fields, rerank_fields, title_field) -> dict:
    """Embed, rerank and title fields: as given (checked), else guessed like a Dataset."""
    if "resolved" in state.data:
        return state.data["resolved"]

    def check(chosen, role):
        unknown = [f for f in chosen if f not in fields]
        if unknown:
            raise FieldError(
                f"unknown field(s) to {role}: {', '.join(unknown)}; the file has: "
                f"{', '.join(fields)}"
            )
        return list(chosen)

    sample = [json.loads(r[0]) for r in db.execute("SELECT record FROM records LIMIT 200")]
    id_field = dict(db.execute("SELECT key, value FROM meta")).get("id_field") or None
    texts = [f for f in fields if f != id_field and _holds_text(sample, f)]
    if title_field is not None:
        check([title_field], "use as title")
    else:
        title_field = next((f for f in _TITLE_CANDIDATES if f in fields), None)
    embed = check(embed_fields, "embed") if embed_fields else texts
    if not embed:
        raise FieldError("no field holds text to embed; name them with --embed-fields")
    rerank = check(rerank_fields, "rerank") if rerank_fields else texts or embed
    state.data["resolved"] = {
        "embed_fields": embed,
        "rerank_fields": rerank,
        "title_field": title_field,
    }
    state.save()
    return state.data["resolved"]


def _holds_text(rows, name: str) -> bool:
    for row in rows:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return True
        if isinstance(value, list) and any(isinstance(v, str) for v in value):
            return True
    return False


# --- 2. hash ---------------------------------------------------------------------------
def _content_hash(db: sqlite3.Connection, count: int, say) -> str:
    """The same sha256 as :attr:`core.data.documents.Dataset.content_hash`."""
    digest = hashlib.sha256()
    rows = db.execute("SELECT id, record FROM records ORDER BY pos")
    for done, (doc_id, text) in enumerate(rows, start=1):
        digest.update(doc_id.encode())
        digest.update(b"\x1f")
        digest.update(text.encode())
        digest.update(b"\x1e")
        if done % 100_000 == 0:
            say("hash", done, count)
    say("hash", count, count)
    return digest.hexdigest()


# --- 3. encode -------------------------------------------------------------------------
def _encode(folder, db, count, fields, encoder: Encoder, state: BuildState, say) -> None:
    """Encode into the ``vectors.npy`` memmap through the one chunked encoder
    (:func:`core.search.chunked_embedding.encode_chunks`: :data:`ENCODE_CHUNK` rows a
    chunk, ONNX encoders in steps of 64 within it); each chunk is flushed, then counted in
    ``build/state.json``, so a resumed build starts at the first chunk not counted."""
    path = folder / VECTORS
    chunk = max(1, int(ENCODE_CHUNK))
    start = int(state.data.get("encoded", 0))
    if start and path.is_file():
        vectors = np.load(path, mmap_mode="r+")
        first = start // chunk  # a chunk size changed since: its partial chunk again
        state.data.setdefault("resumed", {})["encode"] = first * chunk
    else:
        first = 0
        vectors = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float32, shape=(count, int(encoder.dimension))
        )
    no_text = [int(state.data.get("no_text", 0)) if first else 0]
    if first and first * chunk != start:  # texts counted in the chunk encoded again
        no_text[0] -= sum(1 for t in embed_texts(db, first * chunk, start, fields) if not t)
    texts = StoredTexts(db, count, fields)

    def keep(number: int, begin: int, stop: int, block: np.ndarray) -> None:
        vectors[begin:stop] = block
        vectors.flush()
        no_text[0] += texts.empty.pop(begin, 0)
        state.data["encoded"] = stop
        state.data["no_text"] = no_text[0]
        state.save()
        say("encode", stop, count)

    encode_chunks(
        texts,
        encoder,
        keep,
        chunk=chunk,
        first=first,
        dimension=int(encoder.dimension),
        progress=lambda done, total: say("encode", done, count),
    )


def print_progress(stream=None) -> BuildProgress:
    """A progress bar on stderr: stage, done/total, rate and time left."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    started: dict[str, tuple[float, int]] = {}
    last = [0.0]

    def show(stage: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        t0, d0 = started.setdefault(stage, (now, done))
        finished = total is not None and done >= total
        if not finished and now - last[0] < (0.2 if tty else 10.0):
            return
        last[0] = now
        rate = (done - d0) / max(now - t0, 1e-9)
        if total:
            width = 30
            filled = int(width * done / max(total, 1))
            bar = "#" * filled + "-" * (width - filled)
            left = (total - done) / rate if rate > 0 else float("nan")
            line = f"{stage:<16} [{bar}] {done:,}/{total:,}  {rate:,.0f}/s" + (
                f"  ~{left:,.0f} s left" if not finished and math.isfinite(left) else ""
            )
        else:
            line = f"{stage:<16} {done:,}  {rate:,.0f}/s"
        end = "\n" if finished or not tty else ""
        print(("\r" if tty else "") + line + ("\033[K" if tty else ""), end=end, file=stream)

    return show
