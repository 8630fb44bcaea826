"""Documents and datasets: records with stable ids, and the texts models read.

A :class:`Dataset` is an immutable list of records (dicts) with one stable string id
each: the value of a chosen id field, else the row position. Models never see a
record directly; they read text built from chosen fields:

* :func:`embed_text` — plain concatenation of the chosen fields' values, for the
  bi-encoder (``"Heat Michael Mann Crime Drama ..."``).
* :func:`rerank_text` — one ``field: value`` line per chosen field, for the
  cross-encoder, so the user decides which columns the reranker reads.

Null, missing and empty values are skipped, never rendered as ``"None"``. Values
that are not strings become text as documented in :func:`value_to_text`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol, runtime_checkable

from core.models.errors import DatasetError, FieldError

TextStyle = Literal["plain", "fields"]

_TITLE_CANDIDATES = ("title", "name", "headline", "subject", "question")


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (null, boolean, number, string, array,
    object), for messages about records."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def value_to_text(value: Any) -> str:
    """Render one field value as text; ``""`` means "nothing to say".

    ``None`` and blank strings give ``""``; strings are stripped; booleans and
    numbers use ``str``; lists join their non-empty items with ``", "``; dicts are
    compact JSON with keys sorted.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return ", ".join(t for t in (value_to_text(v) for v in value) if t)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value).strip()


def field_texts(record: Mapping[str, Any], fields: Sequence[str]) -> list[tuple[str, str]]:
    """``(field, text)`` for each chosen field that has text, in the order given."""
    pairs = []
    for name in fields:
        text = value_to_text(record.get(name))
        if text:
            pairs.append((name, text))
    return pairs


def embed_text(record: Mapping[str, Any], fields: Sequence[str]) -> str:
    """Plain concatenation of the chosen fields' texts, for embedding."""
    return " ".join(text for _, text in field_texts(record, fields))


def rerank_text(
    record: Mapping[str, Any], fields: Sequence[str], style: TextStyle = "fields"
) -> str:
    """Text the reranker reads: ``field: value`` lines (or plain, for BEIR-style data)."""
    pairs = field_texts(record, fields)
    if style == "plain":
        return " ".join(text for _, text in pairs)
    return "\n".join(f"{name}: {text}" for name, text in pairs)


@runtime_checkable
class Corpus(Protocol):
    """What the search pipeline, evaluation and views read from a corpus.

    Both the in-memory :class:`Dataset` and an on-disk
    :class:`core.data.collection.Collection` offer it. ``ids`` and ``records`` are
    sequences by row position (a collection's are lazy: index them, do not copy them);
    prefer :meth:`record` / :meth:`records_for` by id.
    """

    name: str
    ids: Sequence[str]
    records: Sequence[dict[str, Any]]
    fields: tuple[str, ...]
    id_field: str | None
    title_field: str | None
    default_embed_fields: tuple[str, ...]
    default_rerank_fields: tuple[str, ...]
    source: str

    def __len__(self) -> int: ...

    @property
    def content_hash(self) -> str: ...

    def position(self, doc_id: str) -> int: ...

    def record(self, doc_id: str) -> dict[str, Any]: ...

    def has_id(self, doc_id: str) -> bool: ...

    def records_for(self, doc_ids: Sequence[str]) -> list[dict[str, Any]]: ...

    def title(self, doc_id: str) -> str: ...

    def check_fields(self, fields: Iterable[str], role: str) -> tuple[str, ...]: ...

    def texts(
        self,
        fields: Sequence[str],
        kind: Literal["embed", "rerank"] = "embed",
        style: TextStyle = "fields",
    ) -> list[str]: ...


