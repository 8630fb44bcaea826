"""End-to-end tests of the Streamlit app with AppTest: URL in, widgets, URL out, errors.

AppTest runs the scripts in this process, so Streamlit's resource caches (models,
datasets, indexes) are shared between tests, and the corpus embeddings come from the
disk cache conftest points at (RERANK_CACHE_DIR). Tests that reach the real models are
marked slow; the others stop before any model is loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.datasets import MOVIES_EMBED_FIELDS, MOVIES_RERANK_FIELDS
from core.models.base import PACKAGED_CROSS_ENCODER
from core.present.views import EXPORT_COLUMNS, NO_RERANK, export_csv, export_json

ROOT = Path(__file__).resolve().parents[1]
BATS = "super hero mystery action movie about bats"
SAMPLE_BATS = "how do I get bats out of my roof without hurting them"
MISSING_MODEL = "some-org/not-a-model"


def make_app(**params: str) -> AppTest:
    """An AppTest of the entry point, with ``params`` in its URL."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for key, value in params.items():
        at.query_params[key] = value
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# The two tables, told apart by a column only each has (a read-only st.dataframe
# does not expose its key to AppTest).
TABLE_COLUMNS = {"retrieval_table": "cosine", "rerank_table": "move"}


def table(at: AppTest, key: str):
    (frame,) = [df.value for df in at.dataframe if TABLE_COLUMNS[key] in df.value.columns]
    return frame


def titles(at: AppTest, key: str) -> list[str]:
    return list(table(at, key)["title"])


def texts(elements) -> str:
    """The elements' text as a reader sees it: the app's markdown escapes resolved."""
    return re.sub(r"\\(.)", r"\1", "\n".join(str(e.value) for e in elements))


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


@pytest.fixture(scope="module")
def bats_app() -> AppTest:
    """One search run from a shared link, read (never changed) by several tests."""
    at = make_app(q=BATS, n="5", k="30").run()
    assert_no_exception(at)
    return at


@pytest.fixture
def movies_unavailable(monkeypatch, tmp_path):
    """The movies file is gone: point the env var at nothing and forget the cached copy."""
    from pages.widgets.common import get_dataset, load_named_dataset

    monkeypatch.setenv("RERANK_MOVIES_PATH", str(tmp_path / "gone" / "movies.json"))
    get_dataset.clear()
    load_named_dataset.clear()
    yield
    # monkeypatch restores the env var after this; the next load reads the real file
    get_dataset.clear()
    load_named_dataset.clear()


# --- defaults -------------------------------------------------------------------------


def test_defaults_prompt_for_a_query() -> None:
    at = make_app().run()
    assert_no_exception(at)
    assert "Type a query or pick an example" in texts(at.info)
    assert at.title[0].value == "Retrieve, then rerank"
    assert at.query_params["dataset"] == "movies"
    assert "q" not in at.query_params
    assert at.text_input(key="query").value == ""
    assert at.slider(key="candidates").value == 50
    assert at.slider(key="results").value == 10
    assert at.selectbox(key="reranker_choice").value == PACKAGED_CROSS_ENCODER
    assert at.multiselect(key="embed_fields").value == list(MOVIES_EMBED_FIELDS)
    assert at.multiselect(key="rerank_fields").value == list(MOVIES_RERANK_FIELDS)
    assert not at.dataframe and not at.metric and not at.warning and not at.error


def test_example_buttons_are_offered_for_the_dataset() -> None:
    at = make_app().run()
    labels = [b.label for b in at.button]
    assert BATS in labels
    assert "a heist that goes wrong" in labels


def test_about_page_before_any_search_points_to_search() -> None:
    at = make_app().run()
    at.switch_page("pages/about.py").run()
    assert_no_exception(at)
    assert at.title[0].value == "About this workbench"
    assert "Run a search on the Search page" in texts(at.info)


# --- a search from a shared link ---------------------------------------------------------


@pytest.mark.slow
def test_link_settings_seed_the_widgets(bats_app) -> None:
    at = bats_app
    assert at.text_input(key="query").value == BATS
    assert at.slider(key="candidates").value == 30
    assert at.slider(key="results").value == 5
    assert not at.warning and not at.error


