"""AppTest: explanations on Head to head (per side, same document), pinned to a
walkthrough step, shown when the step opens and in the walkthrough's HTML report.

The 40-record sample with BM25 as the first stage; A is the real packaged cross-encoder
(explained by occlusion on it), B the first stage alone (its exact BM25 parts).
"""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.present.walkthrough import WalkthroughStore
from core.quality.explain import ExplainPin

ROOT = Path(__file__).resolve().parents[1]
BATS = "how do I get bats out of my roof without hurting them"


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _button(at: AppTest, label: str):
    (found,) = [b for b in at.button if b.label == label]
    return found


def _plain(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def test_head_to_head_explains_each_side_pins_and_the_step_shows_it() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in dict(dataset="sample", q=BATS, ret="bm25", k="10", n="5", b="none").items():
        at.query_params[key] = value
    at.switch_page("pages/compare.py").run()
    _no_exception(at)
    doc_label = at.selectbox(key="h2h_explain_doc").value
    go = at.button(key="h2h_explain_go")
    assert re.search(r"Explain \(~\d+ model calls\)", go.label)
    go.click().run()
    _no_exception(at)

    kept = at.session_state["h2h_explanations"]
    (expl,) = kept.values()  # A only: B is the first stage (no model calls)
    top = expl.helped(1)[0].text
    markdown = [_plain(m.value) for m in at.markdown]
    assert any(m.startswith("**Helped** (logits): ") and top in m for m in markdown)
    assert any("Query words" in m for m in markdown)
    assert any("A · local cross-encoder" in m for m in markdown)
    assert any("B · first stage only" in m for m in markdown)
    assert any(c.value.startswith("bm25: parts sum to") for c in at.code)  # B's exact parts
    assert any("the reranker weighed" in m for m in markdown)
    assert [h for h in at.get("html")], "A's heat map is drawn"

    # contrast: why this document is above one A ranked lower
    assert at.selectbox(key="h2h_contrast_doc").value.startswith("A #2. ")
    at.button(key="h2h_contrast_go").click().run()
    _no_exception(at)
    assert any("swap test" in c.value for c in at.code)

    # pin A's explanation, then add the view as a step: the step keeps it
    at.button(key="h2h_pin_A").click().run()
    _no_exception(at)
    _button(at, "Add this view as a step").click().run()
    _no_exception(at)
    step = at.session_state["wt_draft"].steps[0]
    doc_id = step.explain["doc"]
    assert step.pin == ExplainPin(doc_id, "occlusion", "a")
    _button(at, "Save and share").click().run()
    saved = WalkthroughStore().get(at.session_state["wt_saved"])
    assert saved.steps[0].pin == ExplainPin(doc_id, "occlusion", "a")

    # a fresh session opens the shared link: the step shows the pinned explanation
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    fresh.query_params["walkthrough"] = saved.id
    fresh.run()
    _no_exception(fresh)
    (why,) = [s.value for s in fresh.subheader if s.value.startswith("Why: ")]
    assert doc_label.startswith(_plain(why)[len("Why: ") :])  # the document pinned
    shown = [_plain(m.value) for m in fresh.markdown]
    assert any(m.startswith("**Helped** (logits): ") and top in m for m in shown)
    heat = " ".join(str(h.proto.body) for h in fresh.get("html"))
    assert "<script" not in heat.lower() and "raised" in heat

    fresh.button(key="wt_report_build").click().run()
    _no_exception(fresh)
    report = fresh.session_state["wt_report"]
    assert "Pinned explanation" in report and "<script" not in report.lower()


def test_a_pinned_method_below_the_bar_or_unknown_doc_is_one_warning() -> None:
    from core.present.walkthrough import Step, Walkthrough

    params = {"dataset": "sample", "q": BATS, "ret": "bm25", "k": "10", "n": "5"}
    steps = (
        Step(params, "none", "", {"doc": "s15", "method": "ig", "side": "a"}),
        Step(params, "none", "", {"doc": "no-such-doc", "method": "occlusion", "side": "a"}),
    )
    link = WalkthroughStore().put(Walkthrough("Pins", steps))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["walkthrough"] = link
    at.run()
    _no_exception(at)
    warnings = [_plain(w.value) for w in at.warning]
    assert any("ig has not passed the faithfulness bar" in w for w in warnings), warnings
    assert not [s for s in at.subheader if s.value.startswith("Why: ")]
    _button(at, "Next ▶").click().run()
    _no_exception(at)
    warnings = [_plain(w.value) for w in at.warning]
    assert any("'no-such-doc' is not in the dataset" in w for w in warnings), warnings


def _search_app() -> None:
    import streamlit as st

    from core.data.datasets import load_sample
    from core.models.registry import load_reranker
    from core.present.explain import json_with_explanations
    from core.present.report import search_report
    from core.present.views import export_json
    from core.search.pipeline import search_with_rerank
    from core.search.retrievers import make_retriever
    from pages.widgets.explain_panel import explain_panel, opened

    if "result" not in st.session_state:
        data = load_sample()
        st.session_state.result = search_with_rerank(
            data,
            "how do I get bats out of my roof without hurting them",
            retriever=make_retriever("bm25", data, data.default_embed_fields),
            reranker=load_reranker(),
            num_candidates=5,
            num_results=3,
        )
    result = st.session_state.result
    explain_panel(result, result.top_final[0])
    # what the Search page's downloads hand over (pages/widgets/search_results.downloads)
    st.session_state.exported = json_with_explanations(export_json(result), opened(result))
    st.session_state.report = search_report(result, explanations=opened(result))


def test_search_exports_carry_the_explanation_opened() -> None:
    import json

    at = AppTest.from_function(_search_app, default_timeout=300)
    at.run()
    _no_exception(at)
    assert "explanations" not in json.loads(at.session_state["exported"])
    at.button(key="explain_go").click().run()
    _no_exception(at)
    data = json.loads(at.session_state["exported"])
    (item,) = data["explanations"]
    top = at.session_state["result"].top_final[0]
    assert item["doc_id"] == top.id and item["method"] == "occlusion"
    assert any(w["effect"] is not None for w in item["doc_words"])
    report = at.session_state["report"]
    assert "Why these scores?" in report and "<script" not in report.lower()
