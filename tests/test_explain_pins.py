"""Explanations pinned to walkthrough steps (store, link, import, the gate), in the HTML
reports (escaped, no script) and in the JSON export, on the real packaged cross-encoder."""

from __future__ import annotations

import json

import pytest

from core.data.documents import make_dataset
from core.present.explain import Shown, explanations_section, json_with_explanations
from core.present.gate import admit_pin
from core.present.report import head_to_head_report, walkthrough_report
from core.present.views import SearchSettings
from core.present.walkthrough import (
    Step,
    Walkthrough,
    WalkthroughStore,
    parse_walkthrough,
    step_from_view,
)
from core.quality.explain import ExplainPin, explain
from core.quality.headtohead import RerankSpec, head_to_head
from core.search.retrievers import make_retriever

HOSTILE = '<script>alert("x")</script> Robbers plan a bank heist & <b>it goes wrong</b>'
QUERY = "a bank heist that goes wrong"
RECORDS = [
    {"id": "evil", "title": "<img src=x onerror=alert(1)>", "overview": HOSTILE},
    {"id": "m2", "title": "Garden", "overview": "A quiet film about growing tomatoes."},
    {"id": "m3", "title": "Vault", "overview": "A thief cracks a vault in a bank at night."},
    {"id": "m4", "title": "Space", "overview": "Astronauts repair a station in orbit."},
]


@pytest.fixture(scope="module")
def tiny():
    return make_dataset("tiny", RECORDS, id_field="id", title_field="title")


@pytest.fixture(scope="module")
def h2h(tiny, cross_encoder):
    retriever = make_retriever("bm25", tiny, tiny.default_embed_fields)
    return head_to_head(
        tiny,
        QUERY,
        retriever=retriever,
        a=RerankSpec(),
        b=RerankSpec("none"),
        reranker_a=cross_encoder,
        reranker_b=None,
        num_candidates=4,
        num_results=4,
    )


@pytest.fixture(scope="module")
def shown(h2h, cross_encoder) -> Shown:
    (c,) = [c for c in h2h.a.result.candidates if c.id == "evil"]
    expl = explain(cross_encoder, QUERY, c.rerank_text, use_cache=False)
    figure = {"comprehensiveness": 3.1, "random": 0.9, "ratio": 3.4, "passes": True, "pairs": 9}
    return Shown("A · local cross-encoder", c.id, c.title, expl, figure)


# --- the step, its store, its export and import ---------------------------------------------


def _walkthrough() -> Walkthrough:
    settings = SearchSettings(query=QUERY, dataset="movies")
    pinned = step_from_view(settings, "none", "why?", pin=ExplainPin("m3", "occlusion", "a"))
    plain = step_from_view(settings, "none", "no pin")
    return Walkthrough("Pins", (pinned, plain))


def test_a_pinned_step_round_trips_through_export_import_and_the_store(tmp_path) -> None:
    walkthrough = _walkthrough()
    data = json.loads(walkthrough.to_json())
    assert data["steps"][0]["explain"] == {"doc": "m3", "method": "occlusion", "side": "a"}
    assert "explain" not in data["steps"][1]  # unpinned steps keep their old form (and ids)
    imported = parse_walkthrough(walkthrough.to_json().encode())
    assert imported == walkthrough and imported.id == walkthrough.id
    assert imported.steps[0].pin == ExplainPin("m3", "occlusion", "a")
    assert imported.steps[1].pin is None
    store = WalkthroughStore(tmp_path)
    link_id = store.put(walkthrough)
    opened = WalkthroughStore(tmp_path).get(link_id)  # what ?walkthrough=<id> opens
    assert opened.steps[0].pin == ExplainPin("m3", "occlusion", "a")
    assert opened.steps[0].warnings == []


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"doc": "m3", "method": "<script>", "side": "a"}, "unknown method"),
        ({"doc": "m3", "method": "ig2", "side": "a"}, "unknown method"),
        ({"doc": "m3\n<b>", "method": "occlusion", "side": "a"}, "is not one"),
        ({"doc": "x" * 5_000, "method": "occlusion", "side": "a"}, "is not one"),
        ({"doc": "m3", "method": "occlusion", "side": "../etc"}, "not a or b"),
        ({"doc": "nope", "method": "occlusion", "side": "b"}, "not in the dataset"),
        (["m3"], "not a map"),
    ],
)
def test_the_gate_refuses_a_hostile_pin(tiny, raw, why) -> None:
    pin, warnings = admit_pin(raw, origin="link", has_doc=tiny.has_id)
    assert pin is None
    assert len(warnings) == 1 and why in warnings[0]


def test_the_gate_admits_a_pin_of_the_dataset(tiny) -> None:
    pin, warnings = admit_pin(
        {"doc": "m3", "method": "occlusion", "side": "b"}, has_doc=tiny.has_id
    )
    assert pin == ExplainPin("m3", "occlusion", "b") and warnings == []


def test_an_imported_file_with_a_hostile_pin_loads_without_it() -> None:
    data = json.loads(_walkthrough().to_json())
    data["steps"][0]["explain"] = {"doc": "m3", "method": "rm -rf", "side": "a"}
    step = parse_walkthrough(json.dumps(data)).steps[0]
    assert step.pin is None
    assert any("unknown method" in w for w in step.warnings)
    data["steps"][0]["explain"] = {"doc": {"nested": "x"}}
    with pytest.raises(Exception, match="'explain' must map"):
        parse_walkthrough(json.dumps(data))


def test_step_without_explain_keeps_its_fields() -> None:
    step = Step({"q": QUERY}, "none", "n")
    assert step.pin is None and "explain" not in step.to_dict()


# --- the reports and the export ----------------------------------------------------------


def test_report_section_escapes_record_text_and_has_no_script(shown) -> None:
    section = explanations_section([shown])
    assert "<script" not in section.lower() and "<img" not in section.lower()
    assert "&lt;script&gt;" in section and "&lt;img src=x onerror=alert(1)&gt;" in section
    assert "&lt;b&gt;it" in section  # the record's markup is text
    for word, _ in [(w.text, w.effect) for w in shown.explanation.helped(3)]:
        assert word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in section
    assert "Helped" in section and "Query words" in section
    assert "comprehensiveness AOPC 3.10 vs random 0.90" in section


def test_head_to_head_and_walkthrough_reports_carry_the_explanation(h2h, shown) -> None:
    report = head_to_head_report(h2h, "", [shown])
    assert "Why these scores?" in report
    assert "<script" not in report.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in report
    whole = walkthrough_report("W", [(h2h, "note")], (), {0: [shown]})
    assert "Pinned explanation" in whole and "<script" not in whole.lower()
    assert walkthrough_report("W", [(h2h, "note")]).count("Pinned explanation") == 0


def test_json_export_holds_the_opened_explanations(shown) -> None:
    text = json_with_explanations(json.dumps({"query": QUERY}), [shown])
    data = json.loads(text)
    (item,) = data["explanations"]
    expl = shown.explanation
    assert item["method"] == "occlusion" and item["doc_id"] == "evil"
    assert item["base_score"] == pytest.approx(expl.base_score)
    measured = [w for w in item["doc_words"] if w["effect"] is not None]
    assert len(measured) == len(expl.measured()) > 5
    assert item["top"]["helped"][0][0] == expl.helped(1)[0].text
    assert item["faithfulness"]["passes"] is True
    assert json_with_explanations('{"a": 1}', []) == '{"a": 1}'
