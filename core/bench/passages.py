"""Long documents read passage by passage (:mod:`core.search.passages`), measured.

``python -m core bench --long-docs N``: the buried-plot check on movies
(:mod:`core.quality.longdocs`); ``python -m core bench --passages-scifact N``: SciFact
nDCG@10 by first passage, best passage and mean of the two best, with the paired
bootstrap interval and the pairs each reading costs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.bench.common import default_scifact_path


def long_docs_main(queries: int = 5, candidates: int = 50) -> int:
    """``python -m core bench --long-docs``: the buried-plot check of
    :mod:`core.quality.longdocs` on the first ``queries`` movie example queries."""
    import time

    from core.data.datasets import load_dataset
    from core.models.registry import load_encoder, load_reranker
    from core.present.views import EXAMPLE_QUERIES
    from core.quality.longdocs import format_long_doc_check, long_doc_check
    from core.search.passages import PassageSettings

    dataset = load_dataset("movies")
    started = time.perf_counter()
    rows = long_doc_check(
        dataset,
        list(EXAMPLE_QUERIES["movies"])[:queries],
        encoder=load_encoder(),
        reranker=load_reranker(),
        candidates=candidates,
        settings=(
            PassageSettings("first"),
            PassageSettings("max"),
            PassageSettings("max", window=128, stride=64, max_per_doc=16),
        ),
    )
    print(f"movies, {len(rows)} queries, {candidates} candidates, plot after ~540 tokens")
    print(format_long_doc_check(rows))
    print(f"seconds: {time.perf_counter() - started:.0f}")
    return 0


def passages_scifact_main(
    queries: int,
    scifact: str | None = None,
    readings: Sequence[str] = ("first", "max", "top2"),
    dense_readings: Sequence[str] = ("first", "max"),
) -> int:
    """``python -m core bench --passages-scifact N``: SciFact nDCG@10 of dense MiniLM +
    rerank top 100 on the first N test queries, reading each document by each of
    ``readings``; the change from first passage with its paired bootstrap interval, and
    the cross-encoder pairs and seconds per query of each (cached pairs cost nothing, so
    the pairs scored are the cost).

    Then dense passages vs truncation: the same first stage with long documents
    embedded as one vector per passage (:mod:`core.search.passage_index`, default
    window and stride), alone and reranked by each of ``dense_readings``, each compared
    with the truncated first stage read the same way (paired interval), with the time
    per query of each stage and the one-off cost of embedding the corpus by passage.
    """
    from core.data.beir import load_beir
    from core.models.registry import load_encoder, load_reranker
    from core.quality.evaluation import beir_to_dataset, evaluate_beir
    from core.quality.evaluation_report import BEIR_FIELDS, PRIMARY_METRIC
    from core.quality.runs import SecondStage
    from core.quality.stats import paired_bootstrap
    from core.search.index import build_index
    from core.search.passages import PassageSettings

    path = Path(scifact) if scifact else default_scifact_path()
    if path is None:
        print("error: no SciFact folder (set RERANK_SCIFACT_PATH)", file=sys.stderr)
        return 2
    beir = load_beir(path)
    dataset = beir_to_dataset(beir)
    encoder, reranker = load_encoder(), load_reranker()

    def run(how: str, dense: PassageSettings | None = None):
        return evaluate_beir(
            beir,
            dataset=dataset,
            encoder=encoder,
            reranker=reranker,
            candidates=100,
            max_queries=queries,
            options=SecondStage(passages=PassageSettings(how), dense_passages=dense),
        )

    reports = {}
    for how in readings:
        started = time.perf_counter()
        reports[how] = run(how)
        seconds = time.perf_counter() - started
        t = reports[how].timings
        print(
            f"{how:>6}: nDCG@10 {reports[how].reranked[PRIMARY_METRIC]:.4f}   pairs scored "
            f"{t.pairs_scored:,}, from cache {t.pairs_cached:,} "
            f"({(t.pairs_scored + t.pairs_cached) / t.num_queries:.1f} pairs/query)   "
            f"docs read in part {t.docs_read_in_part / t.num_queries:.1f}/query   "
            f"rerank {t.rerank_ms:.0f} ms/query   ({seconds:.0f} s)",
            flush=True,
        )
    base = reports[readings[0]]
    print(
        f"dataset {base.settings.dataset}, {base.settings.num_queries} of "
        f"{base.settings.total_queries} queries, dense {base.settings.encoder} top 100, "
        f"reranker {base.settings.reranker}"
    )
    print(f"retrieval only: nDCG@10 {base.base[PRIMARY_METRIC]:.4f}")
    first = [q.reranked[PRIMARY_METRIC] for q in base.queries]
    for how in readings[1:]:
        other = [q.reranked[PRIMARY_METRIC] for q in reports[how].queries]
        cmp = paired_bootstrap(first, other)
        print(
            f"{how} vs {readings[0]}: "
            + cmp.sentence(f"Reading by {how}", keep=f"reading by {readings[0]}")
        )
    if dense_readings:
        dense_vs_truncation(
            {how: reports[how] for how in dense_readings if how in reports},
            lambda how, dense: run(how, dense),
            lambda dense: build_index(dataset, encoder, BEIR_FIELDS, passages=dense).index,
            paired_bootstrap,
        )
    return 0


def dense_vs_truncation(truncated: dict, run, index_of, paired_bootstrap) -> None:
    """Print dense passages against truncation: for each rerank reading in
    ``truncated`` (its reports with one vector per document), the same run with dense
    passages, nDCG@10 of the first stage alone and reranked top 100, the paired
    intervals and the time per query."""
    from core.quality.evaluation_report import PRIMARY_METRIC
    from core.search.passages import PassageSettings

    dense = PassageSettings("max")
    print("\ndense passages vs truncation (first stage: one vector per passage, best per document)")
    reports = {}
    for how in truncated:
        started = time.perf_counter()
        reports[how] = run(how, dense)
        t = reports[how].timings
        print(
            f"  corpus index: {'from cache' if t.index_from_cache else 'embedded'} in "
            f"{t.index:.0f} s; this run {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    index = index_of(dense)
    print(
        f"  {index.num_passages:,} passage vectors for {len(index):,} documents "
        f"({index.passages_per_document:.2f} each, {index.documents_cut:,} documents cut, "
        f"{index.documents_in_part:,} capped at {dense.max_per_doc} passages)"
    )

    def ms(report, rerank: bool) -> str:
        # Pairs found in the score store cost nothing: the pairs per query are the
        # reranker's cost, the ms only what this run had left to score.
        t = report.timings
        text = f"first stage {t.query_encode_ms + t.search_ms:.1f} ms/query"
        if not rerank:
            return text
        pairs = (t.pairs_scored + t.pairs_cached) / max(1, t.num_queries)
        return (
            f"{text} + rerank {pairs:.1f} pairs/query, {t.rerank_ms:.0f} ms/query with "
            f"{t.pairs_cached / max(1, t.pairs_scored + t.pairs_cached):.0%} from the cache"
        )

    def per_query(report, reranked: bool) -> list[float]:
        return [(q.reranked if reranked else q.base)[PRIMARY_METRIC] for q in report.queries]

    one = next(iter(truncated))
    trunc, passages = truncated[one], reports[one]
    print(
        f"  alone: truncation nDCG@10 {trunc.base[PRIMARY_METRIC]:.4f} ({ms(trunc, False)}), "
        f"dense passages {passages.base[PRIMARY_METRIC]:.4f} ({ms(passages, False)})"
    )
    cmp = paired_bootstrap(per_query(trunc, False), per_query(passages, False))
    print(
        "  alone, dense passages vs truncation: "
        + cmp.sentence("Dense passages", keep="one vector per document")
    )
    for how, report in reports.items():
        before = truncated[how]
        print(
            f"  + rerank top 100 ({how} passage): truncation nDCG@10 "
            f"{before.reranked[PRIMARY_METRIC]:.4f} ({ms(before, True)}), dense passages "
            f"{report.reranked[PRIMARY_METRIC]:.4f} ({ms(report, True)})"
        )
        cmp = paired_bootstrap(per_query(before, True), per_query(report, True))
        print(
            f"  + rerank ({how}), dense passages vs truncation: "
            + cmp.sentence("Dense passages", keep="one vector per document")
        )
