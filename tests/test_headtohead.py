"""Head to head, A vs B on labels, the blind test, walkthroughs and HTML reports.

Plumbing runs on small data with deterministic fakes (tests/conftest.py); the real
packaged cross-encoder appears in the slow tests at the end, on the sample dataset.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import sqlalchemy as sa

from core.data.datasets import load_dataset
from core.data.documents import make_dataset
from core.models.base import PACKAGED_CROSS_ENCODER
from core.models.errors import SettingsError, WalkthroughError
from core.present.report import (
    head_to_head_report,
    pair_report_html,
    search_report,
    svg_bars,
    svg_dots,
    walkthrough_report,
)
from core.present.room import candidates_phrase, step_verdict
from core.present.views import SearchSettings
from core.present.walkthrough import (
    Walkthrough,
    WalkthroughStore,
    parse_walkthrough,
    step_from_view,
)
from core.quality.blind import (
    a_is_left,
    make_vote,
    pairwise_csv,
    pairwise_judgments,
    sign_test,
    tally,
    votes_csv,
    votes_json,
    wilson_interval,
)
from core.quality.evaluation_pair import evaluate_pair, format_pair_report
from core.quality.headtohead import RerankSpec, head_to_head, parse_pair, parse_spec
from core.quality.metrics import kendall_tau, overlap_at_k, rank_biased_overlap
from core.search.index import build_index
from core.search.retrievers import make_retriever
from tests.conftest import FakeEncoder, FakeReranker

EVIL = '<script>alert("x")</script> =HYPERLINK("http://evil")'


@pytest.fixture(scope="module")
def tiny():
    """Eight records; ids 0-7, one with a hostile title."""
    records = [
        {"id": str(i), "title": f"bats film {i}", "overview": f"bats and caves number {i}"}
        for i in range(8)
    ]
    records[5]["title"] = EVIL
    return make_dataset(
        "tiny", records, id_field="id", title_field="title", embed_fields=("title", "overview")
    )


@pytest.fixture(scope="module")
def tiny_retriever(tiny, tmp_path_factory):
    encoder = FakeEncoder()
    index = build_index(tiny, encoder, tiny.default_embed_fields, use_cache=False).index
    return make_retriever("dense", tiny, tiny.default_embed_fields, encoder=encoder, index=index)


# --- specs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("none", RerankSpec("none")),
        ("local", RerankSpec(PACKAGED_CROSS_ENCODER)),
        ("local@0.5", RerankSpec(PACKAGED_CROSS_ENCODER, 0.5)),
        ("local@0.3/rrf", RerankSpec(PACKAGED_CROSS_ENCODER, 0.3, "rrf")),
        ("together:Salesforce/Llama-Rank-V1", RerankSpec("together:Salesforce/Llama-Rank-V1")),
        (
            "cross-encoder/ms-marco-MiniLM-L-6-v2@1",
            RerankSpec("cross-encoder/ms-marco-MiniLM-L-6-v2"),
        ),
    ],
)
def test_specs_parse_and_round_trip(text, spec):
    assert parse_spec(text) == spec
    assert parse_spec(spec.to_string()) == spec


@pytest.mark.parametrize("bad", ["", "local@x", "local@1.5", "none@0.5", "local@0.5/max", "@0.5"])
def test_bad_specs_raise_one_clear_error(bad):
    with pytest.raises(SettingsError):
        parse_spec(bad)


def test_pair_needs_exactly_two():
    assert parse_pair("local,none") == (RerankSpec(PACKAGED_CROSS_ENCODER), RerankSpec("none"))
    with pytest.raises(SettingsError, match="exactly two"):
        parse_pair("local")


def test_labels_name_the_fusion():
    assert RerankSpec(PACKAGED_CROSS_ENCODER, 0.5).label == "local cross-encoder fused w=0.5"
    assert RerankSpec("none").label == "first stage only"


# --- head to head -------------------------------------------------------------------------


def test_head_to_head_compares_the_same_candidates(tiny, tiny_retriever):
    ce_a = FakeReranker({str(i): float(i) for i in range(8)}, name="up")  # 7 best
    ce_b = FakeReranker({str(i): float(-i) for i in range(8)}, name="down")  # 0 best
    h2h = head_to_head(
        tiny,
        "bats",
        retriever=tiny_retriever,
        a=RerankSpec("up"),
        b=RerankSpec("down"),
        reranker_a=ce_a,
        reranker_b=ce_b,
        num_candidates=6,
        num_results=3,
    )
    # both models saw exactly the same candidates, with the same texts
    assert [d.id for d in ce_a.seen[0][1]] == [d.id for d in ce_b.seen[0][1]]
    assert [d.text for d in ce_a.seen[0][1]] == [d.text for d in ce_b.seen[0][1]]
    candidates = {c.id for c in h2h.a.result.candidates}
    assert candidates == {c.id for c in h2h.b.result.candidates} and len(candidates) == 6
    expected_a = sorted(candidates, key=lambda i: -int(i))
    assert h2h.a.order == expected_a and h2h.b.order == expected_a[::-1]
    agree = h2h.agreement
    assert agree.kendall_tau == pytest.approx(-1.0)
    assert agree.rbo == pytest.approx(rank_biased_overlap(h2h.a.order, h2h.b.order, 0.9))
    assert agree.overlap == overlap_at_k(h2h.a.order, h2h.b.order, 3) == 0.0
    rows = h2h.rows()
    assert len(rows) == 6  # A's top 3 and B's top 3, disjoint
    for row in rows:
        assert row["move"] == row["rank_a"] - row["rank_b"]
        assert row["score_a"] == float(row["id"]) and row["score_b"] == -float(row["id"])
    assert h2h.a.score_label == "logit" and not h2h.b.shared_scores
    json.dumps(h2h.to_dict())  # JSON-ready


def test_same_model_is_scored_once_and_fusion_differs(tiny, tiny_retriever):
    ce = FakeReranker({"0": 5.0, "1": 4.0})
    h2h = head_to_head(
        tiny,
        "bats caves",
        retriever=tiny_retriever,
        a=RerankSpec("fake-reranker"),
        b=RerankSpec("fake-reranker", 0.5),
        reranker_a=ce,
        reranker_b=ce,
        num_candidates=8,
        num_results=4,
    )
    assert len(ce.seen) == 1
    assert h2h.b.shared_scores and h2h.b.score_label == "fused (0–1)"
    fused = [c.fused_score for c in h2h.b.result.reranked]
    assert fused == sorted(fused, reverse=True) and all(0 <= f <= 1 for f in fused)
    assert all(c.fused_score is None for c in h2h.a.result.candidates)


def test_none_side_is_the_first_stage_order(tiny, tiny_retriever):
    ce = FakeReranker({"3": 9.0})
    h2h = head_to_head(
        tiny,
        "bats",
        retriever=tiny_retriever,
        a=RerankSpec("fake-reranker"),
        b=RerankSpec("none"),
        reranker_a=ce,
        reranker_b=None,
        num_candidates=8,
        num_results=3,
    )
    assert h2h.b.order == [c.id for c in h2h.b.result.candidates]
    assert h2h.b.seconds == 0.0 and h2h.b.score_label == "cosine"
    assert h2h.a.order[0] == "3"
    assert h2h.agreement.kendall_tau == pytest.approx(kendall_tau(h2h.a.order, h2h.b.order))


def test_missing_model_is_a_settings_error(tiny, tiny_retriever):
    with pytest.raises(SettingsError, match="no reranker loaded"):
        head_to_head(
            tiny,
            "bats",
            retriever=tiny_retriever,
            a=RerankSpec("x"),
            b=RerankSpec("none"),
            reranker_a=None,
            reranker_b=None,
        )


# --- A vs B on labelled data --------------------------------------------------------------


def test_evaluate_pair_verdict_counts_and_disagreements(tiny):
    good = FakeReranker({"1": 3.0, "2": 2.0}, name="good")
    bad = FakeReranker({"6": 3.0, "7": 2.0}, name="bad")
    queries = {f"q{i}": "bats caves" for i in range(12)}
    qrels = {f"q{i}": {"1": 2, "2": 1} for i in range(12)}
    report = evaluate_pair(
        tiny,
        queries,
        qrels,
        a=RerankSpec("bad"),
        b=RerankSpec("good"),
        reranker_a=bad,
        reranker_b=good,
        encoder=FakeEncoder(),
        candidates=8,
    )
    c = report.comparison
    assert report.verdict == "B better" and c.low > 0
    assert (c.wins, c.ties, c.losses) == (12, 0, 0)
    assert report.mean_b["ndcg@10"] > report.mean_a["ndcg@10"]
    assert "B (good) is better than A (bad)" in report.sentence()
    assert len(report.disagreements(3)) == 3
    text = format_pair_report(report)
    assert "verdict: B better" in text and "disagree most" in text
    rows = list(csv.DictReader(io.StringIO(report.per_query_csv())))
    assert len(rows) == 12 and rows[0]["better"] == "B"
    payload = report.to_dict()
    assert payload["b_wins"] == 12 and payload["verdict"] == "B better"


def test_evaluate_pair_same_order_is_no_difference(tiny):
    ce = FakeReranker({"1": 3.0})
    report = evaluate_pair(
        tiny,
        {"q": "bats"},
        {"q": {"1": 1}},
        a=RerankSpec("fake-reranker"),
        b=RerankSpec("fake-reranker", 1.0),
        reranker_a=ce,
        reranker_b=ce,
        encoder=FakeEncoder(),
        candidates=8,
    )
    assert report.verdict == "no difference beyond noise" and report.shared_scores
    assert len(ce.seen) == 1  # one model, scored once


# --- blind test ---------------------------------------------------------------------------


def test_sides_are_seeded_per_session_and_query():
    queries = [f"query {i}" for i in range(200)]
    left = [a_is_left("seed-1", q) for q in queries]
    assert left == [a_is_left("seed-1", q) for q in queries]  # stable on reruns
    assert 70 < sum(left) < 130  # both sides used
    assert left != [a_is_left("seed-2", q) for q in queries]  # another session, another draw


def test_votes_map_back_to_systems_and_tally():
    seed = "s"
    queries = [f"q{i}" for i in range(10)]
    votes = []
    for q in queries[:8]:  # always pick the side that shows B
        choice = "right" if a_is_left(seed, q) else "left"
        votes.append(make_vote(q, choice, seed=seed, a="ce", b="fused"))
    votes += [make_vote(q, "tie", seed=seed, a="ce", b="fused") for q in queries[8:]]
    assert {v.winner for v in votes[:8]} == {"B"}
    result = tally(votes, "ce", "fused")
    assert (result.a_votes, result.b_votes, result.ties) == (0, 8, 2)
    assert result.p_value == pytest.approx(2 / 256)
    assert result.verdict == "B preferred"
    assert "B (fused)" in result.sentence()
    with pytest.raises(SettingsError):
        make_vote("q", "up", seed=seed, a="ce", b="fused")


def test_sign_test_and_wilson():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 5) == 1.0
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    low, high = wilson_interval(8, 10)
    assert 0.44 < low < 0.5 and 0.94 < high < 0.97


def test_vote_exports_are_formula_safe_and_convert_to_pairwise():
    votes = [
        make_vote(EVIL, "left", seed="s", a="=A()", b="B", voter="@bob"),
        make_vote("plain", "tie", seed="s", a="=A()", b="B"),
    ]
    rows = list(csv.DictReader(io.StringIO(votes_csv(votes))))
    assert rows[0]["voter"] == "'@bob" and rows[0]["a"] == "'=A()"
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    pairs = pairwise_judgments(votes)
    assert pairs[1].tie and {pairs[0].preferred, pairs[0].other} == {"=A()", "B"}
    pair_rows = list(csv.DictReader(io.StringIO(pairwise_csv(votes))))
    assert pair_rows[0]["preferred"] in ("'=A()", "B")
    payload = json.loads(votes_json(votes, "s"))
    assert payload["seed"] == "s" and payload["tally"]["total"] == 2


# --- walkthroughs -------------------------------------------------------------------------


def _walkthrough() -> Walkthrough:
    w = Walkthrough("Demo")
    for q in ("a heist that goes wrong", "a toy that comes to life"):
        w = w.add(step_from_view(SearchSettings(query=q, results=5), "local@0.5", note=EVIL))
    return w


def test_walkthrough_store_is_content_addressed(tmp_path):
    store = WalkthroughStore(tmp_path)
    w = _walkthrough()
    first = store.put(w)
    assert first == store.put(w) == w.id and re.fullmatch(r"[0-9a-f]{16}", first)
    assert (tmp_path / "state.sqlite3").is_file()  # in the state store, not loose files
    back = WalkthroughStore(tmp_path).get(first)
    assert back == w and back.steps[0].query == "a heist that goes wrong"
    assert back.steps[0].settings.results == 5 and back.steps[1].note == EVIL
    other = w.move(1, -1)
    assert other.steps[0].query == "a toy that comes to life" and store.put(other) != first


def test_walkthrough_store_refuses_bad_ids_and_damaged_files(tmp_path):
    store = WalkthroughStore(tmp_path)
    with pytest.raises(WalkthroughError, match="not a walkthrough id"):
        store.get("../../etc/passwd")
    with pytest.raises(WalkthroughError, match="not on this server"):
        store.get("0" * 16)
    wid = store.put(_walkthrough())
    with store.state.engine.begin() as conn:
        conn.execute(sa.text("UPDATE walkthroughs SET body = replace(body, 'heist', 'HEIST')"))
    with pytest.raises(WalkthroughError, match="not on this server"):
        store.get(wid)


def test_a_walkthrough_saved_as_a_file_by_an_earlier_version_still_opens(tmp_path):
    w = _walkthrough()
    (tmp_path / f"{w.digest}.json").write_text(w.to_json())
    assert WalkthroughStore(tmp_path).get(w.id) == w


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a walkthrough"),
        (b'{"format": "rerank-walkthrough/1", "steps": []}', "no steps"),
        (b'{"format": "rerank-walkthrough/1", "steps": [{"params": {}}]}', "no query"),
        (
            b'{"format": "rerank-walkthrough/1", "steps": [{"params": {"q": "x"}, "b": "@"}]}',
            "step 1",
        ),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_walkthrough_import_explains_bad_files(data, message):
    with pytest.raises(WalkthroughError, match=message):
        parse_walkthrough(data)


def test_walkthrough_json_round_trips():
    w = _walkthrough()
    assert parse_walkthrough(w.to_json()) == w


# --- reports ------------------------------------------------------------------------------


def _offline_safe(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower().replace("&lt;script", "")
    assert not re.search(r"\b(src|href)\s*=", page)  # nothing to fetch
    assert "@import" not in page and "url(" not in page
    assert EVIL not in page and html_escaped(EVIL) in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_reports_are_self_contained_and_escaped(tiny, tiny_retriever):
    ce = FakeReranker({"5": 9.0, "2": 1.0})
    h2h = head_to_head(
        tiny,
        "bats",
        retriever=tiny_retriever,
        a=RerankSpec("fake-reranker"),
        b=RerankSpec("fake-reranker", 0.5),
        reranker_a=ce,
        reranker_b=ce,
        num_candidates=8,
        num_results=4,
    )
    page = head_to_head_report(h2h, note=EVIL)
    _offline_safe(page)
    assert page.count("<svg") == 3  # movement + two score charts
    assert "Kendall τ" in page and "fused (0–1)" in page and "logit" in page
    whole = walkthrough_report(
        EVIL,
        [(h2h, EVIL), (h2h, "")],
        [make_vote("bats", "left", seed="s", a="A", b="B", step=1, voter="v")],
    )
    _offline_safe(whole)
    assert whole.count('class="step"') == 2 and "Blind test" in whole
    assert "A and B agree on" in whole  # a verdict line for a step without votes
    assert "The room has no clear preference" in whole  # the voted step's own line
    assert "@media print" in whole
    single = search_report(h2h.a.result, note=EVIL)
    _offline_safe(single)
    assert single.count("<svg") == 3


def test_pair_report_html(tiny):
    ce = FakeReranker({"1": 3.0})
    report = evaluate_pair(
        tiny,
        {"q1": EVIL, "q2": "bats"},
        {"q1": {"1": 1}, "q2": {"1": 1}},
        a=RerankSpec("none"),
        b=RerankSpec("fake-reranker"),
        reranker_a=None,
        reranker_b=ce,
        encoder=FakeEncoder(),
        candidates=8,
    )
    page = pair_report_html(report)
    _offline_safe(page)
    assert report.verdict in page and page.count("<svg") == 1


def test_svg_bars_handle_negative_and_constant_values():
    svg = svg_bars([("a", -2.0), ("b", 3.0)], "logit")
    assert svg.count("<rect") == 2 and 'fill="#D55E00"' in svg  # colour-blind-safe
    assert svg_bars([("a", 0.0)], "x").count("<rect") == 1


def test_score_dots_put_the_best_logit_furthest_right_not_the_longest_bar_from_zero():
    svg = svg_dots([("best", -1.53), ("tenth", -10.1)], "logit")
    assert "<rect" not in svg and svg.count("<circle") == 2
    xs = [float(x) for x in re.findall(r'<circle cx="([0-9.]+)"', svg)]
    assert xs[0] > xs[1]


# --- the real cross-encoder ----------------------------------------------------------


@pytest.mark.slow
def test_real_cross_encoder_vs_fused_on_the_sample(cross_encoder):
    sample = load_dataset("sample")
    retriever = make_retriever("bm25", sample, sample.default_embed_fields)
    h2h = head_to_head(
        sample,
        "how do I get bats out of my roof without hurting them",
        retriever=retriever,
        a=RerankSpec(PACKAGED_CROSS_ENCODER),
        b=RerankSpec(PACKAGED_CROSS_ENCODER, 0.5),
        reranker_a=cross_encoder,
        reranker_b=cross_encoder,
        num_candidates=10,
        num_results=5,
    )
    assert h2h.b.shared_scores
    top = h2h.a.result.top_final[0]
    assert top.id == "s15"  # "Bats in the Attic: Safe Eviction", the note that answers it
    logits = [c.rerank_score for c in h2h.a.result.reranked]
    assert logits == sorted(logits, reverse=True)
    assert -1.0 <= h2h.agreement.kendall_tau <= 1.0


def test_hosted_reranker_keeps_its_relevance_scale(tiny, tiny_retriever):
    """Together rerank (through the real SDK, against the loopback fake) vs the first stage."""
    from core.models.together import TogetherReranker
    from tests.together_server import FakeTogetherServer

    with FakeTogetherServer(api_key="k") as server:
        hosted = TogetherReranker(
            "Salesforce/Llama-Rank-V1", api_key="k", base_url=server.base_url, max_retries=0
        )
        h2h = head_to_head(
            tiny,
            "bats caves number 3",
            retriever=tiny_retriever,
            a=parse_spec("together:Salesforce/Llama-Rank-V1"),
            b=parse_spec("none"),
            reranker_a=hosted,
            reranker_b=None,
            num_candidates=8,
            num_results=3,
        )
    assert h2h.a.score_label == "relevance" and h2h.b.score_label == "cosine"
    scores = [c.rerank_score for c in h2h.a.result.reranked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert {r["id"] for r in h2h.rows()} >= set(h2h.a.order[:3])
    assert h2h.a.order[0] == "3"  # the only record with every query word


def test_wording_for_a_dataset_smaller_than_the_candidates_asked_for(tiny, tiny_retriever):
    h2h = head_to_head(
        tiny,
        "bats",
        retriever=tiny_retriever,
        a=RerankSpec("none"),
        b=RerankSpec("none"),
        reranker_a=None,
        reranker_b=None,
        num_candidates=50,
        num_results=3,
    )
    phrase = candidates_phrase(h2h)
    assert phrase.startswith("Same 8 candidates for both") and "only 8; 50 were asked" in phrase
    assert step_verdict(h2h).startswith("A and B agree on 3 of the top 3")