@dataclass(frozen=True)
class Dataset:
    """An immutable, id-addressed collection of records.

    ``fields`` lists every key seen, in order of first appearance. ``default_embed_fields``
    and ``default_rerank_fields`` are what the app preselects.
    """

    name: str
    records: tuple[dict[str, Any], ...]
    ids: tuple[str, ...]
    fields: tuple[str, ...]
    id_field: str | None = None
    title_field: str | None = None
    default_embed_fields: tuple[str, ...] = ()
    default_rerank_fields: tuple[str, ...] = ()
    source: str = ""
    _positions: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.records)

    def position(self, doc_id: str) -> int:
        """Row position of the record with id ``doc_id``."""
        return self._positions[doc_id]

    def record(self, doc_id: str) -> dict[str, Any]:
        """The record with id ``doc_id``."""
        return self.records[self._positions[doc_id]]

    def has_id(self, doc_id: str) -> bool:
        """Whether a record has id ``doc_id``."""
        return doc_id in self._positions

    def records_for(self, doc_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Records of ``doc_ids``, in that order."""
        return [self.records[self._positions[d]] for d in doc_ids]

    def title(self, doc_id: str) -> str:
        """A short display title for a record (its title field, else its id)."""
        if self.title_field:
            text = value_to_text(self.record(doc_id).get(self.title_field))
            if text:
                return text
        return f"#{doc_id}"

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the records' canonical JSON: equal content, equal hash."""
        digest = hashlib.sha256()
        for doc_id, record in zip(self.ids, self.records, strict=True):
            digest.update(doc_id.encode())
            digest.update(b"\x1f")
            digest.update(
                json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode()
            )
            digest.update(b"\x1e")
        return digest.hexdigest()

    def check_fields(self, fields: Iterable[str], role: str) -> tuple[str, ...]:
        """Validate chosen fields; raise :class:`FieldError` naming the unknown ones."""
        chosen = tuple(fields)
        if not chosen:
            raise FieldError(f"choose at least one field to {role}")
        unknown = [f for f in chosen if f not in self.fields]
        if unknown:
            raise FieldError(
                f"unknown field(s) to {role}: {', '.join(unknown)}; "
                f"this dataset has: {', '.join(self.fields)}"
            )
        return chosen

    def texts(
        self,
        fields: Sequence[str],
        kind: Literal["embed", "rerank"] = "embed",
        style: TextStyle = "fields",
    ) -> list[str]:
        """Texts of every record, in row order."""
        if kind == "embed":
            return [embed_text(r, fields) for r in self.records]
        return [rerank_text(r, fields, style) for r in self.records]


def make_dataset(
    name: str,
    records: Sequence[Mapping[str, Any]],
    *,
    id_field: str | None = None,
    title_field: str | None = None,
    embed_fields: Sequence[str] | None = None,
    rerank_fields: Sequence[str] | None = None,
    source: str = "",
) -> Dataset:
    """Build a :class:`Dataset` from records, validating shape and ids.

    Ids come from ``id_field`` (every value must be a non-empty scalar, unique), else
    the row position (``"0"``, ``"1"``, ...). Title and default fields are guessed when
    not given: a field named like a title, and every field holding text.
    """
    if not isinstance(records, Sequence) or isinstance(records, str | bytes):
        raise DatasetError("a dataset must be a list of records (JSON objects)")
    if not records:
        raise DatasetError(f"dataset '{name}' has no records")
    rows: list[dict[str, Any]] = []
    fields: dict[str, None] = {}
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise DatasetError(
                f"record {i} is a {type(record).__name__}, not an object with named fields"
            )
        rows.append(dict(record))
        fields.update(dict.fromkeys(str(k) for k in record))
    field_names = tuple(fields)

    if id_field is not None:
        if id_field not in fields:
            raise FieldError(f"id field '{id_field}' not found; fields: {', '.join(field_names)}")
        ids = []
        for i, row in enumerate(rows):
            value = row.get(id_field)
            if value is None or isinstance(value, list | dict) or value_to_text(value) == "":
                raise DatasetError(f"record {i} has no usable id in field '{id_field}'")
            ids.append(value_to_text(value))
        seen: set[str] = set()
        dupes = [x for x in ids if x in seen or seen.add(x)]
        if dupes:
            raise DatasetError(
                f"id field '{id_field}' has duplicate values, e.g. {dupes[0]!r}; "
                "pick another id field or use row positions"
            )
    else:
        ids = [str(i) for i in range(len(rows))]

    if title_field is None:
        title_field = next((f for f in _TITLE_CANDIDATES if f in fields), None)
    text_fields = tuple(f for f in field_names if f != id_field and _holds_text(rows, f))
    embed = tuple(embed_fields) if embed_fields else text_fields
    rerank = tuple(rerank_fields) if rerank_fields else text_fields
    return Dataset(
        name=name,
        records=tuple(rows),
        ids=tuple(ids),
        fields=field_names,
        id_field=id_field,
        title_field=title_field,
        default_embed_fields=embed,
        default_rerank_fields=rerank,
        source=source,
        _positions={doc_id: i for i, doc_id in enumerate(ids)},
    )


def _holds_text(rows: Sequence[Mapping[str, Any]], name: str) -> bool:
    for row in rows[:200]:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return True
        if isinstance(value, list) and any(isinstance(v, str) for v in value):
            return True
    return False
