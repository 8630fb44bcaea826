"""Documents and where they come from.

The :class:`~core.data.documents.Dataset` type, the built-in datasets (movies,
sample), uploads (``uploads``: parsing and field detection; ``upload_quality``: the
dataset and its quality report; ``upload_store``: the content-addressed store) and
labelled sets (BEIR, judgments CSV).

May import: :mod:`core.models` (which holds the errors, paths and worker pool).
"""
