"""What the pages show, without Streamlit.

Tables, labels, summaries and Altair charts built from results and reports, so the
page scripts only lay them out and everything shown is tested without a browser.

May import: every lower package (models, data, search, quality); never Streamlit.
"""
