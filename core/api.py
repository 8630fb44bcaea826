"""The workbench as a library: load a dataset, build or open an index, retrieve, rerank,
search (both stages, exactly as the Search page runs them), evaluate.

These names are the project's public face: the scripts "Reproduce in Python" writes use
only them, so they stay small and stable. Everything is a thin wrapper over ``core``::

    from core.api import load_dataset, search

    movies = load_dataset("movies")
    result = search(movies, "a heist that goes wrong", candidates=50, results=10)
    for c in result.top_final:
        print(c.final_rank, c.id, c.title, c.rerank_score)

Models are the packaged ones by default (all-MiniLM-L6-v2, and ms-marco-MiniLM-L-12-v2
INT8 on onnxruntime); ``together:<model>`` uses the hosted API with the key from
``TOGETHER_API_KEY``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.data.beir import BeirDataset
from core.data.beir import load_beir as _load_beir
from core.data.documents import Corpus
from core.models.base import (
    DEFAULT_ENCODER,
    DEFAULT_MAX_LENGTH,
    DEFAULT_RERANKER,
    Encoder,
    RerankDoc,
    Reranker,
    RerankResult,
)
from core.models.registry import load_encoder as _load_encoder
from core.models.registry import load_reranker as _load_reranker
from core.present.manifest import Manifest, dataset_print, make_manifest, search_manifest
from core.present.views import NO_RERANK, SearchSettings
from core.quality.evaluation_report import EvaluationReport
from core.search.hits import Hit
from core.search.index import VectorIndex
from core.search.pipeline import SearchResult

__all__ = [
    "BeirDataset",
    "EvaluationReport",
    "Manifest",
    "SearchResult",
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


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    id_field: str | None = None,
    title_field: str | None = None,
    split: str = "test",
) -> Corpus:
    """A corpus by name: ``"movies"``, ``"sample"``, ``"collection:NAME"`` (a built
    collection), ``"upload-<16 hex>"`` (an upload kept by this server, parsed as the app
    does; ``id_field``/``title_field`` as its pickers, ``"(row)"`` for row positions), a
    BEIR folder (its corpus as ``_id``/``title``/``text`` records) or a JSON file."""
    from core.data.datasets import load_dataset as load_named
    from core.data.datasets import load_json_dataset
    from core.data.upload_store import is_upload_id

    name = str(name_or_path)
    if is_upload_id(name):
        return _load_upload(name, id_field or "", title_field or "")
    folder = Path(name).expanduser()
    if folder.is_dir() and (folder / "corpus.jsonl").is_file():
        from dataclasses import replace

        from core.quality.evaluation import beir_to_dataset

        # the folder as its source: a manifest and an emitted script name it
        return replace(beir_to_dataset(_load_beir(folder, split=split)), source=str(folder))
    if id_field and name not in ("movies", "sample") and folder.is_file():
        return load_json_dataset(folder, id_field=id_field)
    return load_named(name)


def _load_upload(name: str, id_field: str, title_field: str) -> Corpus:
    from core.data.upload_quality import ROW_POSITION, build_upload_dataset
    from core.data.upload_store import UploadStore
    from core.data.uploads import parse_upload

    data, filename = UploadStore().get(name)
    dataset, _ = build_upload_dataset(
        parse_upload(data, filename),
        id_field=ROW_POSITION if id_field == "(row)" else (id_field or None),
        title_field=title_field or None,
        name=name,
    )
    return dataset


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> BeirDataset:
    """A BEIR folder (corpus, queries, qrels of ``split``)."""
    return _load_beir(folder, split=split)


def load_judgments(
    path: str | os.PathLike[str],
    dataset: Corpus,
    *,
    doc_id_field: str | None = None,
    queries: str | os.PathLike[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Judgments (query text -> doc id -> grade) from a query,doc_id,rating CSV, Quepid's
    CSV export or TREC qrels (``queries``: the id -> text file), with judged ids read as
    values of ``doc_id_field`` (default: the dataset's own ids)."""
    from core.data.beir import load_queries_file, map_doc_ids, read_judgments

    texts = load_queries_file(queries) if queries else None
    judgments, _ = map_doc_ids(read_judgments(path, queries=texts).qrels, dataset, doc_id_field)
    return {q: dict(docs) for q, docs in judgments.items()}


