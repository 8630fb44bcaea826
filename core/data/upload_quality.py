"""Your own data, step 2: the dataset built from an upload's chosen fields, and the
data-quality report that says what was kept, dropped or will be truncated.

Token counts are the estimate of :func:`core.data.uploads.estimate_tokens`; see
:mod:`core.data.uploads` for how fields are detected and suggested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from core.data.documents import Dataset, embed_text, make_dataset, rerank_text, value_to_text
from core.data.uploads import (
    DEFAULT_MAX_FIELD_CHARS,
    ENCODER_MAX_TOKENS,
    EXAMPLES,
    RERANKER_MAX_TOKENS,
    FieldQuality,
    IdCandidate,
    ParsedUpload,
    UploadError,
    UploadFormat,
    estimate_tokens,
    short_list,
)
from core.models.errors import FieldError

ROW_POSITION: Final = ""
"""Pass as ``id_field`` to :func:`build_upload_dataset` to use row positions as ids."""


@dataclass(frozen=True)
class QualityReport:
    """Data quality of an upload for the fields chosen to embed and rerank.

    ``dropped`` records had no text in any embed field; :func:`build_upload_dataset`
    leaves them out (``dropped_examples`` are their 0-based positions in the file).
    ``embed_over_encoder`` and ``rerank_over_reranker`` count records whose combined
    embed / rerank text is estimated to exceed the model limits (see the module
    docstring for the estimate).
    """

    filename: str
    format: UploadFormat
    records: int
    kept: int
    dropped: int
    dropped_examples: tuple[int, ...]
    embed_fields: tuple[str, ...]
    rerank_fields: tuple[str, ...]
    fields: tuple[FieldQuality, ...]
    id_candidates: tuple[IdCandidate, ...]
    embed_over_encoder: int
    rerank_over_reranker: int
    reranker_max_tokens: int = RERANKER_MAX_TOKENS
    encoder_max_tokens: int = ENCODER_MAX_TOKENS
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS

    @property
    def cut_fields(self) -> dict[str, int]:
        """Field name -> records whose value was cut to :attr:`max_field_chars`."""
        return {q.name: q.cut for q in self.fields if q.cut}

    def for_field(self, name: str) -> FieldQuality:
        """The quality row of field ``name``."""
        for row in self.fields:
            if row.name == name:
                return row
        raise FieldError(
            f"unknown field '{name}'; fields: {', '.join(f.name for f in self.fields)}"
        )

    def to_rows(self) -> list[dict[str, Any]]:
        """One plain dict per field, ready for a table (``st.dataframe``, pandas)."""
        rows = []
        for q in self.fields:
            roles = [
                role
                for role, chosen in (
                    ("embed", q.name in self.embed_fields),
                    ("rerank", q.name in self.rerank_fields),
                )
                if chosen
            ]
            rows.append(
                {
                    "field": q.name,
                    "role": ", ".join(roles),
                    "text": q.is_text,
                    "fill rate": round(q.fill_rate, 4),
                    "filled": q.filled,
                    "missing": q.missing,
                    "non-string": q.non_string,
                    "distinct": q.distinct,
                    "mean chars": round(q.mean_chars, 1),
                    "max est. tokens": q.max_tokens,
                    f"over {self.reranker_max_tokens} tokens (reranker)": q.over_reranker,
                    f"over {self.encoder_max_tokens} tokens (embedder)": q.over_encoder,
                    f"cut at {self.max_field_chars:,} chars": q.cut,
                }
            )
        return rows

    def notes(self) -> list[str]:
        """Short sentences about what needs attention (empty when nothing does)."""
        out = []
        for name, count in self.cut_fields.items():
            out.append(
                f"'{name}' is longer than {self.max_field_chars:,} characters in {count:,} "
                f"record(s); those values were cut to {self.max_field_chars:,} characters "
                "(RERANK_MAX_FIELD_CHARS)"
            )
        if self.dropped:
            out.append(
                f"{self.dropped:,} of {self.records:,} records have no text in the embed "
                f"fields ({', '.join(self.embed_fields)}) and were left out"
            )
        for cand in self.id_candidates:
            if cand.duplicates:
                examples = ", ".join(repr(x) for x in cand.duplicate_examples)
                out.append(
                    f"'{cand.name}' repeats {cand.duplicates:,} value(s) (e.g. {examples}); "
                    "it cannot be the id field"
                )
            elif cand.missing or cand.non_scalar:
                out.append(
                    f"'{cand.name}' is missing or not a single value in "
                    f"{cand.missing + cand.non_scalar:,} record(s); it cannot be the id field"
                )
        if self.embed_over_encoder:
            out.append(
                f"{self.embed_over_encoder:,} records' embed text is longer than about "
                f"{self.encoder_max_tokens} tokens; the embedder reads only the start"
            )
        if self.rerank_over_reranker:
            out.append(
                f"{self.rerank_over_reranker:,} records' rerank text is longer than about "
                f"{self.reranker_max_tokens} tokens; the reranker reads only the start"
            )
        return out


# --- building ----------------------------------------------------------------------------


def _check_known(parsed: ParsedUpload, fields: Sequence[str], role: str) -> tuple[str, ...]:
    chosen = tuple(fields)
    if not chosen:
        raise FieldError(f"choose at least one field to {role}")
    unknown = [f for f in chosen if f not in parsed.fields]
    if unknown:
        raise FieldError(
            f"unknown field(s) to {role}: {', '.join(unknown)}; "
            f"{parsed.filename} has: {short_list(parsed.fields, 20)}"
        )
    return chosen


def quality_report(
    parsed: ParsedUpload,
    *,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
) -> QualityReport:
    """The :class:`QualityReport` of an upload for the given (or suggested) fields."""
    return _report(parsed, embed_fields, rerank_fields)[0]


def _report(
    parsed: ParsedUpload,
    embed_fields: Sequence[str] | None,
    rerank_fields: Sequence[str] | None,
) -> tuple[QualityReport, list[tuple[int, dict[str, Any]]]]:
    embed = _check_known(
        parsed, parsed.suggested.embed_fields if embed_fields is None else embed_fields, "embed"
    )
    rerank = _check_known(
        parsed,
        parsed.suggested.rerank_fields if rerank_fields is None else rerank_fields,
        "rerank",
    )
    kept: list[tuple[int, dict[str, Any]]] = []
    dropped: list[int] = []
    embed_over = rerank_over = 0
    for i, record in enumerate(parsed.records):
        text = embed_text(record, embed)
        if not text:
            dropped.append(i)
            continue
        kept.append((i, record))
        embed_over += estimate_tokens(text) > ENCODER_MAX_TOKENS
        rerank_over += estimate_tokens(rerank_text(record, rerank)) > RERANKER_MAX_TOKENS
    report = QualityReport(
        filename=parsed.filename,
        format=parsed.format,
        records=len(parsed.records),
        kept=len(kept),
        dropped=len(dropped),
        dropped_examples=tuple(dropped[:EXAMPLES]),
        embed_fields=embed,
        rerank_fields=rerank,
        fields=parsed.field_quality,
        id_candidates=parsed.id_candidates,
        embed_over_encoder=embed_over,
        rerank_over_reranker=rerank_over,
        max_field_chars=parsed.max_field_chars,
    )
    return report, kept


def build_upload_dataset(
    parsed: ParsedUpload,
    *,
    id_field: str | None = None,
    title_field: str | None = None,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
    name: str | None = None,
) -> tuple[Dataset, QualityReport]:
    """Build the dataset of an upload and its quality report.

    ``None`` for any field argument means "the suggestion"; ``id_field=ROW_POSITION``
    (``""``) uses row positions as ids and ``title_field=""`` shows ids as titles.
    Records with no text in any embed field are left out and counted in the report.
    ``name`` defaults to the upload's dataset id (``upload-<16 hex>``).
    """
    chosen_id = parsed.suggested.id_field if id_field is None else (id_field or None)
    chosen_title = parsed.suggested.title_field if title_field is None else title_field
    if chosen_id is not None:
        _check_known(parsed, [chosen_id], "use as id")
    if chosen_title:
        _check_known(parsed, [chosen_title], "use as title")
    report, kept = _report(parsed, embed_fields, rerank_fields)
    if not kept:
        raise UploadError(
            f"none of the {report.records:,} records of {parsed.filename} has text in the "
            f"chosen embed fields ({', '.join(report.embed_fields)})"
        )
    if chosen_id is not None:
        _check_ids(parsed.filename, kept, chosen_id)
    dataset = make_dataset(
        name or parsed.dataset_id,
        [r for _, r in kept],
        id_field=chosen_id,
        title_field=chosen_title,
        embed_fields=report.embed_fields,
        rerank_fields=report.rerank_fields,
        source=f"upload {parsed.filename}",
    )
    return dataset, report


def _check_ids(name: str, kept: Sequence[tuple[int, Mapping[str, Any]]], id_field: str) -> None:
    seen: set[str] = set()
    for i, record in kept:
        value = record.get(id_field)
        text = "" if isinstance(value, list | dict) else value_to_text(value)
        if not text:
            raise UploadError(
                f"record {i} of {name} has no usable id in field '{id_field}'; "
                "pick another id field or use row positions"
            )
        if text in seen:
            raise UploadError(
                f"id field '{id_field}' of {name} repeats the value {text!r} (record {i}); "
                "pick another id field or use row positions"
            )
        seen.add(text)
