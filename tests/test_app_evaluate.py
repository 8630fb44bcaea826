"""Judging results and evaluating with judgments: core.present.views.judged_metrics, the Search
page's "Judge these results" section, and the Evaluate page with a judgments CSV.

Everything runs on the 40-record ``sample`` dataset with a handful of judgments, never
on SciFact's corpus (embedding it takes minutes). AppTest runs the pages in this
process, so Streamlit's resource caches and the packaged models are shared with the
direct calls below; tests that reach the models are marked slow. Elements are always
fetched again from ``at`` after a run, never reused.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FakeEncoder, FakeReranker
from streamlit.testing.v1 import AppTest

from core.data.beir import dump_judgments_csv
from core.data.datasets import load_dataset, scifact_path
from core.models.base import DEFAULT_ENCODER, PACKAGED_CROSS_ENCODER
from core.models.registry import load_encoder, load_reranker
from core.present.views import judged_metrics, unjudged_entered
from core.quality.evaluation import evaluate_judgments
from core.quality.evaluation_report import HEADLINE_METRICS, METRIC_LABELS, PRIMARY_METRIC
from core.search.pipeline import search_with_rerank
from pages.widgets.actions import PENDING

ROOT = Path(__file__).resolve().parents[1]
JUDGMENTS_SOURCE = "Judgments CSV on a dataset"
SCIFACT_SOURCE = "SciFact (BEIR)"
RUN_PROMPT = "Choose the settings and press **Run evaluation**."
ANOTHER_DATASET = "were the judgments made on another dataset?"

SAMPLE_BATS = "how do I get bats out of my roof without hurting them"
BATS_TITLE = "Bats in the Attic: Safe Eviction"  # s15
MOLES_TITLE = "Living with Moles in the Lawn"  # s13

# The sample's four example queries, each with the note that plainly answers it (3), a
# look-alike that does not (0: cricket bat, Mercury the planet, cast iron seasoning,
# Python the language) and, for the bats query, a loosely related note (1: humane
# removal of moles), so that reordering below the top can move nDCG@10.
EVAL_JUDGMENTS: dict[str, dict[str, int]] = {
    SAMPLE_BATS: {"s15": 3, "s33": 0, "s13": 1},
    "is the silver liquid from a broken thermometer dangerous to breathe": {"s16": 3, "s05": 0},
    "how long should I let wood dry before burning it in the stove": {"s09": 3, "s01": 0},
    "my python gets scared and curls up when I pick it up": {"s30": 3, "s21": 0},
}
EVAL_CANDIDATES = 20


def make_app(**params: str) -> AppTest:
    """An AppTest of the entry point, with ``params`` in its URL."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in params.items():
        at.query_params[key] = value
    return at


def texts(elements) -> str:
    """The elements' text as a reader sees it: the app's markdown escapes resolved."""
    return re.sub(r"\\(.)", r"\1", "\n".join(str(e.value) for e in elements))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def served_file_id(data: str, mime: str, name: str) -> str:
    """The name Streamlit serves a download under: a hash of its bytes, type and name."""
    try:
        from streamlit.runtime.memory_media_file_storage import _calculate_file_id
    except ImportError:  # pragma: no cover - a Streamlit without this helper
        pytest.skip("this Streamlit has no _calculate_file_id")
    return _calculate_file_id(data.encode(), mime, name)


def ndcg(gains_by_rank: dict[int, int], all_grades: list[int], k: int) -> float:
    """nDCG@k by hand: graded gains at 1-based ranks, ideal from every positive grade."""
    dcg = sum(g / math.log2(r + 1) for r, g in gains_by_rank.items() if r <= k)
    ideal = sorted((g for g in all_grades if g > 0), reverse=True)[:k]
    return dcg / sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))


# --- judged_metrics on a hand-built result --------------------------------------------------
# As in tests/test_views.py: record i holds "apple" plus i filler words, so retrieval for
# "apple" ranks a, b, c, d, e, f; the fake reranker's table orders them e, a, c, b, f, d
# ("g" scores best but is never retrieved with 6 candidates).

# The tiny dataset and fake scores of test_views, where the orders are worked out.
from tests.test_views import RERANK_SCORES, TINY  # noqa: E402


