"""Evaluate page: does the reranker help on labelled data? Base -> second stage, with a
confidence interval; and a setting chosen by cross-validation, applicable in one click."""

from __future__ import annotations

import streamlit as st

from core.data.beir import load_beir
from core.data.datasets import scifact_path
from core.models.errors import CoreError
from core.models.packaged import packaged_model_ids
from core.present.evaluate_state import (
    LabelledSet,
    evaluation_options,
    follow_depth,
    judgments_of,
)
from core.present.views import error_text, escape_markdown
from core.quality.evaluation import beir_to_dataset
from core.quality.runs import SecondStage
from core.search.retrievers import RETRIEVER_KINDS, RETRIEVER_LABELS
from pages.widgets import eval_reproduce
from pages.widgets import evaluate_panels as panels
from pages.widgets import quality_panels as quality
from pages.widgets.actions import action_button, running_action, switch_if_asked
from pages.widgets.common import BUILTIN_LABELS, collection_labels, load_named_dataset
from pages.widgets.costs import visitor_budget
from pages.widgets.eval_pair import pair_panel
from serve import ensure_navigation

ensure_navigation()  # first: a deep link on a fresh plain server (serve.py)
switch_if_asked()  # Apply on the Search page, Judge them on the Search page

st.title("Does reranking help?")
st.caption(
    "First stage alone vs first stage + cross-encoder on labelled data: the same "
    "candidates, scored against relevance judgments, with a 95% confidence interval. "
    "Reranking does not always help; this page says when it hurts."
)
state = st.session_state
scifact = scifact_path()
sources = (["SciFact (BEIR)"] if scifact else []) + ["Judgments CSV on a dataset"]
source = st.radio("Labelled set", sources, horizontal=True, key="eval_source")
encoders = packaged_model_ids("embedding")

# --- settings ---------------------------------------------------------------------------
c1, c2, c3, c4 = st.columns(4)
retriever = c1.selectbox(
    "First stage", list(RETRIEVER_KINDS), key="eval_retriever", format_func=RETRIEVER_LABELS.get
)
encoder_id = c1.selectbox("Bi-encoder", encoders, key="eval_encoder", disabled=retriever == "bm25")
candidates = c2.slider("Candidates per query", 10, 200, 100, key="eval_candidates")
rerank_on = c3.toggle("Rerank", value=True, key="eval_rerank")
# The depth follows the candidates down (and up, while it was at the maximum).
state.eval_depth = follow_depth(state.get("eval_depth"), state.get("eval_depth_max", 0), candidates)
state.eval_depth_max = candidates
depth = c3.slider(
    "Rerank depth",
    1,
    candidates,
    key="eval_depth",
    disabled=not rerank_on,
    help="The cross-encoder reorders this many of the candidates; the rest keep their "
    "first-stage order below them.",
)
state.setdefault("eval_weight", 1.0)
weight = c4.slider(
    "Cross-encoder weight",
    0.0,
    1.0,
    step=0.1,
    key="eval_weight",
    disabled=not rerank_on,
    help="1 = pure rerank; below 1 blends in the first stage's score (min-max normalised).",
)
threshold = quality.threshold_input(c4)

# --- the labelled set -------------------------------------------------------------------
if source.startswith("SciFact"):

    @st.cache_resource(show_spinner="Reading SciFact…")
    def _scifact():
        beir = load_beir(scifact)
        return beir, beir_to_dataset(beir)

    beir, dataset = _scifact()
    total = len(beir.qrels)
    max_queries = c2.number_input(
        "Queries",
        1,
        total,
        min(50, total),
        key="eval_queries",
        help=f"The first N of {total} judged test queries (the cost of each button is "
        "shown below; cross-encoder scores are then cached on disk).",
    )
    labelled = LabelledSet.from_beir(source, beir, dataset, max_queries)
