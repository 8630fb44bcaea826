"""Corpus vectors as files, and the engines that make them (in process, or on Ray Data).

A *vector set* is a folder with three files, read by the Milvus export and by anything
that takes precomputed vectors:

* ``vectors.npy``: float32, one unit-length row per record, in ``ids.json`` order;
* ``ids.json``: the records' ids (a JSON array of strings);
* ``manifest.json``: ``format`` (``rerank-workbench/vectors``), ``version``, ``encoder``
  (the model id given to :func:`core.models.registry.load_encoder`), ``encoder_key``
  (its embedding cache key), ``dimension``, ``count``, ``dataset`` (name),
  ``content_hash`` (of the dataset embedded), ``fields`` (embedded), ``engine``
  (``local`` or ``ray``), ``workers`` and ``seconds``.

:func:`embed_corpus` also writes the vectors into the embedding cache that
:func:`core.search.index.build_index` reads, so the app and every command reuse them.

The Ray engine (:func:`embed_with_ray`) reads the corpus into a Ray Dataset and encodes
it in ``map_batches`` actors, each holding the project's encoder
(:func:`core.models.registry.load_encoder`). Locally it starts Ray with the machine's
cores (``ray.init(num_cpus=cores, include_dashboard=False)``, usage stats off); with
``RAY_ADDRESS`` set it connects to that cluster instead, shipping the ``core`` package
to the workers (the cluster needs the project's requirements installed).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.data.documents import Dataset
from core.models.base import Encoder, ProgressFn
from core.models.errors import BatchEngineError, SettingsError
from core.models.paths import PROJECT_ROOT, atomic_write, cache_dir
from core.search.index import embedding_cache_key

VECTORS_FORMAT = "rerank-workbench/vectors"
VECTORS_VERSION = 1
Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = ("local", "ray")


@dataclass(frozen=True)
class VectorSet:
    """Vectors of a corpus, the ids they belong to, and how they were made."""

    vectors: np.ndarray
    ids: tuple[str, ...]
    manifest: dict[str, Any]

    @property
    def encoder(self) -> str:
        """The model id that made the vectors."""
        return str(self.manifest.get("encoder", ""))

    def aligned_to(self, dataset: Dataset) -> np.ndarray:
        """The rows in ``dataset`` order; :class:`SettingsError` unless every record of
        ``dataset`` has exactly one row (matched by id)."""
        if self.ids == dataset.ids:
            return self.vectors
        where = {doc_id: i for i, doc_id in enumerate(self.ids)}
        missing = [doc_id for doc_id in dataset.ids if doc_id not in where]
        if missing or len(where) != len(self.ids):
            raise SettingsError(
                f"the vectors do not cover dataset '{dataset.name}': {len(missing)} of its "
                f"{len(dataset):,} ids have no vector (e.g. {missing[:1]})"
                if missing
                else "the vector set repeats ids"
            )
        return self.vectors[[where[doc_id] for doc_id in dataset.ids]]


def write_vector_set(folder: str | os.PathLike[str], vector_set: VectorSet) -> Path:
    """Write ``vectors.npy``, ``ids.json`` and ``manifest.json`` into ``folder``."""
    out = Path(folder).expanduser()
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vector_set.vectors, dtype=np.float32), allow_pickle=False)
    atomic_write(out / "vectors.npy", buffer.getvalue())
    atomic_write(out / "ids.json", json.dumps(list(vector_set.ids), ensure_ascii=False).encode())
    atomic_write(out / "manifest.json", json.dumps(vector_set.manifest, indent=2).encode())
    return out


def read_vector_set(folder: str | os.PathLike[str]) -> VectorSet:
    """Read a vector set folder; :class:`SettingsError` names what is missing or wrong."""
    src = Path(folder).expanduser()
    try:
        manifest = json.loads((src / "manifest.json").read_text())
        ids = json.loads((src / "ids.json").read_text())
        vectors = np.load(src / "vectors.npy", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SettingsError(
            f"{src} is not a readable vector set (vectors.npy, ids.json, manifest.json): {exc}"
        ) from exc
    if manifest.get("format") != VECTORS_FORMAT:
        raise SettingsError(f"{src}/manifest.json is not a {VECTORS_FORMAT} manifest")
    if vectors.ndim != 2 or len(vectors) != len(ids) or vectors.dtype != np.float32:
        raise SettingsError(
            f"{src}: {len(ids)} ids for vectors of shape {vectors.shape} ({vectors.dtype})"
        )
    return VectorSet(vectors, tuple(str(i) for i in ids), manifest)


def subset(dataset: Dataset, limit: int | None) -> Dataset:
    """The first ``limit`` records of ``dataset`` (all when None)."""
    if limit is None or limit >= len(dataset):
        return dataset
    if limit < 1:
        raise SettingsError(f"--limit must be at least 1, not {limit}")
    ids = dataset.ids[:limit]
    return replace(
        dataset,
        records=dataset.records[:limit],
        ids=ids,
        _positions={doc_id: i for i, doc_id in enumerate(ids)},
    )


def local_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _EncodeActor:
    """A Ray Data ``map_batches`` actor: loads the encoder once, encodes batches."""

    def __init__(self, model_id: str) -> None:
        from core.models.registry import load_encoder

        self.encoder = load_encoder(model_id)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        vectors = self.encoder.encode(texts, kind="document")
        return {"position": batch["position"], "vector": np.asarray(vectors, dtype=np.float32)}


def _init_ray(workers: int | None) -> tuple[bool, int]:
    """Start or join Ray; returns (started here, worker count).

    Raises :class:`BatchEngineError` when Ray cannot start (a local start is tried twice:
    on a busy machine its first start can time out) or the cluster cannot be reached.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if ray.is_initialized():
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return False, workers or max(1, cpus)
    if address:
        core_dir = str(PROJECT_ROOT / "core")
        try:
            ray.init(address=address, runtime_env={"py_modules": [core_dir]}, log_to_driver=False)
        except Exception as exc:
            raise BatchEngineError(
                f"cannot reach the Ray cluster at RAY_ADDRESS={address} ({_first_line(exc)})"
            ) from exc
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return True, workers or max(1, cpus)
    cores = local_cores()
    pythonpath = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    for attempt in (1, 2):
        try:
            ray.init(
                num_cpus=cores,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={
                    "env_vars": {"PYTHONPATH": pythonpath, "TOKENIZERS_PARALLELISM": "false"}
                },
            )
            return True, workers or cores
        except Exception as exc:
            ray.shutdown()
            if attempt == 2:
                raise BatchEngineError(
                    f"a local Ray could not start ({_first_line(exc)}); the machine may be "
                    "too busy: try again, or use --engine local"
                ) from exc
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def embed_with_ray(
    texts: Sequence[str],
    model_id: str,
    dimension: int,
    *,
    workers: int | None = None,
    batch_size: int = 64,
    progress: ProgressFn | None = None,
    shutdown: bool | None = None,
) -> tuple[np.ndarray, int]:
    """Encode ``texts`` with ``model_id`` on Ray Data actors; rows in input order.

    Starts Ray as the module docstring says unless it is already running (then it is
    reused and left running). ``shutdown`` (default: whether Ray was started here) stops
    it afterwards. Returns the vectors and the number of actors used.
    """
    import ray

    started, count = _init_ray(workers)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        n = len(texts)
        items = [{"position": i, "text": t} for i, t in enumerate(texts)]
        blocks = max(1, min(n, count * 4))
        encoded = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _EncodeActor,
            fn_constructor_kwargs={"model_id": model_id},
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=count),
            num_cpus=1,
            batch_format="numpy",
        )
        vectors = np.zeros((n, dimension), dtype=np.float32)
        seen = np.zeros(n, dtype=bool)
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            positions = np.asarray(batch["position"], dtype=np.int64)
            vectors[positions] = np.stack(batch["vector"]).astype(np.float32)
            seen[positions] = True
            if progress is not None:
                progress(int(seen.sum()), n)
        if not seen.all():
            raise SettingsError(f"Ray returned {int(seen.sum())} of {n} vectors")
        return vectors, count
    finally:
        if shutdown if shutdown is not None else started:
            ray.shutdown()


