"""Passage reading of long texts: the splitter (real tokenizer), the aggregates, the
caps, the score store per passage, the pipeline and the CLI, with the real packaged
cross-encoder where a score matters."""

from __future__ import annotations

import json

import pytest

from core.data.documents import make_dataset
from core.models.base import RerankDoc
from core.models.cross_encoders import reranker_tokenizer
from core.models.errors import SettingsError
from core.search.passages import (
    PassageLimitError,
    PassageSettings,
    StoreScorer,
    aggregate_scores,
    first_passage,
    plan_passages,
    query_budget,
    rank_passages,
    split_text,
)
from core.search.scorestore import ScoreStore

QUERY = "which lighthouse keeper rescued the fishermen in the storm"
FILLER = " ".join(
    f"Section {i} lists the opening hours of the harbour office and the fees for mooring."
    for i in range(40)
)
ANSWER = (
    "In the great storm of 1881 the lighthouse keeper Ida Lewis rowed out and rescued "
    "the four fishermen whose boat had capsized near the rocks."
)
BURIED = f"{FILLER} {ANSWER}"


@pytest.fixture(scope="module")
def tok():
    return reranker_tokenizer(None)


def ntokens(tok, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False).ids)


def test_short_text_is_one_passage_the_text_itself(tok) -> None:
    plan = split_text("a", ANSWER, tok, query_budget(tok, QUERY, 512), PassageSettings())
    assert [p.text for p in plan.passages] == [ANSWER]
    assert plan.complete and plan.windows == 1


def test_long_text_windows_fit_overlap_cover_and_keep_offsets(tok) -> None:
    budget = query_budget(tok, QUERY, 512)
    assert ntokens(tok, BURIED) > budget  # the answer is past what one pair can read
    plan = split_text("b", BURIED, tok, budget, PassageSettings())
    assert len(plan.passages) >= 2 and plan.complete
    for p in plan.passages:
        assert BURIED[p.start : p.end] == p.text
        assert len(tok.encode(QUERY, p.text).ids) <= 512  # query + passage fit
        assert p.start == 0 or not BURIED[p.start - 1].isalnum()  # starts on a word
    # consecutive windows overlap, and together they cover the whole text
    for a, b in zip(plan.passages, plan.passages[1:], strict=False):
        assert b.start < a.end
    assert plan.passages[0].start == 0 and plan.passages[-1].end == len(BURIED)
    assert ANSWER in plan.passages[-1].text


def test_window_stride_and_per_doc_cap(tok) -> None:
    budget = query_budget(tok, QUERY, 512)
    small = split_text("c", BURIED, tok, budget, PassageSettings(window=64, stride=32))
    assert all(ntokens(tok, p.text) <= 64 for p in small.passages)
    capped = split_text("c", BURIED, tok, budget, PassageSettings(window=64, max_per_doc=3))
    assert len(capped.passages) == 3 and capped.windows > 3 and not capped.complete
    assert capped.passages == small.passages[:3]  # the first windows, same stride


def test_first_reads_what_fits(tok) -> None:
    budget = query_budget(tok, QUERY, 512)
    plan, (start, end) = first_passage("d", BURIED, tok, budget)
    assert plan.passages[0].text == BURIED and not plan.complete
    assert start == 0 and 0 < end < len(BURIED) and ANSWER not in BURIED[:end]
    assert ntokens(tok, BURIED[:end]) == budget


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (PassageSettings("best"), "aggregate"),  # type: ignore[arg-type]
        (PassageSettings(window=4), "window"),
        (PassageSettings(window=64, stride=100), "stride"),
        (PassageSettings(max_per_doc=0), "caps"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, fragment) -> None:
    with pytest.raises(SettingsError, match=fragment):
        settings.checked()


def test_aggregates() -> None:
    assert aggregate_scores([1.0, 3.0, 2.0], "first") == (1.0, 0)
    assert aggregate_scores([1.0, 3.0, 2.0], "max") == (3.0, 1)
    assert aggregate_scores([1.0, 3.0, 2.0], "top2") == (2.5, 1)
    assert aggregate_scores([4.0], "top2") == (4.0, 0)


def test_per_query_cap_refuses_with_the_estimate(tok) -> None:
    docs = [RerankDoc(str(i), BURIED) for i in range(5)]
    with pytest.raises(PassageLimitError, match=r"needs \d+ passages \(about \d+(\.\d)? s"):
        plan_passages(QUERY, docs, PassageSettings(max_per_query=5), tokenizer=tok, max_length=512)


@pytest.mark.slow
def test_best_passage_finds_the_buried_answer_first_does_not(cross_encoder) -> None:
    docs = [
        RerankDoc("buried", BURIED),
        RerankDoc("decoy", f"The harbour office opens at nine. {FILLER[:300]}"),
    ]
    first, first_reads = rank_passages(cross_encoder, QUERY, docs, PassageSettings("first"))
    best, reads = rank_passages(cross_encoder, QUERY, docs, PassageSettings("max"))
    by_first = {r.id: r for r in first}
    by_best = {r.id: r for r in best}
    assert by_first["buried"].truncated  # first passage: part of the text never read
    assert not by_best["buried"].truncated  # every window read
    assert by_best["buried"].score > by_first["buried"].score + 3  # the answer counts
    read = reads["buried"]
    assert read.num_passages >= 2 and len(read.scores) == read.num_passages
    assert ANSWER in BURIED[slice(*read.best_span)]
    assert max(read.scores) == by_best["buried"].score
    assert first_reads["buried"].num_passages == 1
    # a short text is read whole: the same pair, the same score, under every aggregate
    plain = {r.id: r.score for r in cross_encoder.rank(QUERY, docs)}
    assert by_first["buried"].score == plain["buried"]
    short = [RerankDoc("short", ANSWER)]
    scores = {
        how: rank_passages(cross_encoder, QUERY, short, PassageSettings(how))[0][0].score
        for how in ("first", "max", "top2")
    }
    assert len(set(scores.values())) == 1
    # a document's score depends only on (query, document), not on the other candidates
    alone, _ = rank_passages(cross_encoder, QUERY, docs[:1], PassageSettings("max"))
    assert alone[0].score == by_best["buried"].score


