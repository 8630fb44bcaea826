"""A SciFact subset the slow tests share: the first 20 judged test queries, their relevant
docs and 500 others (520-odd abstracts, a tenth of the corpus), in memory or written as a
BEIR folder. Dense retrieval over it embeds a tenth of what the full corpus needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SCIFACT

from core.data.beir import BeirDataset, load_beir
from core.quality.runs import sorted_query_ids

SUBSET_QUERIES = 20
SUBSET_OTHER_DOCS = 500


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def write_beir(
    folder: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple[str, str, int]]
) -> Path:
    """Write a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(_jsonl(corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text(_jsonl(queries), encoding="utf-8")
    (folder / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q, d, r in qrels]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def scifact_subset() -> BeirDataset:
    """The first 20 judged SciFact test queries, their relevant docs and 500 others.

    The others are the first 500 of the rest of the corpus in its file order.
    """
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact is not available at {SCIFACT}")
    full = load_beir(SCIFACT)
    qids = sorted_query_ids(list(full.qrels))[:SUBSET_QUERIES]
    judged = {doc_id for qid in qids for doc_id in full.qrels[qid]}
    others = [doc_id for doc_id in full.corpus if doc_id not in judged][:SUBSET_OTHER_DOCS]
    keep = judged | set(others)
    return BeirDataset(
        name="scifact-subset",
        split="test",
        corpus={doc_id: doc for doc_id, doc in full.corpus.items() if doc_id in keep},
        queries={qid: full.queries[qid] for qid in qids},
        qrels={qid: full.qrels[qid] for qid in qids},
    )


def write_subset(folder: Path, subset: BeirDataset | None = None) -> Path:
    """The subset written as a BEIR folder at ``folder`` (SciFact's own record layout)."""
    subset = subset or scifact_subset()
    corpus = [{"_id": doc_id, **doc} for doc_id, doc in subset.corpus.items()]
    queries = [{"_id": qid, "text": text} for qid, text in subset.queries.items()]
    qrels = [
        (qid, doc_id, rel) for qid, docs in subset.qrels.items() for doc_id, rel in docs.items()
    ]
    return write_beir(folder, corpus, queries, qrels)
