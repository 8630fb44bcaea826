"""Argument helpers the command modules share: list types, the fusion and passage
options, progress lines, and opening any named dataset."""

from __future__ import annotations

import argparse
import sys


def csv_list(value: str) -> list[str]:
    """Comma-separated values as a list, blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def int_list(value: str) -> list[int]:
    """Comma-separated whole numbers (an argparse type)."""
    try:
        return [int(part) for part in csv_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers like 5,10, not {value!r}"
        ) from None


def add_fusion_arguments(parser: argparse.ArgumentParser) -> None:
    """``--fusion-weight`` and ``--fusion``."""
    parser.add_argument(
        "--fusion-weight",
        type=float,
        default=1.0,
        help="cross-encoder weight in the fused score, 0-1 (1: pure rerank, the default)",
    )
    parser.add_argument(
        "--fusion", choices=["linear", "rrf"], default="linear", help="how scores are fused"
    )


def add_passage_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """How long documents are read: ``--passages`` (default ``default``), ``--window``,
    ``--stride``, ``--max-passages``, ``--max-query-passages``, ``--dense-passages``."""
    from core.search.passages import AGGREGATES, DEFAULT_MAX_PER_DOC, DEFAULT_MAX_PER_QUERY

    parser.add_argument(
        "--passages",
        choices=list(AGGREGATES),
        default=default,
        help="how a long text is read: first (what fits of the start), max (best "
        "passage, MaxP), top2 (mean of the two best); default %(default)s",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="passage length in tokens (default: all that fits beside the query)",
    )
    parser.add_argument(
        "--stride", type=int, default=None, help="tokens between passage starts (default: half)"
    )
    parser.add_argument(
        "--max-passages",
        type=int,
        default=DEFAULT_MAX_PER_DOC,
        help="passages read per document, the first ones (default %(default)s)",
    )
    parser.add_argument(
        "--max-query-passages",
        type=int,
        default=DEFAULT_MAX_PER_QUERY,
        help="refuse a query needing more (query, passage) pairs (default %(default)s)",
    )
    parser.add_argument(
        "--dense-passages",
        action="store_true",
        help="first stage: embed long documents as one vector per passage (the bi-encoder's "
        "own tokens and limit, same --window/--stride/--max-passages) and retrieve each "
        "document by its best passage; the corpus index costs one vector per passage",
    )


def passage_settings(args: argparse.Namespace):
    """The checked passage settings the arguments name."""
    from core.search.passages import PassageSettings

    return PassageSettings(
        aggregate=args.passages,
        window=args.window,
        stride=args.stride,
        max_per_doc=args.max_passages,
        max_per_query=args.max_query_passages,
    ).checked()


def dense_passage_settings(args: argparse.Namespace):
    """Dense-passage settings (``--dense-passages``), None without the flag; refused for
    a first stage that embeds nothing."""
    from core.models.errors import SettingsError
    from core.search.passages import PassageSettings

    if not args.dense_passages:
        return None
    kinds = args.retriever if isinstance(args.retriever, list) else [args.retriever or "dense"]
    if kinds and all(k == "bm25" for k in kinds):
        raise SettingsError("--dense-passages needs a dense or hybrid first stage, not bm25")
    return PassageSettings(
        "max", window=args.window, stride=args.stride, max_per_doc=args.max_passages
    ).checked()


def evaluate_passages(args: argparse.Namespace):
    """Passage settings for ``evaluate``; None for ``first``, which then sends every
    document whole as before (the same pairs, so the same scores and cache entries)."""
    settings = passage_settings(args)
    return None if settings.aggregate == "first" else settings


def encoding_progress(done: int, total: int) -> None:
    """One progress line on stderr while a corpus is encoded."""
    print(f"\rencoding corpus {done}/{total}", end="" if done < total else "\n", file=sys.stderr)


def evaluate_progress(done: int, total: int, stage: str) -> None:
    """One progress line on stderr per evaluation stage."""
    end = "\n" if done >= total else ""
    print(f"\r{stage} {done}/{total}\033[K", end=end, file=sys.stderr)


def load_any_dataset(name: str, id_field: str | None = None):
    """movies, sample, a JSON file, a stored upload (``upload-<hex>``) or a Milvus
    collection (``milvus:...``) as a :class:`~core.data.documents.Dataset`."""
    from core.data.datasets import load_dataset, load_json_dataset
    from core.data.upload_quality import build_upload_dataset
    from core.data.upload_store import UploadStore, is_upload_id
    from core.data.uploads import parse_upload
    from core.search.milvus import open_collection
    from core.search.milvus_reference import is_milvus_reference

    if is_milvus_reference(name):
        return open_collection(name).dataset()
    if is_upload_id(name):
        data, filename = UploadStore().get(name)
        dataset, _ = build_upload_dataset(
            parse_upload(data, filename), id_field=id_field, name=name
        )
        return dataset
    if id_field and name not in ("movies", "sample"):
        return load_json_dataset(name, id_field=id_field)
    return load_dataset(name)
