"""Finding and ordering documents for one query.

The vector index, the first-stage retrievers (dense, BM25, hybrid), score fusion, the
on-disk cross-encoder score store, and the pipeline that runs both stages into one
:class:`~core.search.pipeline.SearchResult`.

May import: :mod:`core.models` and :mod:`core.data`.
"""