@pytest.fixture(scope="module")
def tiny_result():
    result = search_with_rerank(
        TINY,
        "apple",
        encoder=FakeEncoder(),
        reranker=FakeReranker(RERANK_SCORES),
        num_candidates=6,
        num_results=3,
    )
    assert [c.id for c in result.candidates] == ["a", "b", "c", "d", "e", "f"]
    assert [c.id for c in result.reranked] == ["e", "a", "c", "b", "f", "d"]
    return result


def test_judged_metrics_graded_base_vs_reranked(tiny_result) -> None:
    ratings = {"e": 3, "c": 2, "b": 1, "a": 0}
    # k = num_results = 3; ideal DCG = 3/1 + 2/log2(3) + 1/log2(4)
    idcg = 3 + 2 / math.log2(3) + 1 / 2
    base_dcg = 0 + 1 / math.log2(3) + 2 / 2  # a(0), b(1), c(2)
    reranked_dcg = 3 + 0 + 2 / 2  # e(3), a(0), c(2)
    figures = judged_metrics(tiny_result, ratings)
    main = {k: figures[k] for k in ("base_ndcg", "reranked_ndcg", "base_mrr", "reranked_mrr")}
    assert main == pytest.approx(
        {
            "base_ndcg": base_dcg / idcg,  # 0.3425
            "reranked_ndcg": reranked_dcg / idcg,  # 0.8400
            "base_mrr": 1 / 2,  # first relevant: b at #2
            "reranked_mrr": 1.0,  # e at #1
        },
        abs=1e-12,
    )
    assert figures["base_ndcg"] == pytest.approx(0.342499, abs=1e-6)
    assert figures["reranked_ndcg"] == pytest.approx(0.840008, abs=1e-6)


def test_judged_metrics_ideal_counts_rated_docs_never_retrieved(tiny_result) -> None:
    # "g" is rated 3 but never a candidate: it still raises the ideal DCG (trec_eval).
    figures = judged_metrics(tiny_result, {"e": 3, "g": 3})
    idcg = 3 + 3 / math.log2(3)
    assert figures["reranked_ndcg"] == pytest.approx(3 / idcg, abs=1e-12)
    assert figures["base_ndcg"] == 0.0  # e is 5th in retrieval order, beyond k = 3
    assert figures["base_mrr"] == 0.0
    assert figures["reranked_mrr"] == 1.0


def test_judged_metrics_relevant_only_beyond_k_is_zero_not_none(tiny_result) -> None:
    figures = judged_metrics(tiny_result, {"d": 2, "a": 0})  # d: #4 and #6, both > k = 3
    for key in ("base_ndcg", "reranked_ndcg", "base_mrr", "reranked_mrr"):
        assert figures[key] == 0.0


def test_judged_share_condensed_and_unjudged_entered(tiny_result) -> None:
    # Top 3: retrieval a, b, c; reranked e, a, c. "e" came from #5 and is not rated.
    ratings = {"a": 0, "b": 1, "c": 2}
    assert [c.id for c in unjudged_entered(tiny_result, ratings)] == ["e"]
    assert unjudged_entered(tiny_result, {**ratings, "e": 4}) == []
    figures = judged_metrics(tiny_result, ratings)
    assert figures["base_judged"] == 1.0
    assert figures["reranked_judged"] == pytest.approx(2 / 3)
    # Condensed reranked list: a, c, b (e removed) -> the same as a graded reorder.
    idcg = 2 + 1 / math.log2(3)
    assert figures["reranked_ndcg_cond"] == pytest.approx((0 + 2 / math.log2(3) + 1 / 2) / idcg)
    assert figures["reranked_ndcg"] == pytest.approx((0 + 0 + 2 / 2) / idcg)


@pytest.mark.parametrize("ratings", [{}, {"a": 0, "e": 0}, {"a": None, "b": 0}])
def test_judged_metrics_none_when_nothing_rated_relevant(tiny_result, ratings) -> None:
    assert judged_metrics(tiny_result, ratings) is None


def test_judged_metrics_ignores_unrated_none_values(tiny_result) -> None:
    assert judged_metrics(tiny_result, {"a": None, "e": 1}) == judged_metrics(tiny_result, {"e": 1})


# --- judging on the Search page ------------------------------------------------------------


