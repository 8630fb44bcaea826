"""Finding and ordering documents for one query.

The vector index, the first-stage retrievers (dense, BM25, hybrid), score fusion, the
on-disk cross-encoder score store, and the pipeline that runs both stages into one
:class:`~core.search.pipeline.SearchResult`; and the count of searches visitors are
waiting for (:mod:`core.search.activity`), which background work yields to.

May import: :mod:`core.models` and :mod:`core.data`.
"""
