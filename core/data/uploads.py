"""Your own data, step 1: read uploaded bytes into flat records and detect the fields.

:func:`parse_upload` reads bytes into flat records (or raises :class:`UploadError` with
one line that names the file and says what is wrong), measures every field and
suggests the id, title, embed and rerank fields. The next steps live beside it:
:mod:`core.data.upload_quality` builds the dataset from chosen (or suggested) fields
with its quality report, and :mod:`core.data.upload_store` keeps the exact uploaded
bytes on the server, so a link naming ``upload-<16 hex>`` works for anyone using the
same deployment.

Formats
-------
* JSON: an array of objects, or an object holding exactly one array of objects.
* JSON Lines (``.jsonl``, ``.ndjson``, ``.jsonlines``): one object per line, blank lines
  ignored. A file of another name is read as JSON Lines when JSON parsing stops with
  "Extra data" after a first line that is a complete JSON value on its own.
* CSV (``.csv``; ``.tsv`` is tab-separated): the first row names the columns; the
  delimiter of a ``.csv`` is whichever of ``,`` ``;`` tab ``|`` the header line holds
  most (comma on a tie). Every value is a string; an empty cell is a missing value (the
  key is absent from that record). Blank header cells are named ``column_<n>``, repeated
  names get ``_2``, ``_3``... A row with more cells than the header is an error; a row
  with fewer simply misses the last columns.

Text must be UTF-8 (a leading byte-order mark is accepted). Limits: ``max_bytes``
(default 50 MB, environment variable ``RERANK_MAX_UPLOAD_MB``) and ``max_records``
(default 100,000, ``RERANK_MAX_UPLOAD_RECORDS``). The upload limit's MB are 1,000,000 bytes,
as Streamlit's file uploader counts them (it refuses a larger file before the app sees
it, so both must say the same). JSON that
nests arrays or objects too deeply for Python's parser (thousands of levels) is refused
with a one-line :class:`UploadError`, like any other malformed file.

Long fields
-----------
One value may hold at most ``max_field_chars`` characters (default 100,000, environment
variable ``RERANK_MAX_FIELD_CHARS``); a longer string is cut to that length (a list of
strings keeps its items up to that many characters), and the quality report counts, per
field, the records cut (:attr:`FieldQuality.cut`, ``QualityReport.notes``): nothing is
cut silently. 100,000 characters (about 25,000 tokens) is more than any model here reads
(the cross-encoder 512 tokens, the bi-encoders 256 or 512, Together's rerank at most
16,000 characters), so scores do not change; what it bounds is the work one record can
cause: tokenising, BM25 indexing and per-search rerank text are linear in its length,
so without it a single 20 MB value cost ~36 s per search and gigabytes of memory. Only
BM25 loses the words past the cut.

Nested values
-------------
JSON records are flattened so every value is something a field picker can offer:

* an object value becomes dotted keys: ``{"meta": {"year": 1999}}`` gives the field
  ``meta.year``; this recurses until a field name has :data:`MAX_FLATTEN_DEPTH` (3)
  parts, and an object found deeper is kept as compact JSON text
  (``{"a": {"b": {"c": {"d": 1}}}}`` gives ``a.b.c`` = ``'{"d": 1}'``); an empty object
  contributes no field;
* a list of scalars (strings, numbers, booleans, nulls) stays a list, which
  :func:`~core.data.documents.value_to_text` joins with ``", "``;
* a list holding any object or list becomes JSON text;
* when a dotted name clashes with a key already in the record, the first one wins.

Field suggestions and token estimates
-------------------------------------
A *text field* holds strings (or lists with strings) in at least 10% of records, with a
mean length of at least 3 characters, and is not mostly (90%+) numeric text
(``"1999"``, ``"4.5"``: such CSV columns are numbers, not prose). See :class:`SuggestedFields` for
how the id, title, embed and rerank fields are picked.

Token counts are *estimated* as ``ceil(characters / 4)``, a common rule of thumb for
English with WordPiece/BPE tokenizers; it runs in microseconds and needs no model. A
field value over :data:`RERANKER_MAX_TOKENS` (512, the cross-encoder's limit) or
:data:`ENCODER_MAX_TOKENS` (256, all-MiniLM-L6-v2's limit) is counted as one the model
would truncate. The real tokenizer may count somewhat differently, and the reranker
also reads the query and the field labels, so these counts are a lower bound.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from core.data.csvformat import sep_line, sniff_delimiter
from core.data.documents import json_type, value_to_text
from core.data.encoding import not_utf8_message
from core.models.base import DEFAULT_MAX_LENGTH
from core.models.errors import DatasetError, SettingsError

UploadFormat = Literal["json", "jsonl", "csv"]

MB: Final = 1024 * 1024
UPLOAD_MB: Final = 1_000_000
"""A megabyte of the upload limit: decimal, as Streamlit's uploader counts it."""
DEFAULT_MAX_UPLOAD_MB: Final = 50
DEFAULT_MAX_UPLOAD_RECORDS: Final = 100_000
DEFAULT_MAX_FIELD_CHARS: Final = 100_000
MAX_FLATTEN_DEPTH: Final = 3
RERANKER_MAX_TOKENS: Final = DEFAULT_MAX_LENGTH
ENCODER_MAX_TOKENS: Final = 256
CHARS_PER_TOKEN: Final = 4
TEXT_MIN_MEAN_CHARS: Final = 3
TEXT_MIN_FILL: Final = 0.10
TITLE_MIN_FILL: Final = 0.80
SHORT_FIELD_CHARS: Final = 50
NUMERIC_TEXT_SHARE: Final = 0.9
EXAMPLES: Final = 5
"""How many examples (duplicate ids, dropped rows) a report keeps."""

