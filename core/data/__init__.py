"""Documents and where they come from.

The :class:`~core.data.documents.Dataset` type, the built-in datasets (movies,
sample), uploads (parsing, field detection, the content-addressed store, the quality
report) and labelled sets (BEIR, judgments CSV).

May import: :mod:`core.models` and the top-level helpers (errors, paths, parallel).
"""
