"""Entry point: `python serve.py` (what `make app` runs) or `streamlit run app.py`.

Builds the navigation over the page scripts and starts the server's warm-up (see
serve.py: deep links on a fresh server, warm start)."""

from __future__ import annotations

import streamlit as st

from core.search.activity import visitor_search
from pages.widgets.reconnect import install_reconnect_rerun
from serve import WAITING_PAGES, show_warmup, start_warmup

st.set_page_config(page_title="Rerank workbench", page_icon="🔎", layout="wide")
warmup = start_warmup()
install_reconnect_rerun()

navigation = st.navigation(
    [
        st.Page("pages/search.py", title="Search", icon=":material/search:", default=True),
        st.Page(
            "pages/diagnostics.py",
            title="Ceiling & fields",
            icon=":material/troubleshoot:",
            url_path="diagnostics",
        ),
        st.Page(
            "pages/compare.py",
            title="Head to head",
            icon=":material/compare_arrows:",
            url_path="compare",
        ),
        st.Page(
            "pages/walkthrough.py",
            title="Walkthrough",
            icon=":material/slideshow:",
            url_path="walkthrough",
        ),
        st.Page(
            "pages/evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"
        ),
        st.Page("pages/about.py", title="About", icon=":material/info:", url_path="about"),
    ]
)
# A shared walkthrough link is the app's root with ?walkthrough=<id>: it opens the
# Walkthrough page (a root link also works on a server no session has visited yet).
if navigation.url_path == "" and st.query_params.get("walkthrough"):
    st.switch_page("pages/walkthrough.py", query_params=st.query_params.to_dict())
if navigation.title in WAITING_PAGES:
    show_warmup(warmup)
# A page being drawn is a visitor waiting too (a first page load imports and lays out
# for seconds): the warm-up's example scoring waits for it as it does for searches.
with visitor_search():
    navigation.run()