@pytest.mark.slow
def test_both_orders_show_n_rows_and_batman_comes_first(bats_app) -> None:
    retrieval = table(bats_app, "retrieval_table")
    reranked = table(bats_app, "rerank_table")
    assert len(retrieval) == len(reranked) == 5
    assert list(retrieval["#"]) == [1, 2, 3, 4, 5]
    assert list(reranked["#"]) == [1, 2, 3, 4, 5]
    assert "Batman" in reranked["title"][0]
    assert reranked["retrieval #"].max() <= 30
    assert (retrieval["cosine"].diff().dropna() <= 0).all()  # best first
    assert (reranked["logit"].diff().dropna() <= 0).all()


@pytest.mark.slow
def test_summary_metrics_are_shown(bats_app) -> None:
    shown = metrics(bats_app)
    assert set(shown) == {
        "Top result",
        "Kendall τ",
        "Top-5 overlap",
        "From outside top-N",
        "Rerank",
        "Total",
    }
    assert shown["Top result"] in ("changed", "same")
    assert -1.0 <= float(shown["Kendall τ"]) <= 1.0
    assert shown["Top-5 overlap"].endswith("%")
    assert 0 <= int(shown["From outside top-N"]) <= 5
    assert shown["Rerank"].endswith(" ms")


@pytest.mark.slow
def test_charts_keep_cosine_and_logit_on_separate_axes(bats_app) -> None:
    specs = charts(bats_app)
    assert len(specs) == 3  # movement, retrieval scores, rerank scores
    assert "layer" in specs[0]
    x_titles = [spec["encoding"]["x"]["title"] for spec in specs[1:]]
    assert x_titles == ["cosine similarity (bi-encoder)", "cross-encoder logit (raw)"]


@pytest.mark.slow
def test_details_and_download_buttons(bats_app) -> None:
    pick = bats_app.selectbox(key="detail_pick")
    assert len(pick.options) == 5
    assert pick.value.startswith("1. ") and "Batman" in pick.value
    buttons = {b.label: b for b in bats_app.download_button}
    assert set(buttons) == {
        "Download CSV",
        "Download JSON",
        "Export judgments (CSV)",
        "Export report (HTML)",
        "Reproduce in Python",
        "Reproduce with sentence-transformers only",
        "Manifest (JSON)",
    }
    assert all(not b.disabled for b in buttons.values())
    assert buttons["Download CSV"].proto.url.endswith(".csv")
    assert buttons["Download JSON"].proto.url.endswith(".json")


@pytest.mark.slow
def test_downloads_hold_the_exports_of_the_shown_result(bats_app) -> None:
    try:  # Streamlit names a served file by a hash of its bytes, type and name
        from streamlit.runtime.memory_media_file_storage import _calculate_file_id
    except ImportError:  # pragma: no cover - a Streamlit without this helper
        pytest.skip("this Streamlit has no _calculate_file_id")
    result = bats_app.session_state["last_result"]
    assert result.query == BATS
    assert [c.title for c in result.top_final] == titles(bats_app, "rerank_table")
    urls = {b.label: b.proto.url for b in bats_app.download_button}
    for label, data, mime, name in (
        ("Download CSV", export_csv(result), "text/csv", "rerank-results.csv"),
        (
            "Download JSON",
            export_json(result, bats_app.session_state["last_manifest"]),
            "application/json",
            "rerank-results.json",
        ),
    ):
        file_id = _calculate_file_id(data.encode(), mime, name)
        assert Path(urls[label]).stem == file_id, label
    header = export_csv(result).splitlines()[0].split(",")
    assert tuple(header) == EXPORT_COLUMNS
    assert len(json.loads(export_json(result))["results"]) == 30


@pytest.mark.slow
def test_picked_detail_survives_a_new_query() -> None:
    at = make_app(q=BATS, k="10", n="5").run()
    pick = at.selectbox(key="detail_pick")
    pick.set_value(pick.options[2]).run()
    assert_no_exception(at)
    assert at.selectbox(key="detail_pick").value.startswith("3. ")
    picked = at.selectbox(key="detail_pick").value.split(". ", 1)[1]
    assert picked in texts(at.json)  # its record is the one shown

    at.text_input(key="query").input("a heist that goes wrong").run()
    assert_no_exception(at)
    pick = at.selectbox(key="detail_pick")
    assert pick.value in pick.options
    assert len(pick.options) == 5


# --- the URL follows the widgets ---------------------------------------------------------