ID_NAMES: Final = ("id", "_id", "uuid", "key", "doc_id", "docid")
TITLE_NAMES: Final = ("title", "name", "headline", "subject", "question")

CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]+")
_NUMERIC = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*\Z")


class UploadError(DatasetError):
    """An uploaded file could not be read, parsed or stored; the message is one line."""


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SuggestedFields:
    """Fields preselected for an upload; every one can be overridden.

    * ``id_field``: the first field named like id/_id/uuid/key/doc_id (any case) whose
      values are non-empty scalars, unique across all records; else None (row position).
    * ``title_field``: the first of title/name/headline/subject/question (any case) that
      has any text; else the text field with the shortest mean length among those filled
      in at least 80% of records; else None.
    * ``embed_fields``: every text field except the id field, in file order.
    * ``rerank_fields``: all text fields when there are at most two; else the title (when
      it holds text) plus the text field with the longest mean length.
    * ``text_fields``: every text field, in file order.
    """

    id_field: str | None
    title_field: str | None
    embed_fields: tuple[str, ...]
    rerank_fields: tuple[str, ...]
    text_fields: tuple[str, ...]


@dataclass(frozen=True)
class FieldQuality:
    """What one field holds across the records of an upload.

    ``filled`` counts records where the field renders to non-blank text; ``missing``
    counts records where it is absent or null; ``non_string`` counts present values that
    are not strings (numbers, booleans, lists). ``distinct`` is the number of different
    texts, given only for short fields (mean length <= 50 characters). ``over_reranker``
    and ``over_encoder`` count records whose text in this field alone is estimated to
    exceed the cross-encoder's and the bi-encoder's token limits.
    """

    name: str
    filled: int
    fill_rate: float
    missing: int
    non_string: int
    distinct: int | None
    mean_chars: float
    max_chars: int
    max_tokens: int
    over_reranker: int
    over_encoder: int
    is_text: bool
    cut: int = 0
    """Records whose value here was longer than the field limit and was cut to it."""


@dataclass(frozen=True)
class IdCandidate:
    """A field named like an id, and why it can or cannot be one."""

    name: str
    missing: int
    non_scalar: int
    duplicates: int
    duplicate_examples: tuple[str, ...]

    @property
    def usable(self) -> bool:
        """True when every record has a unique scalar value here."""
        return self.missing == 0 and self.non_scalar == 0 and self.duplicates == 0