else:
    choices = [*BUILTIN_LABELS, *collection_labels(), *state.get("uploads", [])]
    labels = {n: n for n in choices} | BUILTIN_LABELS | collection_labels()
    labels |= state.get("upload_labels", {})
    name = c2.selectbox("Dataset", choices, key="eval_dataset", format_func=lambda n: labels[n])
    try:
        dataset = load_named_dataset(name).dataset
    except CoreError as exc:
        st.error(error_text(exc), icon="🚫")
        st.stop()
    # Uploaded judgments (any format), with the ratings made on the Search page on top.
    judgments = quality.judgments_upload(dataset) or {}
    for query, docs in judgments_of(state.get("judgments", {}), name).items():
        judgments.setdefault(query, {}).update(docs)
    if not judgments:
        st.info(
            "Upload judgments, or rate results on the Search page (Judge section): "
            "those judgments are used here too."
        )
        st.stop()
    state.eval_qrels = judgments
    labelled = LabelledSet.from_judgments(source, dataset, judgments)
    st.caption(f"{len(judgments)} judged queries, {sum(map(len, judgments.values()))} ratings.")

# --- run and tune -----------------------------------------------------------------------
options = SecondStage(
    retriever=retriever,
    rerank_depth=depth if rerank_on else None,
    fusion_weight=weight if rerank_on else 1.0,
)
first_encoder = encoder_id if retriever != "bm25" else None
run_key = (labelled.run_key(candidates, rerank_on, first_encoder, options), threshold)
tune_key = (labelled.tune_key(candidates), threshold)
run_cost, tune_cost = panels.cost_caption(
    labelled, depth if rerank_on else None, candidates, encoders
)
budget = visitor_budget()
run_refused = budget.refusal(run_cost) if run_cost is not None else None
tune_refused = budget.refusal(tune_cost)
for refused in dict.fromkeys(r for r in (run_refused, tune_refused) if r):
    st.warning(escape_markdown(refused), icon="⏳")
run_col, tune_col = st.columns([1, 3])
if action_button(
    "Run evaluation", "eval_run", where=run_col, type="primary", disabled=bool(run_refused)
):
    if run_cost is not None:
        budget.charge(run_cost)
    with running_action("eval_run"):
        report = panels.evaluate(labelled, first_encoder, rerank_on, candidates, options, threshold)
        state.eval_report = (run_key, report, labelled)
if action_button(
    "Find the best setting (cross-validated)",
    "eval_tune",
    where=tune_col,
    disabled=labelled.num_judged < 4 or bool(tune_refused),
    help="Tries dense (MiniLM, bge-small), BM25 and hybrid first stages, rerank depths "
    "10–100 and cross-encoder weights 0.2–1, choosing on 4/5 of the queries and scoring "
    "on the other fifth, five times over. Needs at least 4 judged queries.",
):
    budget.charge(tune_cost)
    with running_action("eval_tune"):
        state.eval_tuned = (tune_key, panels.tune(labelled, candidates, encoders, threshold))

stored_tune = state.get("eval_tuned")
if stored_tune is not None and stored_tune[0] == tune_key:
    panels.recommended(stored_tune[1])
    quality.tune_panel(stored_tune[1])

pair_panel(labelled, retriever=retriever, encoder_id=encoder_id, candidates=candidates)

# --- the evaluation ---------------------------------------------------------------------
stored = state.get("eval_report")
if stored is None or stored[0] != run_key:
    st.info("Choose the settings and press **Run evaluation**.")
    st.stop()
_, report, labelled = stored
panels.figures(report)
# What the numbers were computed from: in the exports, and as a script that recomputes them.
run_options = evaluation_options(
    labelled,
    retriever=retriever,
    encoder=encoder_id,
    candidates=candidates,
    rerank=rerank_on,
    depth=depth,
    weight=weight,
    threshold=threshold,
)
beir_run = labelled.beir is not None
manifest = eval_reproduce.run_manifest(
    run_key,
    labelled,
    run_options,
    name=labelled.dataset.name if beir_run else name,
    label=source if beir_run else labels[name],
)
eval_reproduce.exports(report, manifest)
eval_reproduce.panel(manifest, labelled, scifact if beir_run else None)
quality.unjudged_panel(report, dataset_name=None if labelled.beir is not None else name)
if report.reranked is not None and len(report.queries):
    panels.open_query(report, labelled)