def _ranks(at: AppTest) -> tuple[dict[str, int], dict[str, int]]:
    """Title -> rank in the retrieval table and in the reranked table."""
    (retrieval,) = [df.value for df in at.dataframe if "cosine" in df.value.columns]
    (reranked,) = [df.value for df in at.dataframe if "move" in df.value.columns]
    return (
        dict(zip(retrieval["title"], retrieval["#"], strict=True)),
        dict(zip(reranked["title"], reranked["#"], strict=True)),
    )


def _expected_judge_metrics(at: AppTest, graded_titles: dict[str, int], k: int) -> dict:
    """The two judge metrics as the page should show them, from the ranks in its tables.

    A graded title missing from a table ranks below the top k there and gains nothing.
    """
    shown = {}
    for label, order in zip(("base", "reranked"), _ranks(at), strict=True):
        gains = {int(order[t]): g for t, g in graded_titles.items() if t in order and g > 0}
        shown[f"{label}_ndcg"] = ndcg(gains, list(graded_titles.values()), k)
        shown[f"{label}_mrr"] = 1 / min(gains) if gains else 0.0
    return {
        f"nDCG@{k}: base → reranked": f"{shown['base_ndcg']:.3f} → {shown['reranked_ndcg']:.3f}",
        f"MRR@{k}: base → reranked": f"{shown['base_mrr']:.3f} → {shown['reranked_mrr']:.3f}",
    }


@pytest.mark.slow
def test_judging_on_the_search_page_scores_exports_and_imports() -> None:
    at = make_app(dataset="sample", q=SAMPLE_BATS, k="20").run()
    assert_no_exception(at)
    assert "nDCG@10: base → reranked" not in metrics(at)  # nothing rated yet
    assert "Rate at least one result above 0" in texts(at.caption)

    # Rated 0 only: still no figures.
    at.session_state["judgments"] = {"sample": {SAMPLE_BATS: {"s33": 0}}}
    at.run()
    assert_no_exception(at)
    assert "nDCG@10: base → reranked" not in metrics(at)
    assert "Rate at least one result above 0" in texts(at.caption)

    at.session_state["judgments"] = {"sample": {SAMPLE_BATS: {"s15": 3, "s33": 0}}}
    at.run()
    assert_no_exception(at)
    assert at.session_state["judgments"]["sample"][SAMPLE_BATS] == {"s15": 3, "s33": 0}
    retrieval, reranked = _ranks(at)
    assert BATS_TITLE in retrieval and BATS_TITLE in reranked
    shown = metrics(at)
    expected = _expected_judge_metrics(at, {BATS_TITLE: 3}, 10)
    for label, value in expected.items():
        assert shown[label] == value, label
    # the table shown in the expander carries the ratings
    (judge,) = [df.value for df in at.dataframe if "rating" in df.value.columns]
    rated = dict(zip(judge["id"], judge["rating"], strict=True))
    assert rated["s15"] == 3

    # Export: the served file is exactly dump_judgments_csv of the session's ratings.
    (export,) = [b for b in at.download_button if b.label == "Export judgments (CSV)"]
    data = dump_judgments_csv({SAMPLE_BATS: {"s15": 3, "s33": 0}})
    assert data.splitlines() == [
        "query,doc_id,rating",
        f"{SAMPLE_BATS},s15,3",
        f"{SAMPLE_BATS},s33,0",
    ]
    assert Path(export.proto.url).stem == served_file_id(data, "text/csv", "judgments-sample.csv")

    # Import: merged into the session, the current query's figures follow.
    other = "how do I keep a cast iron pan from rusting"
    imported = dump_judgments_csv({SAMPLE_BATS: {"s13": 1}, other: {"s01": 3, "s12": 1}})
    at.file_uploader(key="judgments_csv").set_value(
        ("judgments.csv", imported.encode(), "text/csv")
    ).run()
    assert_no_exception(at)
    assert not at.error
    assert at.session_state["judgments"]["sample"] == {
        SAMPLE_BATS: {"s15": 3, "s33": 0, "s13": 1},
        other: {"s01": 3, "s12": 1},
    }
    shown = metrics(at)
    expected = _expected_judge_metrics(at, {BATS_TITLE: 3, MOLES_TITLE: 1}, 10)
    for label, value in expected.items():
        assert shown[label] == value, label
    # A rerun with the same upload still in the box does not import it again.
    at.session_state["judgments"]["sample"][other] = {"s01": 2}
    at.run()
    assert at.session_state["judgments"]["sample"][other] == {"s01": 2}

    # A bad file is an error under the box; the session's ratings are untouched.
    before = json.loads(json.dumps(at.session_state["judgments"]))
    at.file_uploader(key="judgments_csv").set_value(
        ("bad.csv", f"query,doc_id,rating\n{SAMPLE_BATS},s15,-1\n".encode(), "text/csv")
    ).run()
    assert_no_exception(at)
    assert "rating '-1' is not a non-negative whole number" in texts(at.error)
    assert at.session_state["judgments"] == before