def load_encoder(model_id: str = DEFAULT_ENCODER) -> Encoder:
    """The bi-encoder ``model_id`` (loaded once per process)."""
    return _load_encoder(model_id)


def load_reranker(
    model_id: str = DEFAULT_RERANKER, *, max_length: int = DEFAULT_MAX_LENGTH
) -> Reranker:
    """The cross-encoder ``model_id`` (loaded once per process and max length)."""
    return _load_reranker(model_id, max_length=max_length)


def build_index(
    dataset: Corpus,
    encoder: str | Encoder = DEFAULT_ENCODER,
    fields: Sequence[str] | None = None,
    *,
    dense_passages: bool = False,
    window: int = 0,
    stride: int = 0,
) -> VectorIndex:
    """The dense index of ``dataset`` over ``fields`` (default: its embed fields), opened
    from the disk cache when it was built before with the same model and content."""
    from core.search.index import build_index as build

    model = load_encoder(encoder) if isinstance(encoder, str) else encoder
    chosen = dataset.check_fields(fields or dataset.default_embed_fields, "embed")
    passages = SearchSettings(window=window, stride=stride, dense_passages=dense_passages)
    return build(dataset, model, chosen, passages=passages.dense_passage_settings()).index


def retrieve(
    dataset: Corpus,
    query: str,
    *,
    k: int = 50,
    retriever: str = "dense",
    encoder: str = DEFAULT_ENCODER,
    fields: Sequence[str] | None = None,
    rrf_k: int = 60,
) -> list[Hit]:
    """The first stage alone: the top ``k`` hits (``dense``, ``bm25`` or ``hybrid``)."""
    from core.search.retrievers import make_retriever

    chosen = dataset.check_fields(fields or dataset.default_embed_fields, "embed")
    model = index = None
    if retriever != "bm25":
        model = load_encoder(encoder)
        index = build_index(dataset, model, chosen)
    first = make_retriever(retriever, dataset, chosen, encoder=model, index=index, rrf_k=rrf_k)
    return list(first.retrieve(query, k).hits)


def rerank(
    query: str,
    docs: Sequence[tuple[str, str]] | Mapping[str, str],
    *,
    reranker: str = DEFAULT_RERANKER,
    top_n: int | None = None,
) -> list[RerankResult]:
    """Score ``(id, text)`` pairs against ``query``; best first (raw logits for the
    packaged cross-encoder)."""
    pairs = list(docs.items()) if isinstance(docs, Mapping) else list(docs)
    model = load_reranker(reranker)
    return model.rank(query, [RerankDoc(id=str(i), text=t) for i, t in pairs], top_n)


def _settings(dataset: Corpus, query: str, options: Mapping[str, Any]) -> SearchSettings:
    values = dict(options)
    for name in ("embed_fields", "rerank_fields"):
        values[name] = tuple(values.get(name) or ())
    return SearchSettings(
        dataset=values.pop("dataset", dataset_reference(dataset)), query=query.strip(), **values
    )


def dataset_reference(dataset: Corpus) -> str:
    """What :func:`load_dataset` takes to load ``dataset`` again: its name (built in, an
    upload id, ``collection:NAME``), else the file or BEIR folder it was read from."""
    from core.data.collection import is_collection_id
    from core.data.datasets import BUILTIN
    from core.data.upload_store import is_upload_id

    name = dataset.name
    if name in BUILTIN or is_upload_id(name) or is_collection_id(name):
        return name
    source = Path(getattr(dataset, "source", "") or "")
    return str(source) if str(source) and source.exists() else name