@pytest.mark.slow
def test_widget_changes_are_written_to_the_url() -> None:
    at = make_app(q=BATS, k="10", n="5").run()
    assert (at.query_params["q"], at.query_params["k"], at.query_params["n"]) == (BATS, "10", "5")

    at.slider(key="candidates").set_value(20).run()
    assert at.query_params["k"] == "20"
    assert len(table(at, "rerank_table")) == 5

    at.slider(key="results").set_value(3).run()
    assert at.query_params["n"] == "3"
    assert len(table(at, "retrieval_table")) == 3

    at.multiselect(key="rerank_fields").set_value(["title"]).run()
    assert at.query_params["rfields"] == "title"

    at.selectbox(key="reranker_choice").set_value(NO_RERANK).run()
    assert at.query_params["reranker"] == NO_RERANK

    at.text_input(key="query").input("a heist that goes wrong").run()
    assert at.query_params["q"] == "a heist that goes wrong"
    assert_no_exception(at)

    at.slider(key="candidates").set_value(50).run()  # back to the default: left out
    assert "k" not in at.query_params


@pytest.mark.slow
def test_example_button_runs_that_query() -> None:
    at = make_app(k="10").run()
    (button,) = [b for b in at.button if b.label == "a heist that goes wrong"]
    button.click().run()
    assert_no_exception(at)
    assert at.text_input(key="query").value == "a heist that goes wrong"
    assert at.query_params["q"] == "a heist that goes wrong"
    assert len(table(at, "rerank_table")) == 10


# --- reranker off and on ---------------------------------------------------------------


@pytest.mark.slow
def test_switching_the_reranker_off_and_back_on() -> None:
    at = make_app(q=BATS, k="20", n="5").run()
    reranked = titles(at, "rerank_table")
    assert "Kendall τ" in metrics(at)
    assert "Batman" in reranked[0]

    at.selectbox(key="reranker_choice").set_value(NO_RERANK).run()
    assert_no_exception(at)
    shown = metrics(at)
    assert shown["Reranker"] == "none"
    assert not {"Kendall τ", "Top result", "Top-5 overlap"} & set(shown)
    assert titles(at, "rerank_table") == titles(at, "retrieval_table")
    assert list(table(at, "rerank_table")["move"]) == [""] * 5
    assert "Final order (no reranker)" in texts(at.subheader)
    assert not charts(at)  # no movement or rerank score chart
    assert at.multiselect(key="rerank_fields").disabled

    at.selectbox(key="reranker_choice").set_value(PACKAGED_CROSS_ENCODER).run()
    assert_no_exception(at)
    assert "Kendall τ" in metrics(at)
    assert titles(at, "rerank_table") == reranked
    assert len(charts(at)) == 3


# --- bad settings ------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_counts_in_the_link_warn_and_are_clamped() -> None:
    at = make_app(q=BATS, k="abc", n="999").run()
    assert_no_exception(at)
    warned = texts(at.warning)
    assert "k='abc'" in warned and "not a whole number" in warned
    assert "n=999" in warned and "using 50" in warned
    assert at.slider(key="candidates").value == 50  # the default
    assert at.slider(key="results").value == 50  # the maximum
    assert len(table(at, "retrieval_table")) == len(table(at, "rerank_table")) == 50
    assert at.query_params["n"] == "50"
    assert "k" not in at.query_params


def test_unknown_dataset_in_the_link_falls_back_to_movies() -> None:
    at = make_app(dataset="nope").run()
    assert_no_exception(at)
    assert "unknown dataset 'nope'" in texts(at.warning)
    assert at.selectbox(key="dataset").value == "movies"
    assert at.query_params["dataset"] == "movies"


@pytest.mark.parametrize(
    ("efields", "used"),
    [("nope", list(MOVIES_EMBED_FIELDS)), ("title,nope", ["title"])],
)
def test_unknown_embed_fields_in_the_link_are_dropped(efields, used) -> None:
    at = make_app(efields=efields).run()
    assert_no_exception(at)
    warned = texts(at.warning)
    assert "no field(s) nope" in warned
    assert at.multiselect(key="embed_fields").value == used
    assert at.query_params["efields"] == ",".join(used)


@pytest.mark.slow
def test_unknown_reranker_model_offline_falls_back_to_retrieval(monkeypatch) -> None:
    # hub ids reach the loader only where the operator allows downloads
    monkeypatch.setenv("RERANK_ALLOW_DOWNLOADS", "1")
    at = make_app(q=BATS, k="10", n="5", reranker=MISSING_MODEL).run()
    assert_no_exception(at)
    assert at.selectbox(key="reranker_choice").value == "sentence-transformers"
    assert at.text_input(key="st_model").value == MISSING_MODEL
    shown = texts(at.warning) + texts(at.error)
    assert MISSING_MODEL in shown
    assert "Showing retrieval only" in shown
    assert metrics(at)["Reranker"] == "none"
    assert len(table(at, "retrieval_table")) == 5
    assert titles(at, "rerank_table") == titles(at, "retrieval_table")
    assert at.query_params["reranker"] == MISSING_MODEL