# --- the Evaluate page ---------------------------------------------------------------------


def _evaluate_page(
    dataset: str = "sample", candidates: int | None = None, csv: bytes | None = None
) -> AppTest:
    """The Evaluate page on a judgments source, with ``csv`` uploaded if given."""
    at = make_app().run()  # the Search page stops at its query prompt: no model loads
    at.switch_page("pages/evaluate.py").run()
    assert_no_exception(at)
    at.radio(key="eval_source").set_value(JUDGMENTS_SOURCE).run()
    at.selectbox(key="eval_dataset").set_value(dataset)
    if candidates is not None:
        at.slider(key="eval_candidates").set_value(candidates)
    at.run()
    if csv is not None:
        at.file_uploader(key="eval_csv").set_value(("judgments.csv", csv, "text/csv")).run()
    return at


def _run_button(at: AppTest):
    (button,) = [b for b in at.button if b.label == "Run evaluation"]
    return button


def _cli_evaluate(csv_path: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core",
            "evaluate",
            "--judgments",
            str(csv_path),
            "--dataset",
            "sample",
            "--candidates",
            str(EVAL_CANDIDATES),
            "--json",
            "--per-query-out",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_evaluate_page_with_a_judgments_csv_matches_core_and_the_cli(tmp_path) -> None:
    data = dump_judgments_csv(EVAL_JUDGMENTS)
    csv_path = tmp_path / "judgments.csv"
    csv_path.write_text(data, encoding="utf-8")
    cli = _cli_evaluate(csv_path, tmp_path / "per-query.csv")  # runs while the page does
    try:
        at = _evaluate_page(candidates=EVAL_CANDIDATES, csv=data.encode())
        assert_no_exception(at)
        assert not at.error
        assert "4 judged queries, 9 ratings." in texts(at.caption)
        assert RUN_PROMPT in texts(at.info)
        _run_button(at).click().run()
        assert_no_exception(at)
        assert not at.error
        cli_out, cli_err = cli.communicate(timeout=600)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, cli_err

    direct = evaluate_judgments(
        load_dataset("sample"),
        EVAL_JUDGMENTS,
        encoder=load_encoder(DEFAULT_ENCODER),
        reranker=load_reranker(PACKAGED_CROSS_ENCODER),
        candidates=EVAL_CANDIDATES,
    )
    assert direct.reranked is not None

    # the report the page made and showed
    page = at.session_state["eval_report"][1]
    assert page.settings.candidates == EVAL_CANDIDATES
    assert page.settings.num_queries == 4
    assert page.base == pytest.approx(direct.base, abs=1e-9)
    assert page.reranked == pytest.approx(direct.reranked, abs=1e-9)
    assert "sample: 4 queries, 20 candidates each" in texts(at.subheader)

    shown = metrics(at)
    for metric in HEADLINE_METRICS:
        label = f"{METRIC_LABELS[metric]}: base → reranked"
        before, after = direct.base[metric], direct.reranked[metric]
        assert shown[label] == f"{before:.3f} → {after:.3f}", label
    assert {"nDCG@10: base → reranked", "MRR@10: base → reranked"} <= set(shown)
    assert {"Recall@100: base → reranked", "P@10: base → reranked"} <= set(shown)
    # every query's answer is in its 20 candidates: recall@100 is 1 for both runs
    assert shown["Recall@100: base → reranked"] == "1.000 → 1.000"

    # the verdict comes from the paired bootstrap interval, in the box of its colour
    comparison = page.comparison
    boxes = {"better": at.success, "worse": at.error, "within noise": at.info}
    (verdict,) = [e.value for e in boxes[comparison.verdict] if "95% CI" in str(e.value)]
    assert verdict == comparison.sentence("Reranking")
    gain = page.reranked[PRIMARY_METRIC] - page.base[PRIMARY_METRIC]
    assert comparison.mean_delta == pytest.approx(gain)
    counts = (comparison.wins, comparison.ties, comparison.losses)
    assert f"{counts[0]} wins / {counts[1]} ties / {counts[2]} losses" in verdict
    assert counts == (direct.wins, direct.ties, direct.losses)
    assert sum(counts) == 4

    # per-query table: one row per judged query, the same figures
    (rows,) = [df.value for df in at.dataframe if "outcome" in df.value.columns]
    assert len(rows) == 4
    assert set(rows["qid"]) == set(EVAL_JUDGMENTS)
    by_qid = {q.qid: q for q in direct.queries}
    for _, row in rows.iterrows():
        q = by_qid[row["qid"]]
        assert row[f"base_{PRIMARY_METRIC}"] == pytest.approx(q.base[PRIMARY_METRIC], abs=1e-9)
        assert row[f"reranked_{PRIMARY_METRIC}"] == pytest.approx(
            q.reranked[PRIMARY_METRIC], abs=1e-9
        )
        assert row["outcome"] == q.outcome

    # the win/tie/loss chart: one bar per query
    (outcome,) = [
        spec
        for spec in charts(at)
        if spec.get("encoding", {}).get("y", {}).get("title") == "reranked − retrieval nDCG@10"
    ]
    mark = outcome["mark"]
    assert (mark["type"] if isinstance(mark, dict) else mark) == "bar"
    assert "Open a query" in texts(at.subheader)
    assert any(b.label == "Download per-query CSV" for b in at.download_button)

    # the CLI gives the same figures
    report = json.loads(cli_out)
    assert report["settings"]["candidates"] == EVAL_CANDIDATES
    assert report["settings"]["num_queries"] == 4
    for run, means in (("base", direct.base), ("reranked", direct.reranked)):
        assert set(report[run]) == set(means)
        for metric, value in means.items():
            assert report[run][metric] == pytest.approx(value, abs=1e-9), (run, metric)
            assert report[run][metric] == pytest.approx(getattr(page, run)[metric], abs=1e-9), (
                run,
                metric,
            )
    assert (report["wins"], report["ties"], report["losses"]) == counts
    cli_rows = {q["qid"]: q for q in report["queries"]}
    assert set(cli_rows) == set(EVAL_JUDGMENTS)
    for qid, q in by_qid.items():
        assert cli_rows[qid]["delta"] == pytest.approx(q.delta, abs=1e-9)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (
            f"query,doc_id\n{SAMPLE_BATS},s15\n".encode(),
            ("line 1", "header lacks rating", "expected query,doc_id,rating"),
        ),
        (
            f"query,doc_id,rating\n{SAMPLE_BATS},s15,3\n{SAMPLE_BATS},s33,2.5\n".encode(),
            ("line 3", "rating '2.5' is not a non-negative whole number"),
        ),
    ],
    ids=["missing-column", "rating-2.5"],
)
def test_bad_judgments_csv_is_a_clear_error(data, fragments) -> None:
    at = _evaluate_page(csv=data)
    assert_no_exception(at)
    error = texts(at.error)
    for fragment in fragments:
        assert fragment in error
    assert not [b for b in at.button if b.label == "Run evaluation"]  # stopped before it
    assert not at.metric