@pytest.mark.slow
def test_score_store_caches_every_passage(cross_encoder, tmp_path) -> None:
    store = ScoreStore(tmp_path / "s.sqlite")
    docs = [RerankDoc("buried", BURIED)]
    scorer = StoreScorer(cross_encoder, store)
    once, _ = rank_passages(cross_encoder, QUERY, docs, PassageSettings(), score=scorer)
    assert scorer.scored >= 2 and scorer.cached == 0 and len(store) == scorer.scored
    again = StoreScorer(cross_encoder, store)
    twice, _ = rank_passages(cross_encoder, QUERY, docs, PassageSettings(), score=again)
    assert again.scored == 0 and again.cached == scorer.scored
    assert twice[0].score == once[0].score


def long_dataset():
    records = [
        {"id": "buried", "title": "Harbour notes", "body": BURIED},
        {"id": "short", "title": "Opening hours", "body": "The harbour office opens at nine."},
        {"id": "other", "title": "Fees", "body": FILLER[:400]},
    ]
    return make_dataset("long", records, id_field="id", title_field="title")


@pytest.mark.slow
def test_pipeline_keeps_passages_and_counts_reads(cross_encoder, minilm) -> None:
    from core.search.pipeline import search_with_rerank

    dataset = long_dataset()
    result = search_with_rerank(
        dataset,
        QUERY,
        encoder=minilm,
        reranker=cross_encoder,
        embed_fields=("title", "body"),
        rerank_fields=("body",),
        num_candidates=3,
        num_results=3,
        passages=PassageSettings("max"),
    )
    top = result.top_final[0]
    assert top.id == "buried" and top.num_passages >= 2
    assert ANSWER in top.rerank_text[slice(*top.passages.best_span)]
    assert result.read_in_full == 3 and result.read_in_part == 0
    # field choice: passages are cut from the text of the chosen fields
    assert top.rerank_text.startswith("body: ")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["passages"]["aggregate"] == "max"
    assert data["results"][0]["passages"]["scores"] == list(top.passages.scores)
    first = search_with_rerank(
        dataset,
        QUERY,
        encoder=minilm,
        reranker=cross_encoder,
        embed_fields=("title", "body"),
        rerank_fields=("body",),
        num_candidates=3,
        num_results=3,
        passages=PassageSettings("first"),
    )
    assert first.read_in_part == 1
    assert {c.id: c for c in first.candidates}["buried"].truncated


def test_cli_rejects_bad_passage_settings_before_loading_models() -> None:
    from core.cli import main

    assert main(["search", "x", "--passages", "max", "--window", "64", "--stride", "99"]) == 2


@pytest.mark.slow
def test_cli_search_reads_passages(tmp_path, capsys) -> None:
    from core.cli import main

    path = tmp_path / "long.json"
    path.write_text(json.dumps(list(long_dataset().records)))
    code = main(
        ["search", QUERY, "--dataset", str(path), "--id-field", "id", "--candidates", "3",
         "--top", "3", "--rerank-fields", "body", "--passages", "max", "--json"]
    )  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["read_in_full"] == 3
    assert data["results"][0]["id"] == "buried"
    assert len(data["results"][0]["passages"]["spans"]) >= 2


def test_the_estimate_counts_passages_and_tokens_as_cutting_every_text_would() -> None:
    """The estimate counts short texts from one batch tokenisation and cuts only the
    longer ones: the same passages and tokens as cutting every text."""
    from core.search.passages import estimate_reading, query_budget, split_text

    texts = ["a short plot about a heist"] * 5 + [" ".join(["word"] * 900)] * 3 + [""]
    tokenizer = reranker_tokenizer(None)
    budget = query_budget(tokenizer, "a typical short query of about ten words here", 512)
    for settings in (
        PassageSettings(aggregate="max"),
        PassageSettings(aggregate="max", window=64, stride=32),
        PassageSettings(aggregate="top2", window=128, stride=128, max_per_doc=2),
    ):
        docs = [split_text(str(i), t, tokenizer, budget, settings) for i, t in enumerate(texts)]
        cut = [len(d.passages) for d in docs]
        for p in (p for d in docs for p in d.passages):  # what the model reads of each
            assert p.tokens == len(tokenizer.encode(p.text, add_special_tokens=False).ids)
        tokens = sum(p.tokens for d in docs for p in d.passages)
        estimate = estimate_reading(texts, settings)
        assert estimate.passages_per_doc == pytest.approx(sum(cut) / len(texts))
        assert estimate.tokens_per_pair == pytest.approx(tokens / sum(cut) + 512 - budget)
        assert max(cut) > 1
    # FirstP: one pair per document, of what fits beside the query.
    first = estimate_reading(texts, PassageSettings(aggregate="first"))
    assert first.passages_per_doc == 1.0
    fits = [min(len(tokenizer.encode(t, add_special_tokens=False).ids), budget) for t in texts]
    assert first.tokens_per_pair == pytest.approx(sum(fits) / len(texts) + 512 - budget)
    # Cost follows the tokens: long passages cost more per pair than short plots.
    short = estimate_reading(texts[:5], PassageSettings(aggregate="max"))
    assert first.seconds(100, 7000.0) > 3 * short.seconds(100, 7000.0)
