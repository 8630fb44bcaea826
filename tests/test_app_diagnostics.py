"""The "Ceiling & fields" page (pages/diagnostics.py) with AppTest.

The deterministic fakes stand in for the models: ``pages.widgets.common.get_encoder`` and
``get_reranker`` are patched, and the page imports them from there on every run.
Everything runs on the 40-record sample dataset, where the fake bi-encoder's order is
computed below independently of the page. One test (slow) opens the page on movies
with the real packaged models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import FakeEncoder, FakeReranker
from streamlit.testing.v1 import AppTest

from core.data.datasets import load_dataset
from core.present.views import NO_RERANK
from core.quality.diagnostics import clear_memory_cache, field_ablation
from core.search.index import build_index
from tests.test_diagnostics import WordReranker

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/diagnostics.py"
SAMPLE_BATS = "how do I get bats out of my roof without hurting them"
BATS = "super hero mystery action movie about bats"


def texts(elements) -> str:
    """The elements' text as a reader sees it: the app's markdown escapes resolved."""
    return re.sub(r"\\(.)", r"\1", "\n".join(str(e.value) for e in elements))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def chart_rows(at: AppTest) -> list[dict]:
    """Every data row of every chart (Streamlit sends chart data apart from the spec)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    rows = []
    for chart in at.get("vega_lite_chart"):
        for named in chart.proto.datasets:
            rows += convert_arrow_bytes_to_pandas_df(named.data.data).to_dict("records")
    return rows


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


@pytest.fixture(scope="module")
def sample():
    return load_dataset("sample")


@pytest.fixture(scope="module")
def fake_order(sample) -> list[str]:
    """The fake bi-encoder's retrieval order of the whole sample for the bats query."""
    encoder = FakeEncoder()
    index = build_index(sample, encoder, sample.default_embed_fields, use_cache=False).index
    vector = encoder.encode([SAMPLE_BATS], kind="query")[0]
    return [hit.id for hit in index.search(vector, len(sample))]


@pytest.fixture
def fakes(monkeypatch, tmp_path, fake_order):
    """Fake models in the page; the reranker loves what retrieval ranks last."""
    import pages.widgets.common

    # scores: the last retrieved 3.0, the first 2.0, the 12th 1.0, the rest 0
    reranker = FakeReranker({fake_order[-1]: 3.0, fake_order[0]: 2.0, fake_order[11]: 1.0})
    monkeypatch.setattr(pages.widgets.common, "get_reranker", lambda model_id: reranker)
    monkeypatch.setattr(pages.widgets.common, "get_encoder", lambda model_id: FakeEncoder())
    monkeypatch.setenv("RERANK_CACHE_DIR", str(tmp_path / "cache"))
    clear_memory_cache()
    yield reranker
    clear_memory_cache()


