"""A check of passage reading that cannot be faked: bury the plot past token 512.

Every movie's overview gets the same long, neutral filler put in front of it, so the
text the reranker reads first is the title and filler, and the plot starts past what a
512-token cross-encoder can see. Reranking the same candidates three ways then shows
what passage reading is for:

* the original records (short, read whole): the reference top k;
* the long records, first passage: the plot is never read, so the order comes from the
  titles alone and the reference top k is mostly lost;
* the long records, best passage (MaxP): the window holding the plot decides, and the
  reference top k comes back.

The candidates are the same ids for all three (retrieved once, from the original
records), so only the reranker's reading differs. ``python -m core bench --long-docs``
prints the figure; a test runs it on a few queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.data.documents import Dataset, make_dataset, rerank_text
from core.models.base import Encoder, RerankDoc, Reranker
from core.models.cross_encoders import reranker_tokenizer
from core.search.index import build_index
from core.search.passages import PassageSettings, rank_passages

NEUTRAL_SENTENCES = (
    "This entry is reproduced from a general catalogue as it was received.",
    "The catalogue lists records in the order in which they were filed.",
    "Each record was checked for spelling and layout, not for content.",
    "Dates, names and numbers appear as they did on the original cards.",
    "Nothing in this note describes the item itself or says anything about it.",
    "The note is repeated on every record so that all records look alike.",
)


def neutral_filler(tokens: int, tokenizer: Any) -> str:
    """Neutral sentences (the same for every record) of at least ``tokens`` tokens."""
    parts: list[str] = []
    i = 0
    while len(tokenizer.encode(" ".join(parts), add_special_tokens=False).ids) < tokens:
        parts.append(NEUTRAL_SENTENCES[i % len(NEUTRAL_SENTENCES)])
        i += 1
    return " ".join(parts)


def with_filler(dataset: Dataset, field: str, filler: str) -> Dataset:
    """A copy of ``dataset`` whose ``field`` starts with ``filler``; same ids and fields."""
    records = [
        {**record, "_lid": doc_id, field: f"{filler} {record.get(field) or ''}".strip()}
        for doc_id, record in zip(dataset.ids, dataset.records, strict=True)
    ]
    built = make_dataset(
        f"{dataset.name}-long",
        records,
        id_field="_lid",
        title_field=dataset.title_field,
        embed_fields=dataset.default_embed_fields,
        rerank_fields=dataset.default_rerank_fields,
        source=f"{dataset.source} with {field} behind a neutral filler",
    )
    return built


@dataclass(frozen=True)
class LongDocQuery:
    """One query of the check: the reference top k and each reading's top k.

    ``readings`` maps a label (``"first"``, or a passage setting's label) to its top k
    ids; ``passages`` the same labels to mean passages scored per candidate.
    """

    query: str
    reference: tuple[str, ...]
    readings: dict[str, tuple[str, ...]]
    passages: dict[str, float]

    def overlap(self, label: str) -> int:
        """Reference top-k ids found in the top k of reading ``label``."""
        return len(set(self.reference) & set(self.readings[label]))


def long_doc_check(
    dataset: Dataset,
    queries: Sequence[str],
    *,
    encoder: Encoder,
    reranker: Reranker,
    candidates: int = 30,
    k: int = 10,
    field: str = "overview",
    filler_tokens: int = 540,
    settings: Sequence[PassageSettings] = (PassageSettings("first"), PassageSettings("max")),
) -> list[LongDocQuery]:
    """Run the check on ``queries`` (see the module doc), reading the long records
    once per entry of ``settings``."""
    fields = dataset.check_fields(dataset.default_rerank_fields, "rerank")
    filler = neutral_filler(filler_tokens, reranker_tokenizer(reranker))
    long = with_filler(dataset, field, filler)
    index = build_index(dataset, encoder, dataset.default_embed_fields).index
    out = []
    for query in queries:
        hits = index.search(encoder.encode([query], kind="query")[0], candidates)
        ids = [h.id for h in hits]
        short_docs = [RerankDoc(i, rerank_text(dataset.record(i), fields)) for i in ids]
        long_docs = [RerankDoc(i, rerank_text(long.record(i), fields)) for i in ids]
        reference = [r.id for r in reranker.rank(query, short_docs)][:k]
        readings: dict[str, tuple[str, ...]] = {}
        passages: dict[str, float] = {}
        for setting in settings:
            label = "first" if setting.aggregate == "first" else setting.label()
            ranked, reads = rank_passages(reranker, query, long_docs, setting)
            readings[label] = tuple(r.id for r in ranked[:k])
            passages[label] = sum(r.num_passages for r in reads.values()) / max(1, len(reads))
        out.append(LongDocQuery(query, tuple(reference), readings, passages))
    return out


def format_long_doc_check(rows: Sequence[LongDocQuery], k: int = 10) -> str:
    """A plain table: per query and reading, how many of the reference top k it kept."""
    if not rows:
        return "no queries"
    labels = list(rows[0].readings)
    lines = [f"overlap@{k} with the top {k} of the original (short) records"]
    lines.append(f"{'query':<42}" + "".join(f"{label[:26]:>28}" for label in labels))
    for r in rows:
        lines.append(f"{r.query[:40]:<42}" + "".join(f"{r.overlap(x):>25}/{k:<2}" for x in labels))
    n = len(rows)
    lines.append(
        f"{'mean':<42}" + "".join(f"{sum(r.overlap(x) for r in rows) / n:>28.1f}" for x in labels)
    )
    lines.append(
        f"{'passages per candidate':<42}"
        + "".join(f"{sum(r.passages[x] for r in rows) / n:>28.1f}" for x in labels)
    )
    return "\n".join(lines)
