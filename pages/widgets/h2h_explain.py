"""Explanations on Head to head (per side, same document) and pinned on walkthrough steps.

Each side is explained by what produced its score: a local cross-encoder by occlusion
on that model (core.quality.explain, cached on disk), a fused side by its fusion parts
as well, the first stage alone by its exact parts; a hosted side is not explained by
default (the call count is said). Computed only when asked (a button, or a pin the
presenter set). All logic lives in core; this lays it out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import streamlit as st

from core.models.errors import CoreError
from core.present.explain import (
    Shown,
    contrast_text,
    faithfulness_line,
    first_stage_text,
    heatmap_html,
    reasons_line,
    signed,
)
from core.present.gate import admit_pin
from core.present.views import SearchSettings, error_text, escape_markdown, outside_text
from core.quality.explain import ExplainPin, contrast, estimate_calls, explain_candidate
from core.quality.explain_first_stage import explain_fusion
from core.quality.faithfulness import faithfulness_figure, load_table
from core.quality.headtohead import HeadToHead, Side
from core.search.pipeline import Candidate
from pages.widgets.actions import action_button, running_action
from pages.widgets.common import load_named_dataset, reranker_for, together_api_key
from pages.widgets.explain_panel import first_stage_reasons

KEPT = "h2h_explanations"
PIN = "h2h_pin"


@dataclass(frozen=True)
class Plan:
    """How one side's score of one document is explained: ``kind`` is ``"model"``
    (occlusion on a local cross-encoder), ``"hosted"`` (not by default) or
    ``"first"`` (the first stage's exact parts)."""

    name: str
    side: Side
    candidate: Candidate
    kind: str
    calls: int = 0
    method: str = "occlusion"

    @property
    def key(self) -> tuple:
        c = self.candidate
        return (self.side.spec.reranker, self.side.result.query, c.id, c.rerank_text, self.method)


def plan_side(name: str, side: Side, candidate: Candidate) -> Plan:
    """What explaining ``side``'s score of ``candidate`` takes."""
    if side.spec.is_none or candidate.rerank_score is None:
        return Plan(name, side, candidate, "first")
    calls = estimate_calls(side.result.query, candidate.rerank_text)
    hosted = side.spec.reranker.startswith("together:") or side.result.score_kind == "relevance"
    return Plan(name, side, candidate, "hosted" if hosted else "model", calls)


def compute(plan: Plan):
    """The occlusion explanation of a ``model`` plan (cached in the session and on disk)."""
    kept = st.session_state.setdefault(KEPT, {})
    if plan.key not in kept:
        reranker = reranker_for(plan.side.spec.reranker, together_api_key())
        kept[plan.key] = explain_candidate(
            reranker, plan.side.result.query, plan.candidate, method=plan.method
        )
    return kept[plan.key]


def _figure(dataset: str, method: str = "occlusion"):
    return faithfulness_figure(load_table(), dataset, method)


def shown_of(plan: Plan, expl) -> Shown:
    """The explanation as a report or export shows it."""
    label = f"{plan.name} · {plan.side.spec.label}"
    fig = _figure(plan.side.result.dataset, plan.method)
    return Shown(label, plan.candidate.id, plan.candidate.title, expl, fig)


def _words(items) -> str:
    return ", ".join(f"{escape_markdown(w.text)} ({signed(w.effect)})" for w in items) or "none"


def show_plan(plan: Plan, *, pin_key: str | None = None) -> None:
    """One side's explanation, laid out in the current container."""
    side, c = plan.side, plan.candidate
    st.markdown(f"**{plan.name} · {escape_markdown(side.spec.label)}** — #{side.ranks[c.id]}")
    first = first_stage_reasons(side.result, c)
    if plan.kind == "hosted":
        st.info(
            f"{plan.name} is a hosted reranker: it is not explained by default, occlusion "
            f"would send about {plan.calls} paid calls. Use `python -m core explain ... "
            "--allow-hosted`.",
            icon="ℹ️",
        )
    elif plan.kind == "first":
        st.caption(f"{plan.name} is the first stage's order: its score's exact parts.")
    expl = st.session_state.get(KEPT, {}).get(plan.key) if plan.kind == "model" else None
    if expl is not None:
        st.html(heatmap_html(expl))
        st.markdown("**Helped** (logits): " + _words(expl.helped(5)))
        st.markdown("**Hurt** (logits): " + _words(expl.hurt(5)))
        st.markdown("**Query words**: " + _words(expl.query_words))
        fig = _figure(side.result.dataset, plan.method)
        st.caption(
            escape_markdown(
                faithfulness_line(fig) if fig else "Faithfulness not measured on this data."
            )
        )
        if pin_key is not None:
            st.button(
                "Pin to the next walkthrough step",
                key=pin_key,
                icon=":material/push_pin:",
                on_click=_pin,
                args=(side.result, ExplainPin(c.id, expl.method, plan.name.lower())),
            )
    if side.spec.fused:
        try:
            st.caption(escape_markdown(first_stage_text(explain_fusion(side.result, c.id))))
        except CoreError as exc:
            st.caption(error_text(exc))
    line = reasons_line(first, expl)
    if line:
        st.markdown(escape_markdown(line))
    if first is not None and plan.kind == "first":  # a model side: the reasons line
        st.code(first_stage_text(first), language=None, wrap_lines=True)


def _pin(result, pin: ExplainPin) -> None:
    st.session_state[PIN] = (result.dataset, result.query, pin)


def take_pin(settings: SearchSettings) -> ExplainPin | None:
    """The explanation pinned on this page for ``settings``' dataset and query (removed:
    it goes into the step being added), or None."""
    held = st.session_state.pop(PIN, None)
    if held and held[0] == settings.dataset and held[1] == settings.query:
        return held[2]
    return None


def h2h_explain_panel(h2h: HeadToHead) -> list[Shown]:
    """Pick a document; why A and why B scored it as they did, side by side. Returns
    the explanations opened for this head-to-head (for the report)."""
    rows = h2h.rows()
    with st.expander(
        "Why did A and B score it so? (explain per side)",
        icon=":material/insights:",
        key="h2h_explain_open",
        on_change="rerun",
    ):
        labels = {f"{r['title']} (A #{r['rank_a']}, B #{r['rank_b']})": r["id"] for r in rows}
        doc_id = labels[st.selectbox("Document", list(labels), key="h2h_explain_doc")]
        plans = [
            plan_side(n, s, next(c for c in s.result.candidates if c.id == doc_id))
            for n, s in (("A", h2h.a), ("B", h2h.b))
        ]
        fig = _figure(h2h.a.result.dataset)
        todo = {p.key: p for p in plans if p.kind == "model"}
        kept = st.session_state.setdefault(KEPT, {})
        missing = [p for k, p in todo.items() if k not in kept]
        if fig is not None and not fig["passes"]:
            st.warning(faithfulness_line(fig) + ": not shown.", icon="⚠️")
            todo, missing = {}, []
        calls = sum(p.calls for p in missing)
        slot = st.empty()  # the button goes once the explanations are here
        label = f"Explain (~{calls} model calls)"
        if missing and action_button(label, "h2h_explain_go", where=slot):
            with running_action("h2h_explain_go"), st.spinner(f"Scoring {calls} variants…"):
                try:
                    for p in missing:
                        compute(p)
                    slot.empty()
                except CoreError as exc:
                    st.error(error_text(exc))
        for col, plan in zip(st.columns(2), plans, strict=True):
            with col:
                show_plan(plan, pin_key=f"h2h_pin_{plan.name}")
        if held := st.session_state.get(PIN):
            st.caption(
                f"Pinned: {outside_text(held[2].doc)} ({held[2].side.upper()}, "
                f"{held[2].method}): *Add this view as a step* keeps it in the step."
            )
        _contrast(h2h, [p for p in todo.values() if p.key in kept])
    return [shown_of(p, kept[p.key]) for p in todo.values() if p.key in kept]


def _contrast(h2h: HeadToHead, done: list[Plan]) -> None:
    """Why this document is above another under one side: what it has, the swap test."""
    if not done:
        return
    plan = done[0]
    rank = plan.side.ranks[plan.candidate.id]
    below = [c for c in plan.side.result.top_final if c.final_rank > rank]
    if not below:
        return
    labels = {f"{plan.name} #{c.final_rank}. {c.title}": c for c in below}
    other = labels[st.selectbox("Why above… (contrast)", list(labels), key="h2h_contrast_doc")]
    store = st.session_state.setdefault("h2h_contrasts", {})
    key = (*plan.key, other.id)
    if key not in store and action_button("Contrast the two", "h2h_contrast_go"):
        with running_action("h2h_contrast_go"), st.spinner("Explaining both…"):
            try:
                reranker = reranker_for(plan.side.spec.reranker, together_api_key())
                pair = contrast(reranker, h2h.query, plan.candidate.rerank_text, other.rerank_text)
                store[key] = contrast_text(pair, plan.candidate.title, other.title)
            except CoreError as exc:
                st.error(error_text(exc))
    if store.get(key):
        st.code(store[key], language=None, wrap_lines=True)


# ---------------------------------------------------------------- a pinned step


def pinned_plan(step, h2h: HeadToHead) -> tuple[Plan | None, list[str]]:
    """The plan of a step's pinned explanation (through the gate: known method and side,
    a document of the step's dataset), or None and why."""
    if not step.explain:
        return None, []
    settings = step.settings
    try:
        dataset = load_named_dataset(settings.dataset, settings.id_field, settings.title_field)
    except CoreError as exc:
        return None, [error_text(exc)]
    pin, warnings = admit_pin(step.explain, origin="stored", has_doc=dataset.dataset.has_id)
    if pin is None:
        return None, warnings
    side = h2h.a if pin.side == "a" else h2h.b
    found = next((c for c in side.result.candidates if c.id == pin.doc), None)
    if found is None:
        return None, [f"document {pin.doc!r} is not among this step's candidates now"]
    fig = _figure(side.result.dataset, pin.method)
    if (fig is not None and not fig["passes"]) or (pin.method != "occlusion" and fig is None):
        return None, [f"{pin.method} has not passed the faithfulness bar on this data"]
    return replace(plan_side(pin.side.upper(), side, found), method=pin.method), []


def pinned_explanation(step, h2h: HeadToHead) -> Shown | None:
    """Show a step's pinned explanation (computed when the step opens: the presenter
    asked for it; cached on disk); the explanation for the report, or None."""
    plan, warnings = pinned_plan(step, h2h)
    for warning in warnings:
        st.warning(f"Pinned explanation not shown: {outside_text(warning)}", icon="⚠️")
    if plan is None:
        return None
    st.subheader(f"Why: {escape_markdown(plan.candidate.title)}")
    expl = None
    if plan.kind == "model":
        with st.spinner(f"Explaining (~{plan.calls} model calls)…"):
            try:
                expl = compute(plan)
            except CoreError as exc:
                st.error(error_text(exc))
    show_plan(plan)
    return shown_of(plan, expl) if expl is not None else None


def pinned_shown(step, h2h: HeadToHead) -> list[Shown]:
    """A step's pinned explanation for the report (computed if needed, nothing drawn):
    a list of one, or empty (no pin, refused, or not a local cross-encoder's score)."""
    plan, _ = pinned_plan(step, h2h)
    if plan is None or plan.kind != "model":
        return []
    return [shown_of(plan, compute(plan))]
