"""Lines about a dense index being built in the background (core.search.background).

Drawn in fragments that refresh themselves every two seconds: a fragment's run is not a
page run, so it does not count as a visitor (the build is not paused by it), and it
never redraws the results above it.
"""

from __future__ import annotations

import streamlit as st

from core.present.views import SearchSettings, error_text, escape_markdown
from core.search.background import EmbeddingJob, StartGate, default_embedder, start_gate
from core.search.passages import format_seconds
from pages.widgets.costs import visitor_budget

REFRESH_SECONDS = 2.0
CONFIRMED = "embed_confirmed"  # the key of the job this session clicked to start


def first_stage_note(
    job: EmbeddingJob | StartGate | None, dense: bool, settings: SearchSettings
) -> None:
    """On the Search page, after the search: while ``job`` builds the index, BM25 stood
    in (:func:`standin_line`), or while a priced build waits for the visitor's click
    (a :class:`StartGate`: :func:`gate_line`); on the first run after that with the
    index (``dense``) for the same dataset and fields, say the first stage is the
    link's again."""
    state = st.session_state
    standin_for = (settings.dataset, settings.embed_fields)
    if isinstance(job, StartGate):
        gate_line(job, "First stage: BM25. ")
        state.dense_standin = standin_for
    elif job is not None:
        standin_line(job, settings.retriever)
        state.dense_standin = standin_for
    elif state.pop("dense_standin", None) == standin_for and dense:
        ready_note(settings.retriever)


def standin_line(job: EmbeddingJob, retriever: str) -> None:
    """On the Search page: BM25 answers while ``job`` builds the index ``retriever``
    (dense or hybrid) needs; says so, with progress, and when the index is ready offers
    to search again (the shown order never changes by itself)."""
    label = "hybrid" if retriever == "hybrid" else "dense"

    @st.fragment(run_every=REFRESH_SECONDS)
    def line() -> None:
        status = job.status()
        if status.state == "failed":
            st.warning(
                f"The dense index could not be built ({error_text(status.error or '')}). "
                "First stage: BM25, which keeps working.",
                icon="⚠️",
            )
            _retry_button(job)
        elif status.state == "done":
            st.success(
                f"The dense index is ready: your next search uses the link's first stage "
                f"({label}). The results below are still BM25's.",
                icon="✅",
            )
            if st.button(f"Search again with {label}", key="embed_ready_rerun"):
                st.rerun(scope="app")
        elif status.state == "cancelled":
            st.info("The dense index build stopped. First stage: BM25.", icon="ℹ️")
        else:
            st.info(
                f"First stage: BM25 while the dense index is built ({status.progress_text()}).",
                icon="⏳",
            )

    line()


def waiting_line(job: EmbeddingJob) -> None:
    """On pages that cannot work without the index: its progress, then a rerun of the
    page when it is ready (nothing is shown there yet that could change)."""

    @st.fragment(run_every=REFRESH_SECONDS)
    def line() -> None:
        status = job.status()
        if status.state == "done":
            st.rerun(scope="app")
        elif status.state == "failed":
            st.error(
                f"The dense index could not be built ({error_text(status.error or '')}).",
                icon="🚫",
            )
            _retry_button(job)
        else:
            st.progress(
                status.fraction,
                text=f"This page needs the dense index, built in the background "
                f"({status.progress_text()}). You can use other pages meanwhile.",
            )

    line()


def may_start(gate: StartGate) -> bool:
    """Whether the new embedding job ``gate`` prices may start now: within this
    visitor's budget, and clicked for when its estimate is above the threshold. True
    charges the budget; False leaves the page to show the gate (:func:`gate_line`)."""
    budget = visitor_budget()
    if budget.refusal(gate.cost) is not None:
        return False
    if gate.needs_click and st.session_state.get(CONFIRMED) != gate.key:
        return False
    st.session_state.pop(CONFIRMED, None)
    budget.charge(gate.cost)
    return True


def gate_line(gate: StartGate, before: str = "") -> None:
    """A build not started: the visitor's budget refuses it (one line), or its estimate
    and the button that starts it. ``before`` opens the line (what works meanwhile)."""
    refusal = visitor_budget().refusal(gate.cost)
    if refusal is not None:
        st.warning(escape_markdown(f"{before}{refusal}."), icon="⏳")
        return
    st.info(
        escape_markdown(f"{before}{gate.line()}: the dense index is built when you click."),
        icon="⏱️",
    )
    st.button(
        f"Build the dense index (about {format_seconds(gate.cost.seconds)})",
        key="embed_start",
        on_click=_confirm,
        args=(gate.key,),
    )


def _confirm(key: object) -> None:
    st.session_state[CONFIRMED] = key


def ready_note(retriever: str) -> None:
    """After a BM25 stand-in: the index is ready and this search used it."""
    label = "hybrid" if retriever == "hybrid" else "dense"
    st.success(
        f"The dense index is ready: this search's first stage is {label} again "
        "(the earlier results were BM25's).",
        icon="✅",
    )


def session_user() -> str:
    """This session's id: the user a background job counts (empty outside a session)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def session_alive(session_id: str) -> bool:
    """Whether the session ``session_id`` is still connected to this server (True when
    there is no server to ask, e.g. under AppTest)."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return True
    return Runtime.instance().is_active_session(session_id)


def _retry_button(job: EmbeddingJob) -> None:
    if refusal := st.session_state.pop("embed_refusal", None):
        st.warning(escape_markdown(f"{refusal}."), icon="⏳")
    st.button("Try building it again", key="embed_retry", on_click=_retry, args=(job,))


def _retry(job: EmbeddingJob) -> None:
    """Start a failed build again: a new job, priced and charged like the first (the
    click is this button's; a refusal is kept for the line to say)."""
    embedder = default_embedder()
    gate = start_gate(
        job.dataset, job.encoder, job.fields, job.passages, embedder=embedder, retry=True
    )
    refusal = visitor_budget().refusal(gate.cost)
    if refusal is not None:
        st.session_state.embed_refusal = refusal
        return
    visitor_budget().charge(gate.cost)
    embedder.start(
        job.dataset, job.encoder, job.fields, job.passages, user=session_user(), retry=True
    )
