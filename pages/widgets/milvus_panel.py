"""The sidebar box that opens a Milvus collection as the dataset and first stage."""

from __future__ import annotations

import streamlit as st

from core.models.errors import CoreError
from core.present.views import error_text
from core.search.milvus_reference import normalize_reference
from pages.widgets.actions import action_button, running_action


def milvus_box() -> str | None:
    """Offer a Milvus reference; return it (canonical) once one is given and valid."""
    with st.sidebar.expander("Milvus collection"):
        st.caption(
            "Search a collection in Milvus (exported with `python -m core milvus export`): "
            "`milvus:<collection>@./movies.db` (Milvus Lite file), "
            "`milvus://host:19530/<collection>` (server), or `milvus:<collection>` "
            "(the server in RERANK_MILVUS_URI, with RERANK_MILVUS_TOKEN). A share link may "
            "name only the operator's Milvus or one in RERANK_MILVUS_ALLOWED_URIS."
        )
        text = st.text_input(
            "Collection", key="milvus_input", placeholder="milvus:movies@./movies.db"
        )
        if not action_button("Open collection", "milvus_open", disabled=not text.strip()):
            return None
        with running_action("milvus_open"):
            try:
                return normalize_reference(text)
            except CoreError as exc:
                st.error(error_text(exc), icon="🚫")
                return None
