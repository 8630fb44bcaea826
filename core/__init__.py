"""The rerank workbench's library: the retrieve-then-rerank pipeline, importable and
tested without Streamlit.

Layers, lowest first; a package imports only the ones before it:
``models`` <- ``data`` <- ``search`` <- ``quality`` <- ``present`` <- ``cli`` / ``bench``
/ the pages. ``models`` also holds the errors, paths and worker pool every layer uses.
"""