@pytest.mark.slow
def test_judgments_made_on_another_dataset_say_so() -> None:
    movie_ids = dump_judgments_csv({"super hero movie about bats": {"movie-1": 3, "movie-2": 1}})
    at = _evaluate_page(candidates=EVAL_CANDIDATES, csv=movie_ids.encode())
    assert_no_exception(at)
    # said as soon as the file is read, before anything runs
    error = texts(at.error)
    assert ANOTHER_DATASET in error
    assert "'sample'" in error
    assert "eval_report" not in at.session_state
    assert not at.metric


# --- defaults ------------------------------------------------------------------------------


def test_evaluate_page_default_state() -> None:
    at = make_app().run()
    at.switch_page("pages/evaluate.py").run()
    assert_no_exception(at)
    assert at.title[0].value == "Does reranking help?"
    radio = at.radio(key="eval_source")
    scifact = scifact_path() is not None
    assert list(radio.options) == ([SCIFACT_SOURCE] if scifact else []) + [JUDGMENTS_SOURCE]
    assert radio.value == radio.options[0]
    assert at.slider(key="eval_candidates").value == 100
    assert at.toggle(key="eval_rerank").value is True
    assert not at.error and not at.metric
    if scifact:
        # SciFact's queries are read (never embedded) and the page waits for the button
        assert RUN_PROMPT in texts(at.info)
        assert _run_button(at)
    else:
        assert "Upload judgments" in texts(at.info)