def search(dataset: Corpus, query: str, **settings: Any) -> SearchResult:
    """Retrieve, then rerank, exactly as the Search page does for the same settings.

    ``settings`` are the fields of :class:`core.present.views.SearchSettings`:
    ``candidates`` (50), ``results`` (10), ``embed_fields``/``rerank_fields`` (the
    dataset's defaults), ``encoder``, ``reranker`` (``"none"``: retrieval only),
    ``retriever`` (dense, bm25, hybrid), ``fusion_weight``, ``fusion``, ``rrf_k``,
    ``passages`` (first, max, top2, …), ``window``, ``stride``, ``dense_passages``.
    """
    from core.present.search_state import dense_index_settings, run_search
    from core.search.index import build_index as build

    view = _settings(dataset, query, settings)
    view = _with_fields(view, dataset)
    encoder = index = None
    if view.retriever != "bm25":
        encoder = load_encoder(view.encoder)
        dense = dense_index_settings(view, view.dataset)
        index = build(dataset, encoder, view.embed_fields, passages=dense).index
    reranker = None if view.reranker == NO_RERANK else load_reranker(view.reranker)
    return run_search(
        view,
        dataset,
        encoder=encoder,
        index=index,
        reranker=reranker,
        hosted_reranker=view.reranker.startswith("together:"),
    )


def _with_fields(view: SearchSettings, dataset: Corpus) -> SearchSettings:
    from dataclasses import replace

    return replace(
        view,
        embed_fields=view.embed_fields or dataset.default_embed_fields,
        rerank_fields=view.rerank_fields or dataset.default_rerank_fields,
    )


def evaluate(
    data: BeirDataset | Corpus,
    judgments: Mapping[str, Mapping[str, int]] | None = None,
    *,
    encoder: str = DEFAULT_ENCODER,
    reranker: str | None = DEFAULT_RERANKER,
    candidates: int = 100,
    max_queries: int | None = None,
    retriever: str = "dense",
    rrf_k: int = 60,
    depth: int | None = None,
    fusion_weight: float = 1.0,
    fusion: str = "linear",
    threshold: int = 1,
    rerank_fields: Sequence[str] | None = None,
) -> EvaluationReport:
    """Retrieval and retrieval + rerank scored against judgments, as ``python -m core
    evaluate`` does: a BEIR dataset (its qrels), or a corpus with ``judgments`` (query
    text -> doc id -> grade). ``reranker=None``: retrieval only."""
    from core.quality.evaluation import beir_to_dataset, evaluate_beir, evaluate_judgments
    from core.quality.evaluation_report import BEIR_FIELDS
    from core.quality.runs import SecondStage

    options = {
        "encoder": None if retriever == "bm25" else load_encoder(encoder),
        "reranker": load_reranker(reranker) if reranker else None,
        "candidates": candidates,
        "max_queries": max_queries,
        "threshold": threshold,
        "options": SecondStage(
            retriever=retriever,
            rrf_k=rrf_k,
            rerank_depth=depth,
            fusion_weight=fusion_weight,
            fusion=fusion,  # type: ignore[arg-type]
        ),
    }
    if isinstance(data, BeirDataset):
        corpus = beir_to_dataset(data)
        fields = corpus.check_fields(rerank_fields or BEIR_FIELDS, "rerank")
        return evaluate_beir(data, dataset=corpus, rerank_fields=fields, **options)
    if judgments is None:
        raise TypeError("evaluate(corpus, judgments): the judgments are missing")
    fields = data.check_fields(rerank_fields or data.default_rerank_fields, "rerank")
    return evaluate_judgments(data, judgments, rerank_fields=fields, **options)


def fingerprint(dataset: Corpus) -> str:
    """The sha256 of every id and record of ``dataset`` (what a manifest names)."""
    return dataset_print(dataset).sha256


def search_manifest_of(dataset: Corpus, query: str, **settings: Any) -> Manifest:
    """The manifest of the view :func:`search` would compute (data, model files,
    settings, package versions)."""
    return search_manifest(_with_fields(_settings(dataset, query, settings), dataset), dataset)


def evaluation_manifest(
    data: BeirDataset | Corpus,
    judgments: Mapping[str, Mapping[str, int]] | None = None,
    **options: Any,
) -> Manifest:
    """The manifest of :func:`evaluate` with ``options``."""
    from core.quality.evaluation import beir_to_dataset

    corpus = beir_to_dataset(data) if isinstance(data, BeirDataset) else data
    qrels = data.qrels if isinstance(data, BeirDataset) else judgments
    retriever = options.get("retriever", "dense")
    return make_manifest(
        "evaluation",
        corpus,
        options,
        encoder=None if retriever == "bm25" else options.get("encoder", DEFAULT_ENCODER),
        reranker=options.get("reranker", DEFAULT_RERANKER),
        judgments=qrels,
    )
