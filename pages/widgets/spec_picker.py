"""The A/B second-stage picker shared by Head to head, the Search page's compare panel,
the Evaluate page's A vs B and the walkthrough builder: widget state to and from a
:class:`RerankSpec`, and a view's own second stage as a spec."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core.models.base import PACKAGED_CROSS_ENCODER, SEED_CROSS_ENCODER
from core.models.together import DEFAULT_RERANK_MODEL
from core.present.views import SearchSettings
from core.quality.headtohead import RerankSpec

MODEL_CHOICES = {
    PACKAGED_CROSS_ENCODER: "Local cross-encoder (MiniLM-L-12, INT8 ONNX)",
    "sentence-transformers": "sentence-transformers CrossEncoder (model id)",
    "together": "Together rerank (hosted)",
    "none": "None: first-stage order",
}


def seed_picker(prefix: str, spec: RerankSpec) -> None:
    """Put ``spec`` into the picker's widget state (keys ``<prefix>_choice`` ...)."""
    state = st.session_state
    if spec.is_none:
        choice, model = "none", ""
    elif spec.reranker == PACKAGED_CROSS_ENCODER:
        choice, model = PACKAGED_CROSS_ENCODER, ""
    elif spec.reranker.startswith("together:"):
        choice, model = "together", spec.reranker.removeprefix("together:")
    else:
        choice, model = "sentence-transformers", spec.reranker
    state[f"{prefix}_choice"] = choice
    state[f"{prefix}_model"] = model
    state[f"{prefix}_weight"] = float(spec.fusion_weight)


def spec_picker(prefix: str, title: str, container) -> RerankSpec:
    """A reranker choice, a model id where needed and a cross-encoder weight; the spec."""
    with container:
        choice = st.selectbox(
            f"{title}: second stage",
            list(MODEL_CHOICES),
            key=f"{prefix}_choice",
            format_func=MODEL_CHOICES.get,
        )
        if choice in ("sentence-transformers", "together"):
            st.text_input(
                f"{title}: model id",
                key=f"{prefix}_model",
                placeholder=SEED_CROSS_ENCODER if choice != "together" else DEFAULT_RERANK_MODEL,
                help="Any sentence-transformers cross-encoder id (needs the Hugging Face hub "
                "unless cached here), or a Together rerank model.",
            )
        st.slider(
            f"{title}: cross-encoder weight",
            0.0,
            1.0,
            step=0.1,
            key=f"{prefix}_weight",
            disabled=choice == "none",
            help="1 = order by the reranker alone; below 1 the order blends in the first "
            "stage's score (weight × minmax(reranker) + (1 − weight) × minmax(first stage)).",
        )
    return spec_from_state(prefix)


def spec_from_state(prefix: str) -> RerankSpec:
    """The spec the ``prefix`` picker's widgets hold in session state (callbacks read it
    before the picker is drawn again)."""
    state = st.session_state
    choice = state[f"{prefix}_choice"]
    model = (state.get(f"{prefix}_model") or "").strip()
    if choice == "none":
        return RerankSpec("none")
    if choice == "together":
        reranker = "together:" + (model or DEFAULT_RERANK_MODEL)
    elif choice == "sentence-transformers":
        reranker = model or SEED_CROSS_ENCODER
    else:
        reranker = PACKAGED_CROSS_ENCODER
    return RerankSpec(reranker, round(float(state[f"{prefix}_weight"]), 2), "linear")


def spec_of(settings: SearchSettings) -> RerankSpec:
    """The A side a Search view describes: its reranker and fusion."""
    return RerankSpec(settings.reranker, settings.fusion_weight, settings.fusion)


def with_spec(settings: SearchSettings, spec: RerankSpec) -> SearchSettings:
    """``settings`` with its second stage set to ``spec`` (the A side)."""
    return replace(
        settings, reranker=spec.reranker, fusion_weight=spec.fusion_weight, fusion=spec.fusion
    )