def test_judgments_source_without_judgments_prompts_for_them() -> None:
    at = _evaluate_page()
    assert_no_exception(at)
    assert at.selectbox(key="eval_dataset").value == "sample"
    assert "Upload judgments, or rate results on the Search page" in texts(at.info)
    assert not [b for b in at.button if b.label == "Run evaluation"]
    assert not at.error


def test_search_page_judgments_are_used_on_the_evaluate_page() -> None:
    at = make_app().run()
    at.session_state["judgments"] = {"sample": {SAMPLE_BATS: {"s15": 3, "s33": 0}}}
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="eval_source").set_value(JUDGMENTS_SOURCE).run()
    at.selectbox(key="eval_dataset").set_value("sample").run()
    assert_no_exception(at)
    assert "1 judged queries, 2 ratings." in texts(at.caption)
    assert RUN_PROMPT in texts(at.info)
    assert _run_button(at)
    assert not at.error


def test_a_click_whose_run_was_interrupted_is_still_carried_out() -> None:
    """Streamlit drops a click whose run is interrupted before it reaches the button; the
    page records it in the button's callback instead, and does the work in the next run
    (here: the run after the callback, with no click in it). An error ends the request."""
    at = make_app().run()
    at.session_state["judgments"] = {"sample": {SAMPLE_BATS: {"s15": 3, "s33": 0}}}
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="eval_source").set_value(JUDGMENTS_SOURCE).run()
    at.selectbox(key="eval_dataset").set_value("sample").run()
    assert "eval_report" not in at.session_state
    at.session_state[PENDING + "eval_run"] = True  # what the callback leaves
    at.run()
    assert_no_exception(at)
    report = at.session_state["eval_report"][1]
    assert [q.qid for q in report.queries] == [SAMPLE_BATS]
    assert PENDING + "eval_run" not in at.session_state  # done: not run again
    assert RUN_PROMPT not in texts(at.info)
    at.session_state[PENDING + "eval_tune"] = True  # disabled (one judged query): dropped
    at.run()
    assert_no_exception(at)
    assert "eval_tuned" not in at.session_state
    assert PENDING + "eval_tune" not in at.session_state


@pytest.mark.parametrize(
    ("session", "caption"),
    [
        ({SAMPLE_BATS: {"s15": 3, "s33": 0}, "cast iron pan": {}}, "1 judged queries, 2 ratings."),
        ({"cast iron pan": {}}, None),
    ],
    ids=["one-rated-one-not", "searched-never-rated"],
)
def test_searched_but_unrated_queries_are_not_judged_queries(session, caption) -> None:
    """The Search page keeps an empty ratings dict for every query it ran; such a query
    was never judged and must not be evaluated (it would score 0 and drag the means)."""
    at = make_app().run()
    at.session_state["judgments"] = {"sample": session}
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="eval_source").set_value(JUDGMENTS_SOURCE).run()
    at.selectbox(key="eval_dataset").set_value("sample").run()
    assert_no_exception(at)
    if caption is None:
        assert "Upload judgments, or rate results on the Search page" in texts(at.info)
        assert not [b for b in at.button if b.label == "Run evaluation"]
    else:
        assert caption in texts(at.caption)
        assert RUN_PROMPT in texts(at.info)


# --- other judgment formats, unjudged documents, one click to judge -----------------------

QUEPID_SAMPLE = (
    "Query Text,Doc ID,Rating\n"
    f"{SAMPLE_BATS},{BATS_TITLE},4\n"
    f"{SAMPLE_BATS},{MOLES_TITLE},2\n"
    f'{SAMPLE_BATS},"Choosing a Cricket Bat, and How It Got Its Shape",0\n'
    "my python gets scared and curls up when I pick it up,Ball Pythons in the Wild,4\n"
    "my python gets scared and curls up when I pick it up,Python Virtual Environments,0\n"
)


