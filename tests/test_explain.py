"""Occlusion explanations on the real packaged cross-encoder (loaded once per session)."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.documents import rerank_text
from core.models.base import RerankDoc
from core.present.explain import heatmap_html, signed
from core.quality.explain import (
    ExplainError,
    contrast,
    explain,
    remove_spans,
    score_texts,
    sentences_of,
    words_of,
)
from core.quality.faithfulness import erase, method_passes, occlusion_order, random_order

PAIRS = [
    ("a heist in a big city", "Man on a Ledge"),
    ("dinosaurs escape in a theme park", "Jurassic Park"),
    ("a boxer fights for a comeback", "Rocky"),
]


@pytest.fixture(scope="module")
def texts(movies) -> dict[str, tuple[str, str]]:
    """title -> (id, the text the reranker reads)."""
    wanted = {t for _, t in PAIRS} | {"Drive"}
    out = {}
    for doc_id in movies.ids:
        title = movies.title(doc_id)
        if title in wanted and title not in out:
            out[title] = (doc_id, rerank_text(movies.record(doc_id), movies.default_rerank_fields))
    assert wanted <= set(out)
    return out


@pytest.fixture(scope="module")
def explained(cross_encoder, texts):
    return [explain(cross_encoder, q, texts[t][1], use_cache=False) for q, t in PAIRS]


def test_words_keep_offsets_into_the_original_text() -> None:
    text = "title: Drive\noverview: A stunt driver, by night."
    spans = words_of(text)
    assert [text[s:e] for s, e in spans][:3] == ["title:", "Drive", "overview:"]
    assert remove_spans(text, [spans[1]]) == "title: \noverview: A stunt driver, by night."
    assert len(sentences_of("One. Two! Three")) == 3


def test_effects_are_the_models_own_scores(cross_encoder, explained) -> None:
    expl = explained[0]
    base = cross_encoder.rank(expl.query, [RerankDoc("x", expl.text)])[0].score
    assert expl.base_score == pytest.approx(base, abs=1e-6)
    word = expl.helped(1)[0]
    without = remove_spans(expl.text, [(word.start, word.end)])
    score = cross_encoder.rank(expl.query, [RerankDoc("x", without)])[0].score
    assert word.effect == pytest.approx(base - score, abs=1e-5)
    assert word.text.lower().startswith("heist")
    assert [w.text for w in expl.query_words] == expl.query.split()


def test_top_words_lower_the_score_more_than_random_words(cross_encoder, explained) -> None:
    for expl in explained:
        k = 3
        top = [(w.start, w.end) for w in expl.helped(k)]
        drop_top = (
            expl.base_score
            - score_texts(cross_encoder, expl.query, [remove_spans(expl.text, top)])[0]
        )
        spans = [(w.start, w.end) for w in expl.doc_words if w.read]
        rng = np.random.default_rng(7)
        randoms = [
            remove_spans(expl.text, [spans[i] for i in rng.choice(len(spans), k, replace=False)])
            for _ in range(5)
        ]
        drop_random = expl.base_score - score_texts(cross_encoder, expl.query, randoms)
        assert drop_top > float(np.mean(drop_random)) + 0.5, (expl.query, drop_top, drop_random)


def test_comprehensiveness_beats_random_on_these_pairs(cross_encoder, explained) -> None:
    ours = [erase(cross_encoder, e, occlusion_order(e)).comprehensiveness_aopc for e in explained]
    rand = [erase(cross_encoder, e, random_order(e)).comprehensiveness_aopc for e in explained]
    assert np.mean(ours) > 2 * max(np.mean(rand), 0.0)


def test_method_passes_rule() -> None:
    table = {
        "datasets": {
            "movies": {
                "occlusion": {"comprehensiveness_aopc": 3.0, "pairs": 10},
                "random": {"comprehensiveness_aopc": 1.0, "pairs": 10},
            },
            "scifact": {
                "occlusion": {"comprehensiveness_aopc": 1.5, "pairs": 10},
                "random": {"comprehensiveness_aopc": 1.0, "pairs": 10},
            },
        }
    }
    assert method_passes(table, "movies")
    assert not method_passes(table, "scifact")
    assert not method_passes(table, "other")
    assert not method_passes(None, "movies")


def test_contrast_swap_test(cross_encoder, texts) -> None:
    query = "a heist in a big city"
    c = contrast(cross_encoder, query, texts["Man on a Ledge"][1], texts["Drive"][1], k=3)
    assert c.x.base_score > c.y.base_score
    assert len(c.removed) == 3 and c.removed[0].lower().startswith("heist")
    spans = [(w.start, w.end) for w in c.x.helped(3)]
    direct = score_texts(cross_encoder, query, [remove_spans(c.x.text, spans)])[0]
    assert c.x_without_evidence == pytest.approx(direct, abs=1e-6)
    assert c.flips == (c.x_without_evidence < c.y.base_score)
    assert "manhattan" in dict(c.x_only)


@pytest.mark.parametrize(
    ("query", "text", "message"),
    [
        ("heist", "   ", "text is empty"),
        ("", "a heist", "query is empty"),
        ("the", "a heist", "only stop words"),
        ("The a", "a heist", "only stop words"),
    ],
)
def test_bad_input_is_one_clear_error(cross_encoder, query, text, message) -> None:
    with pytest.raises(ExplainError, match=message):
        explain(cross_encoder, query, text)


def test_a_hosted_reranker_is_not_explained_by_default() -> None:
    class Hosted:
        name = "together:Salesforce/Llama-Rank-V1"
        score_kind = "relevance"

    with pytest.raises(ExplainError, match="paid.*about \\d+ calls"):
        explain(Hosted(), "a heist", "a bank heist goes wrong")


def test_cache_hit_returns_the_same_explanation(cross_encoder, texts) -> None:
    text = texts["Rocky"][1]
    first = explain(cross_encoder, "an underdog boxer", text, use_cache=False)
    explain(cross_encoder, "an underdog boxer", text)  # stores it (or finds it)
    again = explain(cross_encoder, "an underdog boxer", text)
    assert again.from_cache
    assert again.doc_words == first.doc_words and again.query_words == first.query_words
    assert again.base_score == first.base_score and again.model_key == first.model_key


def test_long_text_sentence_level_and_unread_marked(texts) -> None:
    from core.models.registry import load_reranker

    short = load_reranker(max_length=256)
    filler = " ".join(f"Sentence {i} talks about gardens and weather." for i in range(60))
    text = texts["Man on a Ledge"][1] + "\n" + filler + " A heist at the very end."
    expl = explain(short, "a heist in a big city", text, use_cache=False)
    assert expl.truncated and expl.unread
    assert expl.sentences, "over 120 words read: sentence level first"
    last = [w for w in expl.doc_words if w.text == "end."][-1]
    assert not last.read and last.effect is None
    assert expl.read_span[1] < len(text)
    assert expl.pairs_scored < 80
    best = max(expl.sentences, key=lambda s: s.effect)
    assert "heist" in best.text.lower()


def test_heat_map_is_escaped_and_signed(cross_encoder) -> None:
    text = 'overview: a <script>alert("x")</script> bank heist & robbery gone wrong'
    expl = explain(cross_encoder, "bank heist", text, use_cache=False)
    page = heatmap_html(expl)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "&amp;" in page
    assert "<sup" in page  # strong words carry their sign in text
    assert signed(-0.5) == "\u22120.50" and signed(1.0) == "+1.00"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "heist", "--doc", "no-such-id"], "not in the dataset"),
        (["explain", "the", "--doc", "15"], "only stop words"),
        (["explain", "  ", "--doc", "15"], "query is empty"),
    ],
)
def test_cli_bad_input_is_one_error_line(movies_path, capsys, argv, message) -> None:
    from core.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_a_100_kb_field_explains_what_the_model_reads(texts) -> None:
    from core.models.registry import load_reranker

    short = load_reranker(max_length=256)
    text = texts["Man on a Ledge"][1] + " " + "filler words about nothing. " * 3600
    assert len(text) > 100_000
    expl = explain(short, "a heist in a big city", text, use_cache=False)
    assert expl.truncated and expl.read_span[1] < 2_000
    read = [w for w in expl.doc_words if w.read]
    assert len(read) < 250 and len(expl.doc_words) > 10_000
    assert expl.pairs_scored < 80
    assert expl.helped(1)[0].text.lower().startswith("heist")


def test_cli_json_has_both_stages_and_the_contrast(movies_path, movies_index, capsys) -> None:
    import json

    from core.cli import main

    argv = ["explain", "a heist in a big city", "--doc", "938", "--contrast", "468", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["explanation"]["helped"][0]["text"].lower().startswith("heist")
    first = out["first_stage"]
    assert first["kind"] == "dense" and abs(first["total"] - first["shown"]) < 1e-4
    assert out["contrast"]["x_score"] > out["contrast"]["y_score"]
    assert isinstance(out["contrast"]["flips"], bool)


def test_sentence_major_order_for_hierarchical_explanations() -> None:
    from core.quality.explain import Explanation, Piece

    text = "Alpha beta. Gamma delta."
    words = (
        Piece("Alpha", 0, 5, None),
        Piece("beta.", 6, 11, None),
        Piece("Gamma", 12, 17, -0.5),
        Piece("delta.", 18, 24, 0.3),
    )
    sentences = (Piece("Alpha beta.", 0, 11, 0.4), Piece("Gamma delta.", 12, 24, 2.0))
    expl = Explanation("q", text, 1.0, words, (), "occlusion", "m", "k", False, (0, 24), sentences)
    assert occlusion_order(expl) == [(18, 24), (12, 17), (0, 5), (6, 11)]
    assert occlusion_order(expl, sentence_major=False)[0] == (18, 24)
    assert occlusion_order(expl, sentence_major=False)[-1] == (12, 17)
