"""Head to head page: two second stages on the same candidates, a one-click walkthrough
step from the current view, and a self-contained HTML report."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core.data.state_store import open_store
from core.models.errors import CoreError
from core.present.diagnostics_state import dataset_choices
from core.present.exports import with_manifest
from core.present.gate import admit_spec, admit_view
from core.present.report import head_to_head_report
from core.present.room import public_base, share_links
from core.present.views import (
    EXAMPLE_QUERIES,
    SearchSettings,
    error_text,
    escape_markdown,
    outside_text,
    shown_value,
)
from core.present.walkthrough import (
    Walkthrough,
    WalkthroughStore,
    parse_walkthrough,
    step_from_view,
)
from core.quality.headtohead import RerankSpec
from core.search.retrievers import RETRIEVER_KINDS, RETRIEVER_LABELS
from pages.widgets import h2h_reproduce
from pages.widgets.common import BUILTIN_LABELS
from pages.widgets.h2h_explain import h2h_explain_panel, take_pin
from pages.widgets.h2h_panel import run_head_to_head, show_charts, show_figures, show_tables
from pages.widgets.reproduce_panel import fingerprint_of
from pages.widgets.spec_picker import seed_picker, spec_from_state, spec_of, spec_picker, with_spec

state = st.session_state

# --- settings: the link, else the Search page's view; widgets re-seeded from h2h_view ----
# A link (or the Search page's "compare" link) re-seeds the page; the page's own URL, or
# none (the sidebar), keeps what the session was doing.
params = st.query_params.to_dict()
if "h2h_view" not in state or (params and params != state.get("h2h_params")):
    # Every value of the link goes through the one gate (core.present.gate).
    if "q" in params or "b" in params or "a" in params:
        view, warnings = admit_view(params, origin="link")
    else:
        view, warnings = state.get("view") or SearchSettings(), []
    if params.get("a"):
        a_spec, more = admit_spec(params["a"], side="A", default=spec_of(view).to_string())
        warnings += more
        view = with_spec(view, a_spec)
    b, more = admit_spec(params.get("b"), side="B")
    warnings += more
    # Shown until the view changes (a rerun must not lose them).
    state.h2h_warnings, state.h2h_seed_params = warnings, None
    h2h_reproduce.remember_link(params, view.dataset)  # its fp: drift is said below
    state.h2h_view = (view, b)
    for key in ("h2h_query", "h2h_dataset"):
        state.pop(key, None)
view, b_spec = state.h2h_view
datasets = dataset_choices(view.dataset, state.get("uploads", []))
if "h2h_query" not in state:
    state.h2h_query = view.query
    if view.dataset not in datasets:
        state.h2h_warnings = [
            *state.get("h2h_warnings", []),
            f"dataset {shown_value(view.dataset)} cannot be compared here; using movies",
        ]
    state.h2h_dataset = view.dataset if view.dataset in datasets else "movies"
    state.h2h_retriever = view.retriever
    state.h2h_candidates = view.candidates
    state.h2h_results = view.results
    seed_picker("a", spec_of(view))
    seed_picker("b", b_spec)

st.title("Head to head")
for warning in state.get("h2h_warnings", []):
    st.warning(f"Link setting ignored: {outside_text(warning)}", icon="⚠️")
st.caption(
    "Two second stages on exactly the same candidates: which order is better for this "
    "query? Each side keeps its own score scale; the time of each is measured."
)

with st.sidebar:
    st.header("First stage")
    labels = {**BUILTIN_LABELS, **state.get("upload_labels", {})}
    st.selectbox("Dataset", datasets, key="h2h_dataset", format_func=lambda n: labels.get(n, n))
    st.selectbox(
        "First stage", list(RETRIEVER_KINDS), key="h2h_retriever", format_func=RETRIEVER_LABELS.get
    )
    st.slider("Candidates retrieved", 10, 200, key="h2h_candidates")
    st.slider("Results compared", 1, 50, key="h2h_results")
    st.caption(f"Bi-encoder: {escape_markdown(view.encoder)} (change it on the Search page).")

ca, cb = st.columns(2)
a = spec_picker("a", "A", ca)
spec_picker("b", "B", cb)
st.text_input("Query", key="h2h_query", placeholder="Describe what you are looking for…")
examples = EXAMPLE_QUERIES.get(state.h2h_dataset, ())
if examples:
    cols = st.columns(len(examples))
    for col, text in zip(cols, examples, strict=True):
        col.button(
            text,
            on_click=lambda t=text: state.update(h2h_query=t),
            width="stretch",
            type="tertiary",
            key=f"h2h_example_{text}",
        )


def current_view() -> tuple[SearchSettings, RerankSpec]:
    """The view the widgets describe (settings with A as their second stage, and B),
    read from session state so a callback sees the same view the page draws."""
    view = state.h2h_view[0]
    dataset_changed = state.h2h_dataset != view.dataset
    shown = replace(
        view,
        dataset=state.h2h_dataset,
        query=state.h2h_query.strip(),
        retriever=state.h2h_retriever,
        candidates=int(state.h2h_candidates),
        results=int(state.h2h_results),
        embed_fields=() if dataset_changed else view.embed_fields,
        rerank_fields=() if dataset_changed else view.rerank_fields,
        id_field="" if dataset_changed else view.id_field,
        title_field="" if dataset_changed else view.title_field,
    )
    return with_spec(shown, spec_from_state("a")), spec_from_state("b")


settings, b = current_view()
state.h2h_view = (settings, b)
params = {**settings.to_params(), "a": a.to_string(), "b": b.to_string()}
manifest, shown_data = h2h_reproduce.manifest_of(settings, b)  # both sides' model files
params = state.h2h_params = h2h_reproduce.with_fingerprint(params, manifest)
if state.get("h2h_seed_params") is None:
    state.h2h_seed_params = params
elif params != state.h2h_seed_params:
    state.h2h_warnings = []
if st.query_params.to_dict() != params:
    st.query_params.from_dict(params)


# --- walkthrough builder (sidebar) --------------------------------------------------------
def add_step() -> None:
    """Append the current view as a step. A callback runs before the next run's body, so
    the click is kept even when another interaction interrupts that run early (a step
    added in the body was lost when the user changed the query right after clicking)."""
    shown, b_shown = current_view()
    if not shown.query:
        state.wt_add_error = "Type a query first: a step is a query and its two orders."
        return
    try:
        state.wt_draft = state.get("wt_draft", Walkthrough()).add(
            step_from_view(
                shown,
                b_shown.to_string(),
                state.get("wt_note", ""),
                fingerprint_of(shown, b_shown),  # B's model file is in it
                take_pin(shown),  # an explanation pinned below, for this query
            )
        )
        state.wt_added = len(state.wt_draft.steps)
        state.wt_note = ""  # the next step starts with an empty note
    except CoreError as exc:
        state.wt_add_error = str(exc)


def save_walkthrough() -> None:
    """Save the draft under the title typed and open a room on it: a viewer link and a
    presenter link with the room's secret token (a callback, like :func:`add_step`)."""
    title = (state.get("wt_title") or "Walkthrough").strip() or "Walkthrough"
    state.wt_draft = Walkthrough(title, state.get("wt_draft", Walkthrough()).steps)
    try:
        state.wt_saved = WalkthroughStore().put(state.wt_draft)
        room_id, token = open_store().create_room(state.wt_saved)
        headers = st.context.headers
        secure = str(st.context.url or "").startswith("https") or (
            headers.get("X-Forwarded-Proto", "") == "https"
        )
        base = public_base(headers.get("X-Forwarded-Host") or headers.get("Host"), secure=secure)
        state.wt_links = share_links(base, state.wt_saved, room_id, token)
    except (CoreError, OSError) as exc:
        state.wt_save_error = str(exc)