@dataclass(frozen=True)
class EmbedReport:
    """What :func:`embed_corpus` made, where it wrote it and how long it took."""

    vector_set: VectorSet
    out: Path | None
    cache_path: Path | None
    seconds: float


def embed_corpus(
    dataset: Dataset,
    encoder: Encoder,
    model_id: str,
    fields: Sequence[str] | None = None,
    *,
    engine: Engine = "local",
    out: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    batch_size: int = 64,
    progress: ProgressFn | None = None,
) -> EmbedReport:
    """Embed every record of ``dataset`` from ``fields`` with ``engine``; write a vector
    set to ``out`` (if given) and the embedding cache (if ``use_cache``)."""
    if engine not in ENGINES:
        raise SettingsError(f"unknown engine {engine!r}: choose {', '.join(ENGINES)}")
    fields = dataset.check_fields(fields or dataset.default_embed_fields, "embed")
    texts = dataset.texts(fields, "embed")
    started = time.perf_counter()
    if engine == "ray":
        vectors, used = embed_with_ray(
            texts,
            model_id,
            encoder.dimension,
            workers=workers,
            batch_size=batch_size,
            progress=progress,
        )
    else:
        vectors, used = encoder.encode(texts, progress=progress), 1
    seconds = time.perf_counter() - started
    key_name = getattr(encoder, "cache_key", encoder.name)
    manifest = {
        "format": VECTORS_FORMAT,
        "version": VECTORS_VERSION,
        "encoder": model_id,
        "encoder_key": key_name,
        "dimension": int(encoder.dimension),
        "count": len(dataset),
        "dataset": dataset.name,
        "content_hash": dataset.content_hash,
        "fields": list(fields),
        "engine": engine,
        "workers": used,
        "seconds": round(seconds, 3),
    }
    vector_set = VectorSet(np.asarray(vectors, dtype=np.float32), dataset.ids, manifest)
    folder = write_vector_set(out, vector_set) if out is not None else None
    cache_path = None
    if use_cache:
        cache_path = (
            cache_dir() / "embeddings" / f"{embedding_cache_key(key_name, dataset, fields)}.npy"
        )
        buffer = io.BytesIO()
        np.save(buffer, vector_set.vectors, allow_pickle=False)
        atomic_write(cache_path, buffer.getvalue())
    return EmbedReport(vector_set, folder, cache_path, seconds)


def compare_with_encoder(
    dataset: Dataset,
    vectors: np.ndarray,
    encoder: Encoder,
    fields: Sequence[str],
    sample: int,
) -> dict[str, float]:
    """Re-encode ``sample`` evenly spread records in process and compare with
    ``vectors`` (dataset order): the largest absolute difference and lowest cosine."""
    n = len(dataset)
    rows = np.unique(np.linspace(0, n - 1, num=max(1, min(sample, n))).astype(int))
    texts = dataset.texts(fields, "embed")
    fresh = encoder.encode([texts[i] for i in rows])
    theirs = np.asarray(vectors, dtype=np.float32)[rows]
    return {
        "rows": len(rows),
        "max_abs_diff": float(np.abs(fresh - theirs).max()),
        "min_cosine": float((fresh * theirs).sum(axis=1).min()),
    }
