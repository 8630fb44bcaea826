"""Entry point: `streamlit run app.py`. Builds the navigation over the page scripts."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Rerank workbench", page_icon="🔎", layout="wide")

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
            "pages/evaluate.py", title="Evaluate", icon=":material/analytics:", url_path="evaluate"
        ),
        st.Page("pages/about.py", title="About", icon=":material/info:", url_path="about"),
    ]
)
navigation.run()