def clear_steps() -> None:
    state.wt_draft = Walkthrough()
    state.pop("wt_saved", None)
    state.pop("wt_links", None)


draft: Walkthrough = state.setdefault("wt_draft", Walkthrough())
with st.sidebar:
    st.header("Walkthrough")
    st.text_area("Note for this step (optional)", key="wt_note", height=80)
    st.button(
        "Add this view as a step",
        key="wt_add",
        disabled=not settings.query,
        help="The query, first stage, A, B and your note become the next step.",
        width="stretch",
        on_click=add_step,
    )
    if error := state.pop("wt_add_error", None):
        st.error(outside_text(error), icon="🚫")
    if added := state.pop("wt_added", None):
        st.success(f"Step {added} added.", icon="✅")
    for number, step in enumerate(draft.steps, start=1):
        st.caption(
            f"{number}. {escape_markdown(step.query)} — B: {escape_markdown(step.b_spec.label)}"
        )
    if draft.steps:
        st.text_input("Title", value=draft.title, key="wt_title")
        st.button(
            "Save and share",
            key="wt_save",
            type="primary",
            width="stretch",
            on_click=save_walkthrough,
        )
        if error := state.pop("wt_save_error", None):
            st.error(f"Could not save the walkthrough: {outside_text(error)}", icon="🚫")
        if state.get("wt_saved") and state.get("wt_links"):
            viewer, presenter = state.wt_links
            st.caption("Viewer link, for the room (copy with the button at its right):")
            st.code(viewer, language=None, wrap_lines=True)
            st.caption("Presenter link: keep it to yourself; it moves the room and reveals.")
            st.code(presenter, language=None, wrap_lines=True)
            st.link_button("Present it", presenter, icon=":material/slideshow:", width="stretch")
        st.download_button(
            "Export walkthrough (JSON)",
            draft.to_json(),
            "walkthrough.json",
            "application/json",
            on_click="ignore",
            width="stretch",
        )
        st.button("Clear steps", key="wt_clear", width="stretch", on_click=clear_steps)
    imported = st.file_uploader("Import walkthrough (JSON)", type=["json"], key="wt_import")
    if imported is not None and state.get("wt_imported") != imported.file_id:
        try:
            state.wt_draft = parse_walkthrough(imported.getvalue())
            state.wt_imported = imported.file_id
            state.pop("wt_saved", None)
            state.pop("wt_links", None)
            st.rerun()
        except CoreError as exc:
            st.error(error_text(exc), icon="🚫")

# --- run ----------------------------------------------------------------------------------
h2h_reproduce.drift_warning(manifest, shown_data)  # one line if the link's data changed
if not settings.query:
    st.info("Type a query or pick an example to compare A and B on it.")
    st.stop()
try:
    h2h = run_head_to_head(settings, b)
except CoreError as exc:
    st.error(error_text(exc), icon="🚫")
    st.stop()

show_figures(h2h)
show_tables(h2h)
show_charts(h2h)
opened = h2h_explain_panel(h2h)  # why A and why B scored one document so
st.download_button(
    "Export report (HTML)",
    with_manifest(head_to_head_report(h2h, state.get("wt_note", ""), opened), manifest),
    "head-to-head.html",
    "text/html",
    on_click="ignore",
    key="h2h_report",
    help="One self-contained file: settings, both lists, movement and score charts, "
    "timings and your note. Opens offline and prints well.",
)
st.caption("Share this comparison: copy the address bar. A, B and the query are in the link.")
h2h_reproduce.panel(manifest, b)  # what both sides were computed from, and as code


# Last, not first: a rerun before the script has drawn would drop a pressed button.
if __name__ == "__main__":  # a deep link on a fresh plain server (serve.py)
    from serve import ensure_navigation

    ensure_navigation()