@pytest.mark.slow
def test_unknown_encoder_model_offline_is_an_error_not_a_crash(monkeypatch) -> None:
    monkeypatch.setenv("RERANK_ALLOW_DOWNLOADS", "1")
    at = make_app(q=BATS, k="10", encoder="some-org/not-an-encoder").run()
    assert_no_exception(at)
    error = texts(at.error)
    assert "some-org/not-an-encoder" in error
    assert "not available" in error
    assert not at.dataframe


@pytest.mark.slow
def test_more_results_than_candidates_shows_every_candidate() -> None:
    at = make_app(q=BATS, k="10", n="20").run()
    assert_no_exception(at)
    assert len(table(at, "retrieval_table")) == len(table(at, "rerank_table")) == 10
    assert "Top-10 overlap" in metrics(at)


def test_no_embed_fields_is_an_error_not_a_crash() -> None:
    at = make_app().run()
    at.multiselect(key="embed_fields").set_value([])
    at.text_input(key="query").input(BATS).run()
    assert_no_exception(at)
    assert "Choose at least one field to embed" in texts(at.error)
    assert not at.dataframe
    assert "efields" not in at.query_params


@pytest.mark.slow
def test_no_rerank_fields_is_an_error_not_a_crash() -> None:
    at = make_app(q=BATS, k="10").run()
    at.multiselect(key="rerank_fields").set_value([]).run()
    assert_no_exception(at)
    assert "Choose at least one field for the reranker to read" in texts(at.error)
    assert not at.dataframe


# --- datasets ----------------------------------------------------------------------------


@pytest.mark.slow
def test_sample_dataset_from_the_link() -> None:
    at = make_app(dataset="sample", q=SAMPLE_BATS, k="10", n="3").run()
    assert_no_exception(at)
    assert not at.warning and not at.error
    assert at.selectbox(key="dataset").value == "sample"
    assert at.multiselect(key="embed_fields").value == ["title", "summary", "category", "tags"]
    assert titles(at, "rerank_table")[0] == "Bats in the Attic: Safe Eviction"
    assert at.query_params["dataset"] == "sample"


@pytest.mark.usefixtures("movies_unavailable")
def test_missing_movies_dataset_suggests_the_sample() -> None:
    at = make_app().run()
    assert_no_exception(at)
    error = texts(at.error)
    assert "Movies" in error and "is not available" in error
    assert "not found" in error
    assert "Sample" in texts(at.info)
    assert not at.dataframe
    assert "query" not in [t.key for t in at.text_input]  # stopped before the query box

    at.selectbox(key="dataset").set_value("sample").run()
    assert_no_exception(at)
    assert not at.error
    assert "Type a query or pick an example" in texts(at.info)
    assert SAMPLE_BATS in [b.label for b in at.button]  # the sample's own examples
    assert at.query_params["dataset"] == "sample"


def test_switching_dataset_resets_the_fields_to_its_defaults() -> None:
    at = make_app(efields="title").run()
    assert at.multiselect(key="embed_fields").value == ["title"]
    at.selectbox(key="dataset").set_value("sample").run()
    assert_no_exception(at)
    assert at.multiselect(key="embed_fields").value == ["title", "summary", "category", "tags"]
    assert at.multiselect(key="rerank_fields").value == ["title", "summary"]
    assert at.query_params["dataset"] == "sample"
    assert at.query_params["efields"] == "title,summary,category,tags"
    assert not at.warning


# --- the About page ------------------------------------------------------------------------


@pytest.mark.slow
def test_about_page_explains_the_last_search() -> None:
    at = make_app(q=BATS, k="10", n="5").run()
    at.switch_page("pages/about.py").run()
    assert_no_exception(at)
    assert BATS in texts(at.subheader)
    explained = texts(at.markdown)
    assert "returning 10 candidates" in explained
    assert "Retrieval (dense) encoded the query" in explained
    assert "read **10** (query, document) pairs" in explained
    assert "Kendall τ" in explained


@pytest.mark.slow
def test_back_from_about_keeps_the_search() -> None:
    at = make_app(q=BATS, k="10", n="5").run()
    at.switch_page("pages/about.py").run()
    at.switch_page("pages/search.py").run()
    assert_no_exception(at)
    assert at.text_input(key="query").value == BATS
    assert len(table(at, "rerank_table")) == 5
