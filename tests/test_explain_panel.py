"""The Search details view's explain panel, run with Streamlit's AppTest on the real models."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest


def _panel_app() -> None:
    import streamlit as st

    from core.data.datasets import load_movies
    from core.models.registry import load_encoder, load_reranker
    from core.search.pipeline import search_with_rerank
    from pages.widgets.explain_panel import explain_panel

    if "result" not in st.session_state:
        st.session_state.result = search_with_rerank(
            load_movies(),
            "a heist in a big city",
            encoder=load_encoder(),
            reranker=load_reranker(),
            num_candidates=10,
            num_results=5,
        )
    result = st.session_state.result
    explain_panel(result, result.top_final[0])


@pytest.mark.usefixtures("movies_index")
def test_explain_button_shows_heat_map_and_reasons() -> None:
    at = AppTest.from_function(_panel_app, default_timeout=240)
    at.run()
    assert not at.exception
    at.button(key="explain_go").click().run()
    assert not at.exception, at.exception
    markdown = " ".join(m.value for m in at.markdown)
    assert "Helped" in markdown and "Query words" in markdown
    assert "retrieval matched on" in markdown
    html = [e for e in at.get("html")]
    assert html, "the heat map is drawn with st.html"
    at.button(key="explain_contrast_go").click().run()
    assert not at.exception
    assert any("swap test" in c.value for c in at.code)