@pytest.mark.slow
def test_quepid_judgments_threshold_unjudged_and_judging_them_on_the_search_page() -> None:
    at = _evaluate_page(candidates=EVAL_CANDIDATES)
    at.file_uploader(key="eval_csv").set_value(
        ("quepid.csv", QUEPID_SAMPLE.encode(), "text/csv")
    ).run()
    assert_no_exception(at)
    # Quepid names documents by title here: unmatched until the id field is chosen.
    assert "No judged id matches a document" in texts(at.error)
    at.selectbox(key="eval_id_field").set_value("title").run()
    assert_no_exception(at)
    assert "Quepid CSV export (Query Text, Doc ID, Rating): graded 0-4" in texts(at.caption)
    assert "2 judged queries, 5 ratings." in texts(at.caption)
    at.number_input(key="eval_threshold").set_value(3).run()
    _run_button(at).click().run()
    assert_no_exception(at)
    report = at.session_state["eval_report"][1]
    assert report.settings.relevance_threshold == 3
    assert report.settings.grades == (0, 2, 4)
    bats = next(q for q in report.queries if q.qid == SAMPLE_BATS)
    # The moles note (grade 2) is below the threshold: MRR only sees the bats note.
    assert bats.base["mrr@10"] in (0.0, *(1 / r for r in range(1, 11)))
    assert "Unjudged documents" in texts(at.subheader)
    assert "relevant at grade >= 3" in texts(at.caption)
    (summary,) = [df.value for df in at.dataframe if "judged@10" in df.value.columns]
    assert list(summary["run"]) == ["retrieval only", "after second stage"]
    assert summary["judged@10"].iloc[0] == pytest.approx(report.base["judged@10"])
    assert summary["nDCG@10 condensed"].iloc[1] == pytest.approx(report.reranked["ndcg_cond@10"])
    entered = report.unjudged_entered()
    if not entered:
        pytest.skip("the reranker brought no unjudged document into a top 10 here")
    (listed,) = [df.value for df in at.dataframe if "doc id" in df.value.columns]
    assert len(listed) == sum(len(q.unjudged_entered) for q in entered)
    query = entered[0].query
    at.selectbox(key="eval_judge_pick").set_value(query).run()
    at.button(key="eval_judge_go").click().run()
    assert_no_exception(at)
    assert "Retrieve, then rerank" in texts(at.title)
    assert at.session_state["view"].query == query
    assert "rate them below" in texts(at.info)
    (judge,) = [df.value for df in at.dataframe if "rating" in df.value.columns]
    assert set(judge["id"]) == {d for d, _ in entered[0].unjudged_entered}
    assert judge["rating"].isna().all()


@pytest.mark.slow
def test_search_page_offers_to_judge_the_unjudged_documents_that_entered() -> None:
    at = make_app(dataset="sample", q=SAMPLE_BATS, k="20").run()
    at.session_state["judgments"] = {"sample": {SAMPLE_BATS: {"s15": 3, "s33": 0}}}
    at.run()
    assert_no_exception(at)
    result = at.session_state["last_result"]
    fresh = [c.id for c in unjudged_entered(result, {"s15": 3, "s33": 0})]
    assert fresh, "the reranker brings unrated notes into this query's top 10"
    assert f"{len(fresh)} document(s) the reranker brought into the top 10" in texts(at.warning)
    assert "Rated in the top 10:" in texts(at.caption)
    at.button(key="judge_unjudged").click().run()
    assert_no_exception(at)
    (judge,) = [df.value for df in at.dataframe if "rating" in df.value.columns]
    assert set(judge["id"]) == set(fresh)
    assert "rate them below" in texts(at.info)
    # Rated: the prompt goes away and every result is listed again.
    at.session_state["judgments"]["sample"][SAMPLE_BATS].update(dict.fromkeys(fresh, 0))
    at.run()
    assert_no_exception(at)
    (judge,) = [df.value for df in at.dataframe if "rating" in df.value.columns]
    assert set(fresh) < set(judge["id"])
    assert "the reranker brought into the top" not in texts(at.warning)
