"""Streamlit building blocks of the page scripts in ``pages/``: process-wide caches,
sidebars, panels and result views. Not pages themselves: ``st.navigation`` lists the
scripts in ``pages/`` only, and Streamlit's pages-directory mode reads no subfolder."""
