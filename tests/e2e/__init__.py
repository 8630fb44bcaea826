"""Browser (Playwright) tests against a running Streamlit server."""
