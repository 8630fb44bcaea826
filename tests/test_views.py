"""Tests of core.present.views: settings <-> URL, badges, summary figures and exports.

The search results come from the real pipeline (core.search.pipeline.search_with_rerank) run
with the deterministic FakeEncoder / FakeReranker over a tiny hand-made dataset, so
every expected order below can be worked out by hand:

* retrieval: the query is "apple" and record ``i`` holds "apple" plus ``i`` distinct
  filler words, so its cosine is exactly 1 / sqrt(1 + i) and retrieval order is
  a, b, c, d, e, f (g and h are never retrieved with 6 candidates);
* rerank: the fake reranker's table puts them in the order e, a, c, b, f, d.
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from conftest import FakeEncoder, FakeReranker

from core.data.documents import make_dataset
from core.models.base import PACKAGED_CROSS_ENCODER, sigmoid
from core.present.views import (
    CANDIDATES_RANGE,
    EXPORT_COLUMNS,
    NO_RERANK,
    RESULTS_RANGE,
    URL_KEYS,
    SearchSettings,
    Summary,
    badge,
    direction,
    export_csv,
    export_json,
    export_rows,
    summarize,
)
from core.search.pipeline import search_with_rerank

FILLERS = ("red", "green", "blue", "gold", "pink", "teal", "gray")  # no hash collisions
IDS = ("a", "b", "c", "d", "e", "f", "g", "h")
TINY = make_dataset(
    "tiny",
    [
        {"id": doc_id, "title": f"Doc {doc_id.upper()}", "text": " ".join(("apple", *FILLERS[:i]))}
        for i, doc_id in enumerate(IDS)
    ],
    id_field="id",
    title_field="title",
    embed_fields=("text",),
    rerank_fields=("title", "text"),
)
RERANK_SCORES = {"e": 5.0, "a": 4.0, "c": 3.0, "b": 2.0, "f": 1.0, "d": 0.0, "g": 9.0}
RETRIEVAL_ORDER = ["a", "b", "c", "d", "e", "f"]
RERANK_ORDER = ["e", "a", "c", "b", "f", "d"]


def _search(reranker=None, *, num_candidates: int = 6, num_results: int = 3):
    return search_with_rerank(
        TINY,
        "apple",
        encoder=FakeEncoder(),
        reranker=reranker,
        num_candidates=num_candidates,
        num_results=num_results,
    )


@pytest.fixture
def result():
    return _search(FakeReranker(RERANK_SCORES, truncate_ids=("b", "f")))


@pytest.fixture
def plain():
    """The same search without a reranker."""
    return _search(None)


def _by_id(result):
    return {c.id: c for c in result.candidates}


# --- the fixture data is what the module docstring says -------------------------------


def test_tiny_dataset_orders_are_the_hand_computed_ones(result) -> None:
    assert [c.id for c in result.candidates] == RETRIEVAL_ORDER
    assert [c.id for c in result.reranked] == RERANK_ORDER
    for i, c in enumerate(result.candidates):
        assert c.retrieval_score == pytest.approx(1 / math.sqrt(1 + i), abs=1e-6)
    # "g" scores best with the fake reranker, but retrieval never handed it over.
    assert "g" not in _by_id(result)


# --- SearchSettings <-> URL query parameters -----------------------------------------

FULL = SearchSettings(
    dataset="sample",
    query="bats in the attic, safely",
    candidates=120,
    results=7,
    embed_fields=("title", "summary"),
    rerank_fields=("summary",),
    encoder="some-org/encoder",
    reranker=NO_RERANK,
    id_field="(row)",
    title_field="summary",
    retriever="hybrid",
    fusion_weight=0.6,
    fusion="rrf",
    rrf_k=20,
    passages="top2",
    window=128,
    stride=64,
    dense_passages=True,
)


def test_retriever_and_fusion_params_are_checked() -> None:
    view, warnings = SearchSettings.from_params(
        {"ret": "splade", "fw": "1.7", "fm": "max", "rrfk": "x"}
    )
    assert view.retriever == "dense" and view.fusion == "linear" and view.rrf_k == 60
    assert view.fusion_weight == 1.0
    assert len(warnings) == 4
    assert any("fw=1.7 is outside 0–1" in w for w in warnings)
    view, warnings = SearchSettings.from_params({"ret": "bm25", "fw": "0.35", "fm": "rrf"})
    assert (view.retriever, view.fusion_weight, view.fusion, warnings) == ("bm25", 0.35, "rrf", [])
    assert view.fused


@pytest.fixture
def hub_ids_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """FULL names hub-style model ids: links carry them only when downloads are allowed."""
    monkeypatch.setenv("RERANK_ALLOW_DOWNLOADS", "1")


def test_every_field_round_trips_through_params(hub_ids_allowed) -> None:
    params = FULL.to_params()
    back, warnings = SearchSettings.from_params(params)
    assert back == FULL
    assert warnings == []
    # every field differs from the default, so every field is in the link
    assert all(getattr(FULL, name) != getattr(SearchSettings(), name) for name in URL_KEYS)
    assert set(params) == set(URL_KEYS.values())


def test_params_use_the_short_keys_and_plain_strings() -> None:
    assert FULL.to_params() == {
        "dataset": "sample",
        "q": "bats in the attic, safely",
        "k": "120",
        "n": "7",
        "efields": "title,summary",
        "rfields": "summary",
        "encoder": "some-org/encoder",
        "reranker": "none",
        "idf": "(row)",
        "tf": "summary",
        "ret": "hybrid",
        "fw": "0.6",
        "fm": "rrf",
        "rrfk": "20",
        "psg": "top2",
        "pw": "128",
        "ps": "64",
        "dp": "1",
    }


def test_defaults_are_left_out_except_the_dataset() -> None:
    assert SearchSettings().to_params() == {"dataset": "movies"}
    assert SearchSettings(query="heist", results=10).to_params() == {
        "dataset": "movies",
        "q": "heist",
    }
    assert SearchSettings.from_params({}) == (SearchSettings(), [])


def test_packaged_reranker_is_the_default_and_left_out(hub_ids_allowed) -> None:
    assert SearchSettings().reranker == PACKAGED_CROSS_ENCODER
    assert "reranker" not in SearchSettings(reranker=PACKAGED_CROSS_ENCODER).to_params()
    custom = SearchSettings(reranker="cross-encoder/ms-marco-MiniLM-L-6-v2")
    assert SearchSettings.from_params(custom.to_params())[0] == custom


@pytest.mark.parametrize(
    ("params", "name", "expected", "key"),
    [
        ({"k": "5"}, "candidates", CANDIDATES_RANGE[0], "k=5"),
        ({"k": "999"}, "candidates", CANDIDATES_RANGE[1], "k=999"),
        ({"n": "0"}, "results", RESULTS_RANGE[0], "n=0"),
        ({"n": "-3"}, "results", RESULTS_RANGE[0], "n=-3"),
        ({"n": "999"}, "results", RESULTS_RANGE[1], "n=999"),
    ],
)
def test_out_of_range_counts_are_clamped_with_a_warning(params, name, expected, key) -> None:
    settings, warnings = SearchSettings.from_params(params)
    assert getattr(settings, name) == expected
    assert len(warnings) == 1
    assert warnings[0].startswith(key)
    assert f"using {expected}" in warnings[0]


def test_counts_at_the_edges_are_accepted_silently() -> None:
    settings, warnings = SearchSettings.from_params({"k": "10", "n": "50"})
    assert (settings.candidates, settings.results) == (10, 50)
    assert warnings == []


@pytest.mark.parametrize("raw", ["abc", "2.5", "1e3", "ten"])
def test_non_integer_counts_are_ignored_with_a_warning(raw) -> None:
    settings, warnings = SearchSettings.from_params({"k": raw, "n": raw})
    assert (settings.candidates, settings.results) == (50, 10)  # the defaults
    assert len(warnings) == 2
    assert warnings[0].startswith(f"ignored k={raw!r}")
    assert warnings[1].startswith(f"ignored n={raw!r}")
    assert all("not a whole number" in w for w in warnings)


def test_both_bad_counts_get_their_own_warning() -> None:
    settings, warnings = SearchSettings.from_params({"k": "abc", "n": "999"})
    assert (settings.candidates, settings.results) == (50, 50)
    assert len(warnings) == 2
    assert warnings[0].startswith("ignored k='abc'")
    assert warnings[1].startswith("n=999 is outside 1–50")


def test_empty_values_are_ignored() -> None:
    settings, warnings = SearchSettings.from_params(
        {
            "dataset": "",
            "q": "   ",
            "efields": "",
            "rfields": " , ,",
            "encoder": " ",
            "reranker": "",
        }
    )
    assert settings == SearchSettings()
    assert warnings == []


def test_empty_counts_fall_back_to_the_defaults() -> None:
    settings, _ = SearchSettings.from_params({"k": "", "n": ""})
    assert (settings.candidates, settings.results) == (50, 10)


def test_values_are_stripped_and_field_lists_split() -> None:
    settings, warnings = SearchSettings.from_params(
        {"q": "  heist  ", "k": " 30 ", "efields": " title , , overview ", "dataset": " sample "}
    )
    assert settings.query == "heist"
    assert settings.candidates == 30
    assert settings.embed_fields == ("title", "overview")
    assert settings.dataset == "sample"
    assert warnings == []


def test_with_dataset_fields_drops_unknown_fields_with_a_warning() -> None:
    settings = SearchSettings(embed_fields=("title", "nope"), rerank_fields=("zilch",))
    kept, warnings = settings.with_dataset_fields(("title", "overview"))
    assert kept.embed_fields == ("title",)
    assert kept.rerank_fields == ()
    assert len(warnings) == 2
    assert "nope" in warnings[0] and "title" not in warnings[0]
    assert "zilch" in warnings[1]
    assert kept.query == settings.query and kept.dataset == settings.dataset


def test_with_dataset_fields_keeps_known_fields_silently() -> None:
    settings = SearchSettings(embed_fields=("overview", "title"))
    assert settings.with_dataset_fields(("title", "overview")) == (settings, [])


def test_settings_never_carry_secrets(monkeypatch, result) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("TOGETHER_API_KEY", secret)
    keys = set(FULL.to_params()) | set(URL_KEYS) | set(URL_KEYS.values())
    for word in ("key", "token", "secret", "password", "auth"):
        assert not any(word in k.lower() for k in keys), word
    exported = export_json(result) + export_csv(result) + json.dumps(FULL.to_params())
    assert secret not in exported
    assert "api_key" not in exported.lower()


# --- badge / direction -------------------------------------------------------------


def test_badges_and_directions(result) -> None:
    c = _by_id(result)
    assert (badge(c["e"]), direction(c["e"])) == ("new · from #5", "up")  # 5 -> 1
    assert (badge(c["f"]), direction(c["f"])) == ("▲ 1", "up")  # 6 -> 5
    assert (badge(c["a"]), direction(c["a"])) == ("▼ 1", "down")  # 1 -> 2
    assert (badge(c["b"]), direction(c["b"])) == ("▼ 2", "down")  # 2 -> 4, left top-3
    assert (badge(c["d"]), direction(c["d"])) == ("▼ 2", "down")  # 4 -> 6
    assert (badge(c["c"]), direction(c["c"])) == ("=", "same")  # 3 -> 3


def test_entered_badge_names_the_retrieval_rank_even_for_big_jumps() -> None:
    scores = {"f": 10.0}
    c = _by_id(_search(FakeReranker(scores), num_results=2))
    assert badge(c["f"]) == "new · from #6"
    assert c["f"].entered and c["f"].movement == 5


def test_no_reranker_means_no_badge_and_direction_none(plain) -> None:
    assert {badge(c) for c in plain.candidates} == {""}
    assert {direction(c) for c in plain.candidates} == {"none"}


# --- summarize ------------------------------------------------------------------------


def test_summary_figures(result) -> None:
    summary = summarize(result)
    assert isinstance(summary, Summary)
    # retrieval a b c d e f -> positions in the reranked order: 1 3 2 5 0 4, which has
    # 6 inversions out of 15 pairs: tau = (15 - 2 * 6) / 15
    assert summary.kendall_tau == pytest.approx(0.2)
    assert summary.overlap == pytest.approx(2 / 3)  # {a, b, c} vs {e, a, c}
    assert summary.from_outside == 1  # e
    assert summary.moved_up == 1  # e
    assert summary.moved_down == 1  # a
    assert summary.unchanged == 1  # c
    assert summary.top_changed is True  # e, not a, is first
    assert summary.truncated == 2  # b and f


def test_summary_of_an_unchanged_order() -> None:
    same = {doc_id: float(10 - i) for i, doc_id in enumerate(RETRIEVAL_ORDER)}
    summary = summarize(_search(FakeReranker(same)))
    assert summary == Summary(
        kendall_tau=1.0,
        overlap=1.0,
        from_outside=0,
        moved_up=0,
        moved_down=0,
        unchanged=3,
        truncated=0,
        top_changed=False,
    )


def test_summary_of_a_reversed_order() -> None:
    reversed_scores = {doc_id: float(i) for i, doc_id in enumerate(RETRIEVAL_ORDER)}
    summary = summarize(_search(FakeReranker(reversed_scores)))
    assert summary.kendall_tau == pytest.approx(-1.0)
    assert summary.overlap == 0.0
    assert summary.from_outside == 3
    assert summary.top_changed is True


def test_ties_keep_retrieval_order() -> None:
    summary = summarize(_search(FakeReranker({})))  # every score 0.0
    assert summary.kendall_tau == 1.0
    assert summary.top_changed is False


def test_no_summary_without_a_reranker(plain) -> None:
    assert summarize(plain) is None


# --- exports ------------------------------------------------------------------------


def test_export_csv_has_the_header_and_one_row_per_candidate_in_final_order(result) -> None:
    text = export_csv(result)
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == EXPORT_COLUMNS
    rows = list(reader)
    assert [r["id"] for r in rows] == RERANK_ORDER
    assert [r["final_rank"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [r["retrieval_rank"] for r in rows] == ["5", "1", "3", "2", "6", "4"]
    first = rows[0]
    assert first["title"] == "Doc E"
    assert first["badge"] == "new · from #5"
    assert first["entered_top"] == "True"
    assert first["rerank_score"] == "5.0"
    assert float(first["retrieval_score"]) == pytest.approx(1 / math.sqrt(5), abs=1e-6)
    assert [r["left_top"] for r in rows].count("True") == 1  # b
    assert [r["truncated"] for r in rows].count("True") == 2


def test_export_csv_quotes_awkward_titles() -> None:
    records = [
        {"id": "x", "title": 'Comma, "quote"\nand newline', "text": "apple"},
        {"id": "y", "title": "Plain", "text": "apple red"},
    ]
    data = make_dataset("awkward", records, id_field="id", title_field="title")
    res = search_with_rerank(
        data, "apple", encoder=FakeEncoder(), embed_fields=("text",), num_candidates=2
    )
    rows = list(csv.DictReader(io.StringIO(export_csv(res))))
    assert [r["title"] for r in rows] == ['Comma, "quote"\nand newline', "Plain"]


def test_export_without_reranker_leaves_rerank_columns_empty(plain) -> None:
    rows = list(csv.DictReader(io.StringIO(export_csv(plain))))
    assert [r["id"] for r in rows] == RETRIEVAL_ORDER
    assert {r["rerank_rank"] for r in rows} == {""}
    assert {r["rerank_score"] for r in rows} == {""}
    assert {r["badge"] for r in rows} == {""}


def test_export_rows_match_the_columns(result) -> None:
    rows = export_rows(result)
    assert len(rows) == len(result.candidates) == 6
    assert all(tuple(r) == EXPORT_COLUMNS for r in rows)


def test_export_json_carries_both_ranks_and_scores(result) -> None:
    data = json.loads(export_json(result))
    assert data["query"] == "apple"
    assert data["dataset"] == "tiny"
    assert data["reranker"] == "fake-reranker"
    assert data["score_kind"] == "logit"
    assert (data["num_candidates"], data["num_results"]) == (6, 3)
    assert data["embed_fields"] == ["text"]
    assert data["rerank_fields"] == ["title", "text"]
    assert set(data["timings"]) >= {"query_encode", "search", "rerank", "total"}
    results = data["results"]
    assert [r["id"] for r in results] == RERANK_ORDER
    first = results[0]
    assert (first["retrieval_rank"], first["rerank_rank"], first["final_rank"]) == (5, 1, 1)
    assert first["retrieval_score"] == pytest.approx(1 / math.sqrt(5), abs=1e-6)
    assert first["rerank_score"] == 5.0
    assert first["rerank_normalized"] == pytest.approx(sigmoid(5.0))
    assert first["movement"] == 4
    assert first["entered_top"] is True
    assert first["record"] == {"id": "e", "title": "Doc E", "text": "apple red green blue gold"}
    assert first["rerank_text"] == "title: Doc E\ntext: apple red green blue gold"


def test_export_json_keeps_unicode_readable() -> None:
    records = [{"id": "x", "title": "Amélie — 天気", "text": "apple"}]
    data = make_dataset("unicode", records, id_field="id", title_field="title")
    res = search_with_rerank(
        data, "apple", encoder=FakeEncoder(), embed_fields=("text",), num_candidates=1
    )
    text = export_json(res)
    assert "Amélie — 天気" in text
    assert json.loads(text)["results"][0]["title"] == "Amélie — 天気"


def test_escape_markdown_neutralises_formatting_and_reads_back_exactly() -> None:
    import re

    from core.present.views import escape_markdown

    text = "[click](https://x.example) **bold** $x$ <b>hi</b> # h | t ~s~ `c` a_b"
    escaped = escape_markdown(text)
    for special in "[]()*$<>#|~`_:":
        assert f"\\{special}" in escaped
    # CommonMark shows an escaped punctuation character as itself: nothing is lost
    plain = "cut.json, line 3 (col 9): 'x' - y!"
    assert re.sub(r"\\(.)", r"\1", escape_markdown(plain)) == plain