@dataclass(frozen=True)
class ParsedUpload:
    """An upload read into flat records, with suggested fields.

    ``fields`` lists every key (after flattening, CSV columns in header order), in order
    of first appearance. ``sha256`` is the hash of the exact bytes uploaded.
    """

    filename: str
    format: UploadFormat
    size_bytes: int
    sha256: str
    records: tuple[dict[str, Any], ...] = field(repr=False)
    fields: tuple[str, ...]
    suggested: SuggestedFields
    field_quality: tuple[FieldQuality, ...] = field(repr=False)
    id_candidates: tuple[IdCandidate, ...] = ()
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS

    @property
    def dataset_id(self) -> str:
        """The id :class:`~core.data.upload_store.UploadStore` gives these bytes:
        ``upload-<16 hex>``."""
        return f"upload-{self.sha256[:16]}"


# --- limits ------------------------------------------------------------------------------


def env_number(name: str, default: float) -> float:
    """A positive number from environment variable ``name`` (``default`` when unset);
    raises :class:`SettingsError` for anything else."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or math.isinf(value):
        raise SettingsError(f"{name} must be a positive number, got {raw!r}")
    return value


def max_upload_bytes() -> int:
    """The upload size limit: ``RERANK_MAX_UPLOAD_MB`` (default 50) megabytes of
    1,000,000 bytes (:data:`UPLOAD_MB`)."""
    return int(env_number("RERANK_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB) * UPLOAD_MB)


def max_upload_records() -> int:
    """The record limit: ``RERANK_MAX_UPLOAD_RECORDS`` (default 100,000)."""
    return int(env_number("RERANK_MAX_UPLOAD_RECORDS", DEFAULT_MAX_UPLOAD_RECORDS))


def max_field_chars() -> int:
    """The longest value kept per field: ``RERANK_MAX_FIELD_CHARS`` (default 100,000)."""
    return int(env_number("RERANK_MAX_FIELD_CHARS", DEFAULT_MAX_FIELD_CHARS))


def _human_size(n: int) -> str:
    """Decimal units, as the upload limit and Streamlit's uploader count them."""
    if n < 1000:
        return f"{n:,} bytes"
    if n < UPLOAD_MB:
        return f"{n / 1000:.1f} kB"
    return f"{n / UPLOAD_MB:.1f} MB ({n:,} bytes)"


