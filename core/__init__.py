"""The rerank workbench's library: the retrieve-then-rerank pipeline, importable and
tested without Streamlit.

Layers, lowest first; a package imports only the ones before it:
``models`` <- ``data`` <- ``search`` <- ``quality`` <- ``present`` <- ``cli`` / ``bench``
/ the pages. ``models`` also holds the errors, paths and worker pool every layer uses.

The public API (:mod:`core.api`, also importable from ``core`` itself; the scripts that
"Reproduce in Python" writes use only these names):

- ``load_dataset(name_or_path)``: movies, sample, ``collection:NAME``, an upload id, a
  BEIR folder or a JSON file; ``load_beir(folder, split)``; ``load_judgments(file,
  dataset)``;
- ``load_encoder(model_id)``, ``load_reranker(model_id)``: the packaged models by default;
- ``build_index(dataset, encoder, fields)``: build, or open from the disk cache;
- ``retrieve(dataset, query, k=...)``: the first stage alone;
- ``rerank(query, [(id, text), ...])``: the cross-encoder alone;
- ``search(dataset, query, **settings)``: both stages, exactly as the Search page;
- ``evaluate(beir_or_dataset, judgments, ...)``: metrics against judgments;
- ``fingerprint(dataset)``, ``search_manifest_of(...)``, ``evaluation_manifest(...)``:
  what a result was computed from (data sha256, model files, versions).

They are loaded on first use, so ``import core`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "build_index",
    "evaluate",
    "evaluation_manifest",
    "fingerprint",
    "load_beir",
    "load_dataset",
    "load_encoder",
    "load_judgments",
    "load_reranker",
    "rerank",
    "retrieve",
    "search",
    "search_manifest_of",
]


def __getattr__(name: str) -> Any:
    """The public API's names, imported from :mod:`core.api` when first asked for."""
    if name in __all__:
        from core import api

        return getattr(api, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