def open_page(**widgets) -> AppTest:
    """The app, switched to the page, with its widgets set (keys without ``diag_``)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()  # the Search page, no query: stops before loading any model
    at.switch_page(PAGE).run()
    assert_no_exception(at)
    for key, value in widgets.items():
        widget = at.text_input(key="diag_query") if key == "query" else None
        if widget is not None:
            widget.input(value)
        elif key in ("candidates", "results"):
            at.slider(key=f"diag_{key}").set_value(value)
        elif key == "view":
            at.radio(key="diag_view").set_value(value)
        else:
            at.selectbox(key=f"diag_{key}").set_value(value)
    return at.run()


def test_page_prompts_for_a_query_and_offers_examples() -> None:
    at = open_page()
    assert at.title[0].value == "Recall ceiling & field ablation"
    assert "Type a query or pick an example" in texts(at.info)
    assert BATS in [b.label for b in at.button]
    assert at.radio(key="diag_view").value == "ceiling"
    assert not at.metric and not at.error


def test_ceiling_view_with_fakes(fakes, fake_order, sample) -> None:
    at = open_page(dataset="sample", query=SAMPLE_BATS, candidates=10, results=3)
    assert_no_exception(at)
    # ideal top-3: the last retrieved (#40), the first (#1), the 12th (#12)
    assert metrics(at)["Ideal top-3 reached with 10"] == "1 / 3"
    assert metrics(at)["Candidates to reach all 3"] == "40"
    assert {"Whole-corpus rerank", "Est. rerank of 10"} <= set(metrics(at))
    missed = at.dataframe[0].value
    assert list(missed.columns) == ["title", "reranker #", "retrieval #", "score"]
    assert missed.to_dict("list") == {
        "title": [sample.title(fake_order[-1]), sample.title(fake_order[11])],
        "reranker #": [1, 3],
        "retrieval #": [40, 12],
        "score": [3.0, 1.0],
    }
    assert len(charts(at)) == 1
    reached = {row["candidates"]: row["reached"] for row in chart_rows(at) if "reached" in row}
    assert reached[1] == 1 and reached[10] == 1 and reached[12] == 2 and reached[40] == 3
    # the whole corpus was scored once, in chunks; a second run reads the cache
    assert sum(len(docs) for _, docs in fakes.seen) == len(sample)
    at.slider(key="diag_candidates").set_value(20).run()
    assert metrics(at)["Ideal top-3 reached with 20"] == "2 / 3"
    assert sum(len(docs) for _, docs in fakes.seen) == len(sample)
    assert at.query_params["q"] == SAMPLE_BATS and at.query_params["k"] == "20"
    assert at.query_params["view"] == "ceiling"


def test_field_ablation_view_with_a_word_counting_reranker(
    monkeypatch, fakes, sample, fake_order
) -> None:
    import pages.widgets.common

    reranker = WordReranker()
    monkeypatch.setattr(pages.widgets.common, "get_reranker", lambda model_id: reranker)
    at = open_page(dataset="sample", query=SAMPLE_BATS, candidates=10, results=5, view="fields")
    assert_no_exception(at)
    # the same ablation, computed directly on the fake retrieval's first 10
    expected = field_ablation(sample, SAMPLE_BATS, WordReranker(), fake_order[:10], num_results=5)
    names = list(expected.names)
    assert names == ["title only", "title + summary", "all fields (5)"]
    tables = [df.value for df in at.dataframe]
    assert len(tables) == 5  # one per field set, the scores, the agreement table
    letters = dict(zip(names, "ABC", strict=True))
    for table, name in zip(tables[:3], names, strict=True):
        others = [n for n in names if n != name]
        columns = ["#", "title", *[f"{letters[o]} #" for o in others]]
        assert list(table.columns) == columns
        assert list(table["#"]) == [1, 2, 3, 4, 5]
        assert list(table["title"]) == [sample.title(d) for d in expected.top(name)]
        for other in others:
            assert list(table[f"{letters[other]} #"]) == [
                expected.ranking(other).rank(d) for d in expected.top(name)
            ]
    assert "**A · title only**" in [m.value for m in at.markdown]
    assert list(tables[0]["title"]) != list(tables[2]["title"]), "the field sets disagree"
    # every variant reranked the same 10 candidates
    assert [len(docs) for docs in reranker.seen] == [10, 10, 10]
    assert [d.id for d in reranker.seen[0]] == fake_order[:10]
    scores = tables[3]
    assert list(scores["title"]) == [sample.title(d) for d in expected.top_union()]
    assert list(scores["all fields (5) score"]) == [
        expected.ranking("all fields (5)").score(d) for d in expected.top_union()
    ]
    agreement = tables[4]
    assert list(agreement["field sets"]) == [
        "title only vs title + summary",
        "title only vs all fields (5)",
        "title + summary vs all fields (5)",
    ]
    assert list(agreement["Kendall τ"]) == [a.kendall_tau for a in expected.agreements]
    assert list(agreement["RBO (p=0.9)"]) == [a.rbo for a in expected.agreements]
    assert list(agreement["overlap@5"]) == [a.overlap for a in expected.agreements]
    assert len(charts(at)) == 1
    variants = {row["variant"] for row in chart_rows(at) if "variant" in row}
    assert variants == set(names)
    assert "The Dark Knight" in texts(at.caption)
    assert at.query_params["view"] == "fields"


def test_no_reranker_is_an_error(fakes) -> None:
    at = open_page(dataset="sample", query=SAMPLE_BATS, reranker=NO_RERANK)
    assert_no_exception(at)
    assert "pick one in the sidebar" in texts(at.error)
    assert not at.metric and not fakes.seen


def test_too_large_for_the_ceiling_but_fine_for_the_ablation(monkeypatch, fakes) -> None:
    import core.quality.diagnostics

    monkeypatch.setattr(core.quality.diagnostics, "MAX_CEILING_DOCS", 30)
    at = open_page(dataset="sample", query=SAMPLE_BATS)
    assert_no_exception(at)
    assert "limited to 30 records; this dataset has 40" in texts(at.error)
    assert not fakes.seen, "nothing was reranked"
    at.radio(key="diag_view").set_value("fields").run()
    assert_no_exception(at)
    assert not at.error and len(at.dataframe) == 5


def test_unavailable_dataset_says_why(monkeypatch, tmp_path) -> None:
    from pages.widgets.common import get_dataset, load_named_dataset

    monkeypatch.setenv("RERANK_MOVIES_PATH", str(tmp_path / "gone" / "movies.json"))
    get_dataset.clear()
    load_named_dataset.clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.switch_page(PAGE).run()
        assert_no_exception(at)
        assert "is not available" in texts(at.error)
        assert "Sample" in texts(at.info)
    finally:
        monkeypatch.undo()
        get_dataset.clear()
        load_named_dataset.clear()


def test_query_and_settings_come_from_the_search_page(fakes) -> None:
    from core.present.views import SearchSettings

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.session_state["view"] = SearchSettings(
        dataset="sample", query=SAMPLE_BATS, candidates=20, results=3
    )
    # A browser's page switch clears the URL's parameters; AppTest keeps them.
    at.query_params.clear()
    at.switch_page(PAGE).run()
    assert_no_exception(at)
    assert at.text_input(key="diag_query").value == SAMPLE_BATS
    assert at.selectbox(key="diag_dataset").value == "sample"
    assert at.slider(key="diag_candidates").value == 20
    assert metrics(at)["Ideal top-3 reached with 20"] == "2 / 3"


@pytest.mark.slow
def test_movies_bats_with_the_real_models() -> None:
    at = open_page(query=BATS, view="fields")
    assert_no_exception(at)
    title_only, default = at.dataframe[0].value, at.dataframe[1].value
    assert "The Dark Knight" in list(default["title"])
    assert "The Dark Knight" not in list(title_only["title"])
    knight = default[default["title"] == "The Dark Knight"].iloc[0]
    assert knight["A #"] > 10  # A: title only


def test_bm25_first_stage_feeds_the_ceiling(fakes, sample) -> None:
    from core.search.retrievers import BM25Index

    at = open_page(dataset="sample", query=SAMPLE_BATS, retriever="bm25", candidates=10)
    assert_no_exception(at)
    assert "Retrieval: BM25 (lexical) over" in texts(at.caption)
    bm25 = BM25Index(sample, sample.default_embed_fields).retrieve(SAMPLE_BATS, len(sample))
    reached = {row["candidates"]: row["reached"] for row in chart_rows(at) if "reached" in row}
    assert reached  # the curve is drawn from BM25's own (partial) order
    assert at.query_params["ret"] == "bm25"
    assert len(bm25.hits) < len(sample)  # BM25 lists only docs sharing a word