def display_name(filename: str) -> str:
    """The file's base name, on one line and of bounded length, for messages."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = CONTROL_CHARS.sub(" ", base).strip() or "the upload"
    return base if len(base) <= 80 else base[:77] + "..."


# --- parsing -----------------------------------------------------------------------------


def upload_format(filename: str) -> UploadFormat:
    """The format a file name implies: ``csv``, ``jsonl``, else ``json``."""
    suffix = Path(display_name(filename)).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".jsonlines"):
        return "jsonl"
    return "json"


def parse_upload(
    data: bytes,
    filename: str,
    *,
    max_bytes: int | None = None,
    max_records: int | None = None,
    max_chars: int | None = None,
) -> ParsedUpload:
    """Read an uploaded file into flat records and suggest fields (module docstring).

    ``max_bytes``, ``max_records`` and ``max_chars`` (per field value) default to the
    environment-configured limits. Raises :class:`UploadError` with a one-line message
    naming the file.
    """
    name = display_name(filename)
    limit_bytes = max_upload_bytes() if max_bytes is None else max_bytes
    limit_records = max_upload_records() if max_records is None else max_records
    limit_chars = max_field_chars() if max_chars is None else max_chars
    try:
        return _parse_upload(data, filename, name, limit_bytes, limit_records, limit_chars)
    except RecursionError:
        raise UploadError(
            f"{name} nests arrays or objects too deeply to read (thousands of levels); "
            "records must be objects of fields, nested a few levels at most"
        ) from None


def _parse_upload(
    data: bytes,
    filename: str,
    name: str,
    limit_bytes: int,
    limit_records: int,
    limit_chars: int,
) -> ParsedUpload:
    if len(data) > limit_bytes:
        raise UploadError(
            f"{name} is {_human_size(len(data))}; uploads are limited to "
            f"{_human_size(limit_bytes)} (RERANK_MAX_UPLOAD_MB)"
        )
    text = _decode(data, name)
    if not text.strip():
        raise UploadError(f"{name} is empty; upload a JSON, JSON Lines or CSV file with records")
    fmt = upload_format(filename)
    if fmt == "csv":
        delimiter = "\t" if name.lower().endswith(".tsv") else None
        records, fields = _parse_csv(text, name, limit_records, delimiter)
    else:
        if fmt == "json":
            records, fmt = _parse_json(text, name)
            _check_count(len(records), name, limit_records)
        else:
            records = _parse_jsonl(text, name, limit_records)
        records, fields = _flatten_all(records)
    if not records:
        raise UploadError(f"{name} holds no records")
    cuts = _cap_values(records, limit_chars)
    quality = tuple(_field_quality(records, f, cuts.get(f, 0)) for f in fields)
    candidates = tuple(_id_candidate(records, f) for f in fields if _is_id_name(f))
    suggested = suggest_fields(quality, candidates)
    if not suggested.text_fields:
        raise UploadError(
            f"{name} has no text fields: no field holds text of {TEXT_MIN_MEAN_CHARS}+ "
            f"characters in at least {TEXT_MIN_FILL:.0%} of records "
            f"(fields: {short_list(fields)})"
        )
    return ParsedUpload(
        filename=name,
        format=fmt,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        records=tuple(records),
        fields=tuple(fields),
        suggested=suggested,
        field_quality=quality,
        id_candidates=candidates,
        max_field_chars=limit_chars,
    )


def _cap_values(records: list[dict[str, Any]], limit: int) -> dict[str, int]:
    """Cut every value longer than ``limit`` characters in place; count cuts per field.

    A string keeps its first ``limit`` characters; a list keeps its items while their
    text fits (the item that crosses the limit is cut, when it is a string).
    """
    cuts: dict[str, int] = {}
    for record in records:
        for key, value in record.items():
            if isinstance(value, str):
                if len(value) <= limit:
                    continue
                record[key] = value[:limit]
            elif isinstance(value, list):
                kept, used = [], 0
                for item in value:
                    size = len(item) if isinstance(item, str) else len(value_to_text(item))
                    if used + size > limit:
                        if isinstance(item, str) and used < limit:
                            kept.append(item[: limit - used])
                        break
                    kept.append(item)
                    used += size + 2  # the ", " value_to_text joins with
                if len(kept) == len(value) and kept[-1:] == value[-1:]:
                    continue
                record[key] = kept
            else:
                continue
            cuts[key] = cuts.get(key, 0) + 1
    return cuts


def _check_count(count: int, name: str, limit: int) -> None:
    if count > limit:
        raise UploadError(
            f"{name} has {count:,} records; uploads are limited to "
            f"{limit:,} (RERANK_MAX_UPLOAD_RECORDS); for more, build a collection: "
            f"python -m core collection build FILE --name NAME"
        )


def short_list(items: Sequence[str], limit: int = 8) -> str:
    """Up to ``limit`` items joined by commas, and how many more there are."""
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"{not_utf8_message(name, data)} and upload it again") from None


def _parse_json(text: str, name: str) -> tuple[list[dict[str, Any]], UploadFormat]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and _first_line_is_json(text, exc.lineno):
            return _parse_jsonl(text, name, None), "jsonl"
        hint = ""
        if not name.lower().endswith(".json"):
            hint = " (uploads must be JSON, JSON Lines named .jsonl, or CSV named .csv)"
        raise UploadError(
            f"{name} is not valid JSON: {exc.msg.removesuffix(' at')} at line {exc.lineno}, "
            f"column {exc.colno}{hint}"
        ) from None
    where = ""
    if isinstance(payload, dict):
        arrays = {k: v for k, v in payload.items() if isinstance(v, list)}
        of_objects = {k: v for k, v in arrays.items() if v and all(isinstance(x, dict) for x in v)}
        if len(of_objects) == 1:
            key, payload = next(iter(of_objects.items()))
        elif len(of_objects) > 1:
            raise UploadError(
                f"{name} holds an object with {len(of_objects)} arrays of records "
                f"({short_list([repr(k) for k in of_objects])}); expected exactly one"
            )
        elif len(arrays) == 1:
            key, payload = next(iter(arrays.items()))
        else:
            raise UploadError(
                f"{name} holds a single JSON object, not records; expected an array of "
                "objects or an object holding exactly one such array"
            )
        where = f" of '{key}'"
    if not isinstance(payload, list):
        raise UploadError(
            f"{name} holds a JSON {json_type(payload)}; expected an array of records (objects)"
        )
    for i, record in enumerate(payload):
        if not isinstance(record, dict):
            raise UploadError(
                f"{name}: record {i}{where} is a JSON {json_type(record)}, "
                "not an object with named fields"
            )
    return payload, "json"


def _first_line_is_json(text: str, error_line: int) -> bool:
    """True when the first non-blank line is a complete JSON value before ``error_line``."""
    for number, line in enumerate(text.split("\n"), start=1):
        if number >= error_line:
            return False
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError:
                return False
            return True
    return False


def _parse_jsonl(text: str, name: str, limit: int | None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UploadError(
                f"{name} line {number} is not valid JSON: {exc.msg} at column {exc.colno} "
                "(each line of a JSON Lines file must be one JSON object)"
            ) from None
        if not isinstance(value, dict):
            raise UploadError(
                f"{name} line {number} (record {len(records)}) is a JSON {json_type(value)}, "
                "not an object with named fields"
            )
        records.append(value)
        if limit is not None and len(records) > limit:
            raise UploadError(
                f"{name} has more than {limit:,} records; uploads are limited to "
                f"{limit:,} (RERANK_MAX_UPLOAD_RECORDS); for more, build a collection: "
                f"python -m core collection build FILE --name NAME"
            )
    return records


def _parse_csv(
    text: str, name: str, limit: int, delimiter: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    body = text.lstrip("\r\n")
    skipped = text[: len(text) - len(body)].count("\n")  # lines before the header
    first_line, _, rest = body.partition("\n")
    named = sep_line(first_line)
    text = body
    if named is not None:  # Excel's "sep=;" line names the separator and is no header
        delimiter, text, skipped = named, rest, skipped + 1
    elif delimiter is None:
        delimiter = sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[dict[str, Any]] = []
    header: list[str] | None = None
    try:
        for row in reader:
            if not row:
                continue
            if header is None:
                header = _unique_names(row)
                continue
            if len(row) > len(header):
                raise UploadError(
                    f"{name} line {reader.line_num + skipped} has {len(row)} values but the header "
                    f"names {len(header)} columns"
                )
            records.append({k: v for k, v in zip(header, row, strict=False) if v != ""})
            if len(records) > limit:
                raise UploadError(
                    f"{name} has more than {limit:,} records; uploads are limited to "
                    f"{limit:,} (RERANK_MAX_UPLOAD_RECORDS); for more, build a collection: "
                    f"python -m core collection build FILE --name NAME"
                )
    except csv.Error as exc:
        raise UploadError(
            f"{name} is not valid CSV at line {reader.line_num + skipped}: {exc}"
        ) from None
    if header is None:
        raise UploadError(f"{name} is empty; upload a JSON, JSON Lines or CSV file with records")
    return records, header


def _unique_names(row: Sequence[str]) -> list[str]:
    names: list[str] = []
    taken: set[str] = set()
    for i, cell in enumerate(row):
        base = CONTROL_CHARS.sub(" ", cell).strip() or f"column_{i + 1}"
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        names.append(candidate)
    return names


def flatten_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record with nested values flattened as the module docstring describes."""
    out: dict[str, Any] = {}
    _flatten_into(out, record, "", 1)
    return out


