"""The Search page's "Reproducibility" section: what the view was computed from (its
manifest), "Reproduce in Python" downloads, and the one line a link made on other data or
model files shows (drift). The texts come from core.present (tested without Streamlit).

Functions only: nothing here draws on import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from core.data.documents import Corpus
from core.models.errors import CoreError
from core.present.drift import FINGERPRINT_PARAM, drift_line, link_fingerprint
from core.present.manifest import Manifest, head_to_head_manifest, search_manifest
from core.present.reproduce import (
    api_script,
    curl_script,
    seed_refusal,
    seed_script,
    seed_source,
)
from core.present.views import SearchSettings, escape_markdown
from core.search.pipeline import SearchResult


def remember_link(params: Mapping[str, str], dataset: str) -> None:
    """On a session's first run: keep the fingerprint the opened link carries."""
    st.session_state.link_fp = (link_fingerprint(params), dataset)


def view_manifest(settings: SearchSettings, loaded: Any, b: Any = None) -> Manifest | None:
    """The manifest of the view ``settings`` describe on ``loaded`` (a
    :class:`pages.widgets.common.LoadedDataset`), or of its head-to-head against ``b``
    (a RerankSpec: B's model file is in it); None if it cannot be made."""
    upload = loaded.report is not None
    label = dataset_label(settings.dataset, loaded.label, upload)
    try:
        if b is not None:
            return head_to_head_manifest(settings, b, loaded.dataset, label=label)
        return search_manifest(settings, loaded.dataset, label=label)
    except (CoreError, OSError):
        return None


def fingerprint_of(settings: SearchSettings, b: Any = None) -> str | None:
    """The fingerprint of the view ``settings`` describe, with B's model when ``b`` is
    given (a walkthrough step records it), or None when its dataset cannot be loaded."""
    manifest = fingerprint_manifest(settings, b)
    return manifest.fingerprint if manifest else None


def with_fingerprint(settings: SearchSettings, manifest: Manifest | None) -> dict[str, str]:
    """The view's URL parameters plus its fingerprint (``fp``), so a link names its data."""
    params = settings.to_params()
    return {**params, FINGERPRINT_PARAM: manifest.fingerprint} if manifest else params


def drift_warning(manifest: Manifest | None, dataset: Corpus) -> str | None:
    """Show, above the view, the line saying the opened link was made on other data or
    model files (while its dataset is shown); the view is shown all the same."""
    state = st.session_state
    linked, linked_dataset = state.get("link_fp") or (None, None)
    if manifest is None or not linked or manifest.settings.get("dataset") != linked_dataset:
        return None
    if state.get("drift_for") != linked:
        state.drift_for, state.drift_line = linked, drift_line(linked, manifest, dataset)
    if state.drift_line:
        st.warning(escape_markdown(state.drift_line), icon="⚠️")
    return state.drift_line


def dataset_label(dataset_id: str, loaded_label: str, is_upload: bool) -> str:
    """The dataset's name in manifests and drift lines: an upload's file name, else its id."""
    return loaded_label.rsplit(" (", 1)[0] if is_upload else dataset_id


def panel(manifest: Manifest | None, result: SearchResult, dataset: Corpus) -> None:
    """The Reproducibility expander: manifest, script downloads and the drift line."""
    if manifest is None:
        return
    with st.expander("Reproducibility"):
        st.caption(
            "What this view was computed from: the data's sha256 (every id and record), "
            "each model file's sha256 with its runtime and max length, the package "
            f"versions. The link carries its fingerprint ({manifest.fingerprint}): opened "
            "where the data or a model file changed, it says so."
        )
        st.code("\n".join(manifest.lines()), language=None, wrap_lines=True)
        if line := st.session_state.get("drift_line"):
            st.warning(escape_markdown(line), icon="⚠️")
        row = st.container(horizontal=True)
        row.download_button(
            "Reproduce in Python",
            api_script(manifest),
            "reproduce_search.py",
            "text/x-python",
            on_click="ignore",
            help="A short script using core's public API (core.api): run from a checkout "
            "of the workbench, it prints the same ids and scores as this view.",
        )
        source = _seed_source(dataset, manifest.settings["dataset"])
        if source is not None and seed_refusal(manifest) is None:
            row.download_button(
                "Reproduce with sentence-transformers only",
                seed_script(manifest, result, source),
                "reproduce_seed_stack.py",
                "text/x-python",
                on_click="ignore",
                help="SentenceTransformer + CrossEncoder (fp32) and numpy; prints where its "
                "scores differ from this view's INT8 reranker, and by how much.",
            )
        if curl := curl_script(manifest, result):
            row.download_button(
                "Together request (curl)",
                curl,
                "rerank_together.sh",
                "text/x-shellscript",
                on_click="ignore",
                help="The rerank call as curl; the key is read from TOGETHER_API_KEY.",
            )
        manifest_download(row, manifest)


def manifest_download(row: Any, manifest: Manifest, key: str | None = None) -> None:
    """The "Manifest (JSON)" download of ``manifest`` in ``row`` (a column or st)."""
    row.download_button(
        "Manifest (JSON)",
        json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False),
        "manifest.json",
        "application/json",
        on_click="ignore",
        key=key,
    )


def _seed_source(dataset: Corpus, name: str):
    try:
        return seed_source(dataset, name)
    except (CoreError, OSError):
        return None


def walkthrough_drift_warning(steps: Sequence[Any]) -> str | None:
    """One line over a walkthrough naming the steps (``Step`` objects, whose params carry
    the ``fp`` of the view each was made on) that no longer reproduce here; None if all do."""
    from core.present.drift import walkthrough_drift

    now = [fingerprint_manifest(step.settings, step.b_spec) for step in steps]
    line = walkthrough_drift([step.params for step in steps], now)
    if line:
        st.warning(escape_markdown(line), icon="⚠️")
    return line


def fingerprint_manifest(settings: SearchSettings, b: Any = None) -> Manifest | None:
    """The manifest of the view ``settings`` describe (its head-to-head against ``b``
    when given), or None when its dataset cannot be loaded here."""
    from pages.widgets.common import load_named_dataset

    try:
        loaded = load_named_dataset(settings.dataset, settings.id_field, settings.title_field)
    except (CoreError, OSError):
        return None
    return view_manifest(settings, loaded, b)
