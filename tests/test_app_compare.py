"""AppTest of the Head to head and Walkthrough pages: the A/B pickers, the link, adding
steps, saving and opening a walkthrough by its link, next/previous, the blind vote and
reveal, and the report downloads.

Runs on the 40-record sample with BM25 as the first stage (no bi-encoder to load); the
fast tests compare "none" with a fused first-stage order, the slow one uses the real
packaged cross-encoder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.present.walkthrough import WalkthroughStore, parse_walkthrough

ROOT = Path(__file__).resolve().parents[1]
BATS = "how do I get bats out of my roof without hurting them"
PYTHON = "my python gets scared and curls up when I pick it up"
WOOD = "how long should I let wood dry before burning it in the stove"


def compare_app(**params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page("pages/compare.py")
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def button(at: AppTest, label: str):
    (found,) = [b for b in at.button if b.label == label]
    return found


def test_compare_page_from_a_link_without_models():
    at = compare_app(dataset="sample", q=BATS, ret="bm25", k="10", n="5", reranker="none", b="none")
    at.run()
    no_exception(at)
    assert at.text_input(key="h2h_query").value == BATS
    assert at.selectbox(key="a_choice").value == "none"
    assert at.selectbox(key="b_choice").value == "none"
    figures = metrics(at)
    assert figures["Kendall τ (A vs B)"] == "+1.00" and figures["Overlap@5"] == "100%"
    assert figures["Same top result"] == "yes"
    # the link describes the comparison
    assert at.query_params["b"] == "none" and at.query_params["q"] == BATS
    assert [d for d in at.get("download_button") if "report" in str(d.proto.label).lower()]


def test_bad_spec_in_link_is_one_warning():
    at = compare_app(dataset="sample", q=BATS, ret="bm25", reranker="none", b="local@7")
    at.run()
    no_exception(at)
    assert any("Link setting ignored" in w.value for w in at.warning)
    assert at.selectbox(key="b_choice").value == "none"


def test_add_steps_save_and_open_the_link_then_step_through():
    at = compare_app(dataset="sample", q=BATS, ret="bm25", k="10", n="5", reranker="none", b="none")
    at.run()
    at.text_area(key="wt_note").input("Start *here* <b>")
    button(at, "Add this view as a step").click().run()
    at.text_input(key="h2h_query").input(PYTHON).run()
    button(at, "Add this view as a step").click().run()
    no_exception(at)
    assert len(at.session_state["wt_draft"].steps) == 2
    button(at, "Save and share").click().run()
    no_exception(at)
    wid = at.session_state["wt_saved"]
    saved = WalkthroughStore().get(wid)
    assert [s.query for s in saved.steps] == [BATS, PYTHON]
    assert saved.steps[0].note == "Start *here* <b>"

    # a fresh session opens the root link ?walkthrough=<id>
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    fresh.query_params["walkthrough"] = wid
    fresh.run()
    no_exception(fresh)
    assert any("Step 1 of 2" in str(p.proto.text) for p in fresh.get("progress"))
    assert any(BATS in m.value for m in fresh.markdown)
    assert any("Start \\*here\\* \\<b\\>" in i.value for i in fresh.info)  # literal
    button(fresh, "Next ▶").click().run()
    no_exception(fresh)
    assert any("Step 2 of 2" in str(p.proto.text) for p in fresh.get("progress"))
    assert button(fresh, "Next ▶").disabled
    button(fresh, "◀ Previous").click().run()
    assert any("Step 1 of 2" in str(p.proto.text) for p in fresh.get("progress"))


def test_a_step_takes_the_query_typed_in_the_same_interaction_and_never_an_empty_one():
    # The step is added by the button's callback (before the run's body, so a later
    # interaction cannot interrupt it away) from the widgets' current values: a query
    # typed and then the button clicked, without Enter, is the step's query.
    at = compare_app(dataset="sample", q=BATS, ret="bm25", k="10", n="5", reranker="none", b="none")
    at.run()
    at.text_input(key="h2h_query").input(WOOD)
    at.selectbox(key="b_choice").select("none")
    button(at, "Add this view as a step").click().run()
    no_exception(at)
    (step,) = at.session_state["wt_draft"].steps
    assert step.query == WOOD and step.params["q"] == WOOD and step.b == "none"
    assert any(s.value == "Step 1 added." for s in at.success)
    # The box emptied and the (still enabled) button clicked: an error, no step.
    at.text_input(key="h2h_query").input("")
    button(at, "Add this view as a step").click().run()
    no_exception(at)
    assert len(at.session_state["wt_draft"].steps) == 1
    assert any("Type a query first" in e.value for e in at.error)
    assert button(at, "Add this view as a step").disabled


def test_unknown_walkthrough_link_is_one_error():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["walkthrough"] = "0123456789abcdef"
    at.run()
    no_exception(at)
    assert any("not on this server" in e.value for e in at.error)


def test_import_exported_walkthrough_json():
    at = compare_app(dataset="sample", q=WOOD, ret="bm25", k="10", n="3", reranker="none", b="none")
    at.run()
    button(at, "Add this view as a step").click().run()
    (export,) = [
        d for d in at.get("download_button") if "walkthrough" in str(d.proto.label).lower()
    ]
    assert export.proto.label == "Export walkthrough (JSON)"
    draft = at.session_state["wt_draft"]
    assert parse_walkthrough(draft.to_json()) == draft
    button(at, "Save and share").click().run()
    assert at.session_state["wt_saved"]
    button(at, "Clear steps").click().run()
    no_exception(at)
    assert not at.session_state["wt_draft"].steps and "wt_saved" not in at.session_state
    assert not [b for b in at.button if b.label in ("Save and share", "Clear steps")]


@pytest.mark.slow
def test_blind_vote_and_reveal_with_the_cross_encoder():
    at = compare_app(
        dataset="sample", q=BATS, ret="bm25", k="10", n="5", b="local@0.5"
    )  # A: the local cross-encoder (the default reranker)
    at.run()
    no_exception(at)
    assert at.selectbox(key="b_choice").value == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert at.slider(key="b_weight").value == 0.5
    figures = metrics(at)
    assert "A time" in figures and "B time" in figures
    # B's near-zero time says why: it fuses A's scores (nothing scored twice).
    (b_time,) = [m for m in at.metric if m.label == "B time"]
    assert b_time.delta == "A's scores, fused"
    button(at, "Add this view as a step").click().run()
    at.switch_page("pages/walkthrough.py").run()
    no_exception(at)
    at.toggle(key="blind_mode").set_value(True).run()
    no_exception(at)
    assert any(m.value == "### Left list" for m in at.markdown)
    assert not any("cross-encoder" in m.value for m in at.markdown)  # unlabelled
    button(at, "Left is better").click().run()
    button(at, "Reveal").click().run()
    no_exception(at)
    # as a reader sees it: the app's markdown escapes resolved
    revealed = [re.sub(r"\\(.)", r"\1", b.value) for b in [*at.success, *at.info]]
    assert any("sign test p = 1" in text for text in revealed), revealed
    vote = next(iter(at.session_state["blind_votes"].values()))
    assert vote.winner == ("A" if vote.a_left else "B")
    labels = {str(d.proto.label) for d in at.get("download_button")}
    assert {"Votes (CSV)", "Votes (JSON)", "Pairwise judgments (CSV)"} <= labels


JUDGED = {
    BATS: {"s15": 3, "s33": 0, "s13": 1},
    "is the silver liquid from a broken thermometer dangerous to breathe": {"s16": 3, "s05": 0},
    WOOD: {"s09": 3, "s01": 0},
    PYTHON: {"s30": 3, "s21": 0},
}


@pytest.mark.slow
def test_evaluate_page_a_vs_b_matches_core():
    from core.data.datasets import load_dataset
    from core.models.registry import load_reranker
    from core.present.views import escape_markdown
    from core.quality.evaluation_pair import evaluate_pair
    from core.quality.headtohead import parse_spec

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.session_state["judgments"] = {"sample": JUDGED}
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="eval_source").set_value("Judgments CSV on a dataset").run()
    at.selectbox(key="eval_dataset").set_value("sample").run()
    at.selectbox(key="eval_retriever").set_value("bm25").run()
    at.slider(key="eval_candidates").set_value(10).run()
    no_exception(at)
    assert at.selectbox(key="pa_choice").value == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert at.slider(key="pb_weight").value == 0.5
    button(at, "Compare A and B").click().run()
    no_exception(at)
    figures = metrics(at)
    ce = load_reranker()
    direct = evaluate_pair(
        load_dataset("sample"),
        {q: q for q in JUDGED},
        JUDGED,
        a=parse_spec("local"),
        b=parse_spec("local@0.5"),
        reranker_a=ce,
        reranker_b=ce,
        encoder=None,
        retriever="bm25",
        candidates=10,
    )
    c = direct.comparison
    assert figures["A wins / ties / B wins"] == f"{c.losses} / {c.ties} / {c.wins}"
    assert figures["95% CI of B − A"] == f"{c.low:+.3f} to {c.high:+.3f}"
    shown = [*at.success, *at.info]
    expected = escape_markdown(direct.sentence())
    assert any(expected == box.value for box in shown), [b.value for b in shown]
    labels = {str(d.proto.label) for d in at.get("download_button")}
    assert {"Export A vs B report (HTML)", "Per-query A vs B (CSV)"} <= labels


def test_search_page_offers_the_report_and_the_head_to_head_link():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    for key, value in {"dataset": "sample", "q": BATS, "ret": "bm25", "reranker": "none"}.items():
        at.query_params[key] = value
    at.run()
    no_exception(at)
    labels = {str(d.proto.label) for d in at.get("download_button")}
    assert "Export report (HTML)" in labels
    (link,) = [p for p in at.get("page_link") if "head to head" in p.proto.label]
    assert link.proto.page == "compare"
    # the link carries the view, so the head to head opens on the same query and stage
    assert "ret=bm25" in link.proto.query_string and "dataset=sample" in link.proto.query_string


@pytest.mark.slow
def test_search_page_head_to_head_panel():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    for key, value in {"dataset": "sample", "q": BATS, "ret": "bm25", "k": "10", "n": "5"}.items():
        at.query_params[key] = value
    at.run()
    at.toggle(key="search_h2h_on").set_value(True).run()
    no_exception(at)
    assert at.selectbox(key="sb_choice").value == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert at.slider(key="sb_weight").value == 0.5
    figures = metrics(at)
    assert "Kendall τ (A vs B)" in figures and "B time" in figures
    (link,) = [p for p in at.get("page_link") if "Open this head to head" in p.proto.label]
    assert "b=local%400.5" in link.proto.query_string or "b=local@0.5" in link.proto.query_string
