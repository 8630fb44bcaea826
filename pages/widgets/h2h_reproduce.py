"""The Head to head page's manifest: what both sides were computed from (the data, the
encoder, A's and B's model files), the fingerprint its link carries (``fp``), the one line
a link made on other data or model files shows (drift), and the "Reproducibility"
section with its downloads. The texts come from core.present (tested without Streamlit).

Functions only: nothing here draws on import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import streamlit as st

from core.models.errors import CoreError
from core.present.drift import FINGERPRINT_PARAM, drift_line, link_fingerprint
from core.present.manifest import Manifest
from core.present.reproduce import api_script
from core.present.views import SearchSettings, escape_markdown
from core.quality.headtohead import RerankSpec
from pages.widgets.reproduce_panel import manifest_download

MANIFESTS_KEPT = 8


def remember_link(params: Mapping[str, str], dataset: str) -> None:
    """When a link re-seeds the page: keep the fingerprint it carries, with its dataset."""
    st.session_state.h2h_link_fp = (link_fingerprint(params), dataset)


def manifest_of(settings: SearchSettings, b: RerankSpec) -> tuple[Manifest | None, Any]:
    """The manifest of the head-to-head ``settings`` (A) vs ``b`` describe, and the
    dataset it names (made once per view and data in the session); (None, None) when the
    dataset cannot be loaded here."""
    from pages.widgets.common import load_named_dataset
    from pages.widgets.reproduce_panel import view_manifest

    try:
        loaded = load_named_dataset(settings.dataset, settings.id_field, settings.title_field)
    except (CoreError, OSError):
        return None, None
    kept: dict = st.session_state.setdefault("h2h_manifests", {})
    key = (settings, b, loaded.dataset.content_hash)
    if key not in kept:
        kept[key] = view_manifest(settings, loaded, b)
        while len(kept) > MANIFESTS_KEPT:
            kept.pop(next(iter(kept)))
    return kept[key], loaded.dataset


def with_fingerprint(params: dict[str, str], manifest: Manifest | None) -> dict[str, str]:
    """The page's URL parameters plus its fingerprint (``fp``), so a link names its data
    and both sides' model files."""
    return {**params, FINGERPRINT_PARAM: manifest.fingerprint} if manifest else params


def drift_warning(manifest: Manifest | None, dataset: Any) -> str | None:
    """Show the line saying the opened link was made on other data or model files (while
    its dataset is compared); the comparison is shown all the same."""
    state = st.session_state
    linked, linked_dataset = state.get("h2h_link_fp") or (None, None)
    if manifest is None or not linked or manifest.settings.get("dataset") != linked_dataset:
        return None
    if state.get("h2h_drift_for") != linked:
        state.h2h_drift_for = linked
        state.h2h_drift_line = drift_line(linked, manifest, dataset)
    if state.h2h_drift_line:
        st.warning(escape_markdown(state.h2h_drift_line), icon="⚠️")
    return state.h2h_drift_line


def side_manifest(manifest: Manifest, b: RerankSpec) -> Manifest:
    """The manifest as the Search view with B as its second stage (same candidates, B's
    order): what B's "Reproduce in Python" script recomputes."""
    settings = {
        **manifest.settings,
        "reranker": b.reranker,
        "fusion_weight": b.fusion_weight,
        "fusion": b.fusion,
    }
    return replace(manifest, settings=settings)


def panel(manifest: Manifest | None, b: RerankSpec) -> None:
    """The Reproducibility expander: the manifest, a script per side, and its JSON."""
    if manifest is None:
        return
    with st.expander("Reproducibility"):
        st.caption(
            "What both sides were computed from: the data's sha256 (every id and record), "
            "the encoder's, A's and B's model files (sha256, runtime, max length), the "
            "settings and package versions. The link carries the fingerprint "
            f"({manifest.fingerprint}): opened where the data or a model file changed, it "
            "says so."
        )
        settings = json.dumps(manifest.settings, ensure_ascii=False)
        st.code(
            "\n".join([*manifest.lines(), f"settings: {settings}"]),
            language=None,
            wrap_lines=True,
        )
        if line := st.session_state.get("h2h_drift_line"):
            st.warning(escape_markdown(line), icon="⚠️")
        row = st.container(horizontal=True)
        row.download_button(
            "Reproduce A in Python",
            api_script(manifest),
            "reproduce_a.py",
            "text/x-python",
            on_click="ignore",
            key="h2h_reproduce_a",
            help="A short script using core's public API (core.api.search): the candidates "
            "and A's order, with every score.",
        )
        row.download_button(
            "Reproduce B in Python",
            api_script(side_manifest(manifest, b)),
            "reproduce_b.py",
            "text/x-python",
            on_click="ignore",
            key="h2h_reproduce_b",
            help="The same candidates with B as the second stage (core.api.search).",
        )
        manifest_download(row, manifest, key="h2h_manifest_json")
