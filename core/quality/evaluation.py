"""Offline evaluation: score retrieval alone and retrieval + rerank against judgments.

One evaluation builds (or loads) the corpus index once, encodes every query in one
batch, retrieves ``candidates`` docs per query and, with a reranker, reorders exactly
those candidates. Both runs are scored with :func:`core.quality.metrics.evaluate_run`, so the
reranked run can only move docs within the retrieved set: Recall@candidates is the
same for both, and any gain in nDCG@10 or MRR@10 is the reranker's doing.

Two sources of judgments:

* :func:`evaluate_beir`: a BEIR dataset (corpus, queries, qrels). Documents are read
  as ``title + " " + text`` by both models, as BEIR and MTEB do.
* :func:`evaluate_judgments`: any :class:`~core.data.documents.Dataset` with judgments keyed
  by query text (the ``query,doc_id,rating`` CSV of :func:`core.data.beir.load_judgments_csv`).

Per query, reranking *wins* when it raises nDCG@10, *loses* when it lowers it, and
*ties* when the change is below :data:`~core.quality.evaluation_report.TIE_TOLERANCE`.
The mean change comes with a paired bootstrap 95% interval (:mod:`core.quality.stats`),
and the report says plainly whether reranking helped, hurt, or changed nothing beyond
noise (:mod:`core.quality.evaluation_report`; tables: :mod:`core.quality.evaluation_format`).

The runs themselves (retrieve once, score through the score store, second-stage order)
are :mod:`core.quality.runs`; two second stages head to head are
:mod:`core.quality.evaluation_pair`.

The first stage is dense, BM25 or hybrid (:mod:`core.search.retrievers`); the second stage
can rerank only the top ``rerank_depth`` candidates (the rest keep their order below
them) and blend its scores with the first stage's (:mod:`core.search.fusion`). Cross-encoder
scores are kept on disk (:mod:`core.search.scorestore`), so re-evaluating with another depth,
weight or first stage only scores pairs never seen before."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from core.data.beir import BeirDataset
from core.data.documents import Dataset, TextStyle, make_dataset
from core.models.base import Encoder, Reranker
from core.models.errors import DatasetError, SettingsError
from core.quality.evaluation_report import (
    BEIR_FIELDS,
    STAGE_ENCODE,
    STAGE_INDEX,
    STAGE_RERANK,
    STAGE_SEARCH,
    UNJUDGED_K,
    EvalProgressFn,
    EvaluationReport,
    EvaluationSettings,
    EvaluationTimings,
    QueryEvaluation,
    dense_label,
)
from core.quality.metrics import (
    DEFAULT_K_VALUES,
    DEFAULT_THRESHOLD,
    QueryQrels,
    check_threshold,
    evaluate_run,
    unjudged_in_top_k,
)
from core.quality.runs import (
    SecondStage,
    retrieve_run,
    score_run,
    second_stage_order,
    sorted_query_ids,
)
from core.search.fusion import check_fusion
from core.search.index import build_index
from core.search.pipeline import MAX_CANDIDATES
from core.search.retrievers import check_retriever_kind, make_retriever
from core.search.scorestore import ScoreStore


def beir_to_dataset(beir: BeirDataset) -> Dataset:
    """The BEIR corpus as a :class:`Dataset` of ``{"_id", "title", "text"}`` records.

    Ids come from ``_id``; embed and rerank fields are ``("title", "text")``, whose
    plain-joined text is :func:`core.data.beir.document_text`, i.e. ``title + " " + text``.
    """
    records = [
        {"_id": doc_id, "title": doc.get("title") or "", "text": doc.get("text") or ""}
        for doc_id, doc in beir.corpus.items()
    ]
    return make_dataset(
        beir.name,
        records,
        id_field="_id",
        title_field="title",
        embed_fields=BEIR_FIELDS,
        rerank_fields=BEIR_FIELDS,
        source=f"BEIR {beir.name} ({beir.split} split)",
    )


def evaluate_beir(
    beir: BeirDataset,
    *,
    encoder: Encoder | None,
    reranker: Reranker | None = None,
    candidates: int = 100,
    max_queries: int | None = None,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    rerank_fields: Sequence[str] = BEIR_FIELDS,
    ignore_identical_ids: bool = True,
    use_cache: bool = True,
    progress: EvalProgressFn | None = None,
    dataset: Dataset | None = None,
    options: SecondStage | None = None,
    threshold: int = DEFAULT_THRESHOLD,
) -> EvaluationReport:
    """Evaluate retrieval and retrieval + rerank on the judged queries of a BEIR split.

    Documents are embedded and reranked as ``title + " " + text`` (``rerank_fields``
    may narrow what the reranker reads). ``max_queries`` keeps the first N queries in
    :func:`sorted_query_ids` order. With ``ignore_identical_ids`` (BEIR's default) a
    doc whose id equals the query id is never a candidate: one more doc is retrieved
    in its place, and the metrics drop it too. ``k_values`` always gains 10 and 100,
    for the headline metrics. ``dataset`` reuses a prebuilt :func:`beir_to_dataset`.
    ``options`` picks the first stage, rerank depth and fusion (default: dense, rerank
    every candidate, no fusion). ``encoder`` may be None for BM25.
    """
    corpus = dataset if dataset is not None else beir_to_dataset(beir)
    return _evaluate(
        corpus,
        beir.queries,
        beir.qrels,
        name=beir.name,
        split=beir.split,
        encoder=encoder,
        reranker=reranker,
        embed_fields=BEIR_FIELDS,
        rerank_fields=rerank_fields,
        rerank_style="plain",
        candidates=candidates,
        max_queries=max_queries,
        k_values=k_values,
        ignore_identical_ids=ignore_identical_ids,
        use_cache=use_cache,
        progress=progress,
        options=options or SecondStage(),
        threshold=threshold,
    )


def evaluate_judgments(
    dataset: Dataset,
    judgments_by_query_text: Mapping[str, Mapping[str, int]],
    *,
    encoder: Encoder | None,
    reranker: Reranker | None = None,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
    rerank_style: TextStyle = "fields",
    candidates: int = 100,
    max_queries: int | None = None,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    use_cache: bool = True,
    progress: EvalProgressFn | None = None,
    options: SecondStage | None = None,
    threshold: int = DEFAULT_THRESHOLD,
) -> EvaluationReport:
    """Evaluate on any dataset with judgments keyed by query text (doc id -> grade, any
    non-negative integer; ``threshold`` is the lowest grade MRR/Recall count relevant).

    The query text is its id in the report. Fields default to the dataset's defaults.
    Raises :class:`DatasetError` when no judged doc id exists in the dataset (judgments
    made on another dataset).
    """
    if not judgments_by_query_text:
        raise DatasetError("No judgments to evaluate: load a judgments CSV first.")
    judged = {doc_id for docs in judgments_by_query_text.values() for doc_id in docs}
    if judged and not any(dataset.has_id(doc_id) for doc_id in judged):
        raise DatasetError(
            f"None of the {len(judged)} judged doc ids exist in dataset '{dataset.name}'"
            f" (first: '{sorted(judged)[0]}'); were the judgments made on another dataset?"
        )
    qrels = {query: dict(docs) for query, docs in judgments_by_query_text.items()}
    queries = {query: query for query in qrels}
    return _evaluate(
        dataset,
        queries,
        qrels,
        name=dataset.name,
        split=None,
        encoder=encoder,
        reranker=reranker,
        embed_fields=embed_fields or dataset.default_embed_fields,
        rerank_fields=rerank_fields or dataset.default_rerank_fields,
        rerank_style=rerank_style,
        candidates=candidates,
        max_queries=max_queries,
        k_values=k_values,
        ignore_identical_ids=False,
        use_cache=use_cache,
        progress=progress,
        options=options or SecondStage(),
        threshold=threshold,
    )


def _evaluate(
    dataset: Dataset,
    queries: Mapping[str, str],
    qrels: Mapping[str, QueryQrels],
    *,
    name: str,
    split: str | None,
    encoder: Encoder | None,
    reranker: Reranker | None,
    embed_fields: Sequence[str],
    rerank_fields: Sequence[str],
    rerank_style: TextStyle,
    candidates: int,
    max_queries: int | None,
    k_values: Sequence[int],
    ignore_identical_ids: bool,
    use_cache: bool,
    progress: EvalProgressFn | None,
    options: SecondStage,
    threshold: int = DEFAULT_THRESHOLD,
) -> EvaluationReport:
    threshold = check_threshold(threshold)
    if not 1 <= candidates <= MAX_CANDIDATES:
        raise SettingsError(f"number of candidates must be 1 to {MAX_CANDIDATES}, not {candidates}")
    if max_queries is not None and max_queries < 1:
        raise SettingsError(f"max queries must be at least 1, not {max_queries}")
    depth = options.rerank_depth
    if depth is not None and not 1 <= depth <= candidates:
        raise SettingsError(f"rerank depth must be 1 to {candidates} (the candidates), not {depth}")
    weight, fusion = check_fusion(options.fusion_weight, options.fusion)
    kind = check_retriever_kind(options.retriever)
    if not qrels:
        raise DatasetError(f"No judged queries in '{name}': nothing to evaluate.")
    ks = tuple(sorted({int(k) for k in k_values} | {10, 100}))
    if ks[0] < 1:
        raise SettingsError(f"cut-offs k must be positive, not {ks[0]}")
    embed = dataset.check_fields(embed_fields, "embed")
    rerank = dataset.check_fields(rerank_fields, "rerank") if reranker is not None else ()

    qids = sorted_query_ids(list(qrels))
    if max_queries is not None:
        qids = qids[:max_queries]
    missing = [qid for qid in qids if not (queries.get(qid) or "").strip()]
    if missing:
        raise DatasetError(
            f"{len(missing)} judged query id(s) have no text (first: '{missing[0]}')."
        )
    texts = [queries[qid].strip() for qid in qids]
    total = len(qids)

    last: dict[str, int] = {}

    def report(stage: str) -> Callable[[int, int], None]:
        def call(done: int, of: int) -> None:
            if progress is not None and last.get(stage) != done:
                last[stage] = done
                progress(done, of, stage)

        return call

    index_seconds, from_cache, index = 0.0, True, None
    if kind != "bm25":
        if encoder is None:
            raise SettingsError(f"{kind} retrieval needs an encoder")
        build = build_index(
            dataset,
            encoder,
            embed,
            use_cache=use_cache,
            progress=report(STAGE_INDEX),
            passages=options.dense_passages,
        )
        index, index_seconds, from_cache = build.index, build.seconds, build.from_cache
    report(STAGE_INDEX)(len(dataset), len(dataset))
    retriever = make_retriever(
        kind, dataset, embed, encoder=encoder, index=index, rrf_k=options.rrf_k
    )
    base_scored, encode_seconds, search_seconds = retrieve_run(
        retriever,
        qids,
        texts,
        candidates,
        ignore_identical_ids=ignore_identical_ids,
        progress=report(STAGE_SEARCH),
    )
    report(STAGE_ENCODE)(total, total)
    base_run = {qid: [d for d, _ in base_scored[qid]] for qid in qids}

    reranked_run: dict[str, list[str]] | None = None
    rerank_seconds, pairs_scored, pairs_cached = 0.0, 0, 0
    part: list[int] = []
    if reranker is not None:
        store = options.score_store
        if store is None and use_cache:
            store = ScoreStore()
        t0 = time.perf_counter()
        ce, pairs_scored, pairs_cached = score_run(
            reranker,
            dataset,
            qids,
            texts,
            {qid: base_run[qid][:depth] for qid in qids},
            fields=rerank,
            style=rerank_style,
            store=store,
            progress=report(STAGE_RERANK),
            passages=options.passages,
            read_in_part=part,
        )
        rerank_seconds = time.perf_counter() - t0
        reranked_run = {
            qid: second_stage_order(base_scored[qid], ce[qid], depth, weight, fusion)
            for qid in qids
        }

    judged = {qid: qrels[qid] for qid in qids}
    scoring = {"ignore_identical_ids": ignore_identical_ids, "threshold": threshold}
    base_eval = evaluate_run(base_run, judged, ks, **scoring)
    reranked_eval = (
        evaluate_run(reranked_run, judged, ks, **scoring) if reranked_run is not None else None
    )

    def entered(qid: str) -> tuple[tuple[str, str], ...]:
        if reranked_run is None:
            return ()

        def top(run: dict[str, list[str]]) -> list[str]:
            ranking = [d for d in run[qid] if not (ignore_identical_ids and d == qid)]
            return unjudged_in_top_k(ranking, judged[qid], UNJUDGED_K)

        before = set(top(base_run))
        return tuple((d, dataset.title(d)) for d in top(reranked_run) if d not in before)

    rows = tuple(
        QueryEvaluation(
            qid=qid,
            query=texts[i],
            base=base_eval.per_query[qid],
            reranked=reranked_eval.per_query[qid] if reranked_eval is not None else None,
            base_ranking=tuple(base_run[qid]),
            reranked_ranking=tuple(reranked_run[qid]) if reranked_run is not None else None,
            unjudged_entered=entered(qid),
        )
        for i, qid in enumerate(qids)
    )
    return EvaluationReport(
        settings=EvaluationSettings(
            dataset=name,
            split=split,
            encoder=encoder.name if encoder is not None and kind != "bm25" else "none",
            reranker=reranker.name if reranker is not None else None,
            candidates=candidates,
            num_queries=total,
            total_queries=len(qrels),
            corpus_size=len(dataset),
            k_values=ks,
            embed_fields=tuple(embed),
            rerank_fields=tuple(rerank),
            rerank_style=rerank_style,
            ignore_identical_ids=ignore_identical_ids,
            retriever=kind,
            rerank_depth=depth if reranker is not None else None,
            fusion_weight=weight,
            fusion=fusion,
            relevance_threshold=threshold,
            grades=tuple(sorted({g for docs in judged.values() for g in docs.values()})),
            passages=options.passages.label()
            if reranker is not None and options.passages is not None
            else None,
            dense_passages=dense_label(options.dense_passages) if kind != "bm25" else None,
        ),
        base=base_eval.mean,
        reranked=reranked_eval.mean if reranked_eval is not None else None,
        queries=rows,
        timings=EvaluationTimings(
            index=index_seconds,
            index_from_cache=from_cache,
            query_encode=encode_seconds,
            search=search_seconds,
            rerank=rerank_seconds,
            num_queries=total,
            pairs_scored=pairs_scored,
            pairs_cached=pairs_cached,
            docs_read_in_part=sum(part),
        ),
    )