def _flatten_into(out: dict[str, Any], obj: Mapping[str, Any], prefix: str, depth: int) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if depth < MAX_FLATTEN_DEPTH:
                _flatten_into(out, value, f"{name}.", depth + 1)
                continue
            value = _json_text(value)
        elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
            value = _json_text(value)
        if name not in out:
            out[name] = value


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _flatten_all(
    records: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[str]]:
    flat = []
    fields: dict[str, None] = {}
    for record in records:
        if any(isinstance(v, dict | list) for v in record.values()):
            row = flatten_record(record)
        else:
            row = dict(record)
        flat.append(row)
        fields.update(dict.fromkeys(row))
    return flat, list(fields)


# --- field statistics and suggestions ----------------------------------------------------


def estimate_tokens(text: str) -> int:
    """Estimated token count of ``text``: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _field_quality(records: Sequence[Mapping[str, Any]], name: str, cut: int = 0) -> FieldQuality:
    n = len(records)
    missing = non_string = filled = text_valued = numeric = total_chars = max_chars = 0
    text_chars = 0
    over_rr = over_enc = 0
    # ceil(chars / 4) > limit  <=>  chars > 4 * limit
    rr_chars = RERANKER_MAX_TOKENS * CHARS_PER_TOKEN
    enc_chars = ENCODER_MAX_TOKENS * CHARS_PER_TOKEN
    texts: set[str] = set()
    for record in records:
        value = record.get(name)
        if value is None:
            missing += 1
            continue
        if isinstance(value, str):
            text = value.strip()
            textual = True
        else:
            non_string += 1
            text = value_to_text(value)
            textual = isinstance(value, list) and any(isinstance(v, str) for v in value)
        if not text:
            continue
        filled += 1
        length = len(text)
        total_chars += length
        if length > max_chars:
            max_chars = length
        if length > enc_chars:
            over_enc += 1
            if length > rr_chars:
                over_rr += 1
        texts.add(text)
        if textual:
            text_valued += 1
            text_chars += length
            if length <= 40 and text[0] in "0123456789+-." and _NUMERIC.match(text):
                numeric += 1
    mean_chars = total_chars / filled if filled else 0.0
    distinct = len(texts) if filled and mean_chars <= SHORT_FIELD_CHARS else None
    is_text = (
        n > 0
        and text_valued / n >= TEXT_MIN_FILL
        and text_chars / text_valued >= TEXT_MIN_MEAN_CHARS
        and numeric < NUMERIC_TEXT_SHARE * text_valued
        and text_valued * 2 >= filled
    )
    return FieldQuality(
        name=name,
        filled=filled,
        fill_rate=filled / n if n else 0.0,
        missing=missing,
        non_string=non_string,
        distinct=distinct,
        mean_chars=mean_chars,
        max_chars=max_chars,
        max_tokens=math.ceil(max_chars / CHARS_PER_TOKEN),
        over_reranker=over_rr,
        over_encoder=over_enc,
        is_text=is_text,
        cut=cut,
    )


def _is_id_name(name: str) -> bool:
    return re.sub(r"[\s-]+", "_", name.strip().lower()) in ID_NAMES


def _id_candidate(records: Sequence[Mapping[str, Any]], name: str) -> IdCandidate:
    missing = non_scalar = duplicates = 0
    seen: set[str] = set()
    examples: dict[str, None] = {}
    for record in records:
        value = record.get(name)
        if isinstance(value, list | dict):
            non_scalar += 1
            continue
        text = value_to_text(value)
        if not text:
            missing += 1
            continue
        if text in seen:
            duplicates += 1
            if len(examples) < EXAMPLES:
                examples[text] = None
        else:
            seen.add(text)
    return IdCandidate(
        name=name,
        missing=missing,
        non_scalar=non_scalar,
        duplicates=duplicates,
        duplicate_examples=tuple(examples),
    )


def suggest_fields(
    quality: Sequence[FieldQuality], id_candidates: Sequence[IdCandidate]
) -> SuggestedFields:
    """Suggested id, title, embed and rerank fields (rules in :class:`SuggestedFields`)."""
    id_field = next((c.name for c in id_candidates if c.usable), None)
    text = [q for q in quality if q.is_text and q.name != id_field]
    by_name: dict[str, FieldQuality] = {}
    for q in quality:
        if q.filled and q.name != id_field:
            by_name.setdefault(q.name.lower(), q)
    title = next((by_name[t].name for t in TITLE_NAMES if t in by_name), None)
    if title is None:
        full = [q for q in text if q.fill_rate >= TITLE_MIN_FILL]
        if full:
            title = min(full, key=lambda q: q.mean_chars).name
    embed = tuple(q.name for q in text)
    if len(text) <= 2:
        rerank = embed
    else:
        others = [q for q in text if q.name != title]
        longest = max(others, key=lambda q: q.mean_chars).name
        chosen = {longest} | ({title} if title in embed else set())
        rerank = tuple(q.name for q in text if q.name in chosen)
    all_text = tuple(q.name for q in quality if q.is_text)
    return SuggestedFields(
        id_field=id_field,
        title_field=title,
        embed_fields=embed,
        rerank_fields=rerank,
        text_fields=all_text,
    )
