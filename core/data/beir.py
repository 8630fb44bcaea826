"""Labelled data: BEIR-format datasets, and relevance judgments kept as CSV.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``
after a header line). Judgments made in the app are keyed by query *text*, since a
typed query has no id, and travel as a CSV with the header ``query,doc_id,rating``.
:func:`read_judgments` also reads Quepid's CSV export and TREC qrels lines, on any
non-negative integer scale; :func:`map_doc_ids` maps judged ids through a chosen field.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.data.csvsafe import LINE_END, spreadsheet_safe_cells, unspreadsheet
from core.data.documents import Dataset
from core.data.encoding import not_utf8_message
from core.models.errors import DatasetError, DatasetUnavailableError

Qrels = dict[str, dict[str, int]]

JUDGMENT_COLUMNS: tuple[str, str, str] = ("query", "doc_id", "rating")
MIN_RATING = 0


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR dataset reduced to the queries judged in one split."""

    name: str
    split: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: Qrels

    def doc_text(self, doc_id: str) -> str:
        """Return the text to index for ``doc_id``: see :func:`document_text`."""
        return document_text(self.corpus[doc_id])

    @property
    def num_judgments(self) -> int:
        """Number of (query, doc) pairs judged in this split."""
        return sum(len(docs) for docs in self.qrels.values())


def document_text(doc: Mapping[str, str]) -> str:
    """Return ``title + " " + text`` stripped, or just the text when the title is empty."""
    title = (doc.get("title") or "").strip()
    text = (doc.get("text") or "").strip()
    return f"{title} {text}".strip() if title else text


def load_beir(path: str | os.PathLike[str], split: str = "test") -> BeirDataset:
    """Load a BEIR folder, keeping only the queries that have qrels in ``split``.

    Raises :class:`DatasetUnavailableError` when a file is missing and
    :class:`DatasetError` naming the file and line when one cannot be parsed.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetUnavailableError(f"BEIR folder not found: {root}")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise DatasetUnavailableError(
            f"No qrels for split '{split}' in {root}: expected {qrels_path.relative_to(root)}"
            f" (available splits: {', '.join(available) or 'none'})."
        )
    qrels = _read_qrels(qrels_path)
    all_queries = {
        query_id: _string_field(record, "text", where)
        for query_id, record, where in _read_jsonl(root / "queries.jsonl")
    }
    missing = [query_id for query_id in qrels if query_id not in all_queries]
    if missing:
        raise DatasetError(
            f"{qrels_path.name} judges {len(missing)} query id(s) absent from queries.jsonl"
            f" (first: '{missing[0]}'); fix the qrels or the queries file."
        )
    corpus = {
        doc_id: {
            "title": _string_field(record, "title", where),
            "text": _string_field(record, "text", where),
        }
        for doc_id, record, where in _read_jsonl(root / "corpus.jsonl")
    }
    return BeirDataset(
        name=root.name,
        split=split,
        corpus=corpus,
        queries={query_id: all_queries[query_id] for query_id in qrels},
        qrels=qrels,
    )


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict, str]]:
    """Yield (``_id``, record, "file line N") for each non-blank line of a JSONL file."""
    if not path.is_file():
        raise DatasetUnavailableError(f"BEIR file not found: {path}")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: invalid JSON ({exc.msg}).") from exc
            if not isinstance(record, dict) or not isinstance(record.get("_id"), str | int):
                raise DatasetError(f"{where}: expected a JSON object with an '_id'.")
            yield str(record["_id"]), record, where


def _string_field(record: dict, field: str, where: str) -> str:
    value = record.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DatasetError(f"{where}: field '{field}' must be a string.")
    return value


def _read_qrels(path: Path) -> Qrels:
    """Read a BEIR qrels TSV: an optional header, then ``query-id corpus-id score`` rows."""
    qrels: Qrels = {}
    with path.open(encoding="utf-8", newline="") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split("\t")]
            where = f"{path.name} line {number}"
            if len(fields) != 3:
                raise DatasetError(
                    f"{where}: expected 3 tab-separated fields"
                    f" (query-id, corpus-id, score), got {len(fields)}."
                )
            query_id, doc_id, score = fields
            try:
                rel = int(score)
            except ValueError:
                if number == 1:
                    continue  # the header line
                raise DatasetError(f"{where}: score '{score}' is not an integer.") from None
            if not query_id or not doc_id:
                raise DatasetError(f"{where}: empty query id or corpus id.")
            qrels.setdefault(query_id, {})[doc_id] = rel
    return qrels


@dataclass(frozen=True)
class Judgments:
    """Judgments read from a file: query text -> doc id -> grade, and how they were read.

    ``format`` is ``"csv"`` (``query,doc_id,rating``), ``"quepid"`` (Quepid's export:
    ``Query Text``, ``Doc ID``, ``Rating``) or ``"trec"`` (qrels lines
    ``qid iter docid rel``, query ids mapped to text through a queries file).
    ``skipped`` counts rows without a rating (Quepid exports unrated documents too).
    """

    qrels: Qrels
    format: str
    skipped: int = 0

    @property
    def num_ratings(self) -> int:
        """Number of (query, doc) ratings."""
        return sum(len(docs) for docs in self.qrels.values())

    @property
    def grades(self) -> list[int]:
        """The distinct grades used, ascending (e.g. [0, 1, 2, 3, 4])."""
        return sorted({g for docs in self.qrels.values() for g in docs.values()})

    @property
    def scale(self) -> str:
        """E.g. "binary (0/1)" or "graded 0-4"."""
        grades = self.grades
        if not grades:
            return "no ratings"
        if set(grades) <= {0, 1}:
            return "binary (0/1)"
        return f"graded {grades[0]}-{grades[-1]}"


QUEPID_COLUMNS: tuple[str, str, str] = ("query text", "doc id", "rating")
FORMAT_LABELS: dict[str, str] = {
    "csv": "CSV query,doc_id,rating",
    "quepid": "Quepid CSV export (Query Text, Doc ID, Rating)",
    "trec": "TREC qrels (qid iter docid rel)",
}


def _decode(source: str | os.PathLike[str] | bytes, what: str) -> tuple[str, str]:
    """(name, text) of a path or bytes, decoded as UTF-8 (a BOM is dropped)."""
    if isinstance(source, bytes):
        name, data = what, source
    else:
        path = Path(source)
        if not path.is_file():
            raise DatasetUnavailableError(f"{what[0].upper()}{what[1:]} file not found: {path}")
        name, data = path.name, path.read_bytes()
    try:
        return name, data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{not_utf8_message(name, data)}.") from exc


def _looks_like_trec(text: str) -> bool:
    for line in text.splitlines():
        if line.strip():
            fields = line.split()
            return len(fields) == 4 and "," not in line and _is_int(fields[3])
    return False


def _is_int(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


MAX_JUDGMENTS_ENV = "RERANK_MAX_JUDGMENTS"
DEFAULT_MAX_JUDGMENTS = 50_000


def read_judgments(
    source: str | os.PathLike[str] | bytes,
    *,
    queries: Mapping[str, str] | None = None,
) -> Judgments:
    """Read judgments in any of the three formats, told apart by their first line.

    Ratings are non-negative integers on any scale (binary 0/1, 0-3, Quepid's 0-4, ...);
    ``"3.0"`` reads as 3. TREC qrels name queries by id: ``queries`` (id -> text, see
    :func:`load_queries_file`) maps them to the query text the app searches with.
    Problems raise :class:`DatasetError` naming the line.
    """
    name, text = _decode(source, "judgments")
    if not text.strip():
        raise DatasetError(
            f"{name} is empty; expected a header {','.join(JUDGMENT_COLUMNS)}, Quepid's "
            "'Query Text,Doc ID,Rating', or TREC qrels lines 'qid 0 docid rel'."
        )
    if _looks_like_trec(text):
        return _read_trec(name, text, queries)
    return _read_csv(name, text)


def check_uploaded_judgments(found: Judgments, name: str) -> Judgments:
    """``found`` when a visitor's upload is within :func:`max_judgments`; else
    :class:`DatasetError` in one line (every judged query is searched and reranked)."""
    limit = max_judgments()
    if found.num_ratings > limit:
        raise DatasetError(
            f"{name} has {found.num_ratings:,} ratings; at most {limit:,} are read here "
            f"({MAX_JUDGMENTS_ENV}): split it, or judge fewer queries"
        )
    return found


def max_judgments() -> int:
    """Most ratings an uploaded judgments file may hold in the app
    (``RERANK_MAX_JUDGMENTS``, default 50,000; the CLI reads any size)."""
    try:
        return max(1, int(os.environ.get(MAX_JUDGMENTS_ENV, "") or DEFAULT_MAX_JUDGMENTS))
    except ValueError:
        return DEFAULT_MAX_JUDGMENTS


def _read_csv(name: str, text: str) -> Judgments:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None) or []
        columns = [column.strip().lower() for column in header]
        if all(column in columns for column in JUDGMENT_COLUMNS):
            wanted, kind = JUDGMENT_COLUMNS, "csv"
        elif all(column in columns for column in QUEPID_COLUMNS):
            wanted, kind = QUEPID_COLUMNS, "quepid"
        else:
            missing = [column for column in JUDGMENT_COLUMNS if column not in columns]
            raise DatasetError(
                f"{name} line 1: header lacks {', '.join(missing)}; expected "
                f"{','.join(JUDGMENT_COLUMNS)}, Quepid's 'Query Text,Doc ID,Rating', or "
                "TREC qrels lines 'qid 0 docid rel'."
            )
        query_at, doc_at, rating_at = (columns.index(column) for column in wanted)
        judgments: Qrels = {}
        skipped = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{name} line {reader.line_num}"
            if len(row) <= max(query_at, doc_at, rating_at):
                raise DatasetError(f"{where}: expected {len(columns)} fields, got {len(row)}.")
            query = unspreadsheet(row[query_at].strip())
            doc_id = unspreadsheet(row[doc_at].strip())
            if not query or not doc_id:
                raise DatasetError(f"{where}: empty query or doc id.")
            if kind == "quepid" and not row[rating_at].strip():
                skipped += 1  # Quepid lists unrated documents with an empty rating
                continue
            judgments.setdefault(query, {})[doc_id] = _parse_rating(row[rating_at], where)
    except csv.Error as exc:
        raise DatasetError(f"{name} line {reader.line_num}: malformed CSV ({exc}).") from exc
    return Judgments(judgments, kind, skipped)


def _read_trec(name: str, text: str, queries: Mapping[str, str] | None) -> Judgments:
    if queries is None:
        raise DatasetError(
            f"{name} is TREC qrels, which name queries by id: also give a queries file "
            "(id<TAB>text lines, or BEIR queries.jsonl) so the ids map to query text."
        )
    judgments: Qrels = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        fields = line.split()
        if len(fields) != 4:
            raise DatasetError(
                f"{where}: expected 4 fields 'qid iter docid rel', got {len(fields)}."
            )
        qid, _, doc_id, rel = fields
        query = (queries.get(qid) or "").strip()
        if not query:
            raise DatasetError(f"{where}: query id '{qid}' is not in the queries file.")
        judgments.setdefault(query, {})[doc_id] = _parse_rating(rel, where)
    return Judgments(judgments, "trec")


def load_queries_file(source: str | os.PathLike[str] | bytes) -> dict[str, str]:
    """Query id -> text from ``id<TAB>text`` lines (TREC topics as TSV) or a BEIR
    ``queries.jsonl``. A header line ``id<TAB>text`` (or ``qid``/``query-id``) is skipped."""
    name, text = _decode(source, "queries")
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: invalid JSON ({exc.msg}).") from exc
            if not isinstance(record, dict) or "_id" not in record:
                raise DatasetError(f"{where}: expected a JSON object with '_id' and 'text'.")
            out[str(record["_id"])] = _string_field(record, "text", where)
            continue
        qid, tab, query = line.partition("\t")
        if not tab:
            raise DatasetError(f"{where}: expected 'id<TAB>text'.")
        if number == 1 and qid.strip().lower() in ("id", "qid", "query-id", "query_id"):
            continue
        out[qid.strip()] = query.strip()
    if not out:
        raise DatasetError(f"{name} holds no queries.")
    return out


def load_judgments_csv(source: str | os.PathLike[str] | bytes) -> Qrels:
    """Read judgments from a CSV file path or its bytes: query text -> doc id -> rating.

    The header names the columns ``query``, ``doc_id`` and ``rating`` (any order,
    extra columns ignored), or Quepid's ``Query Text``, ``Doc ID``, ``Rating``; ratings
    are non-negative integers on any scale. A later row for the same query and doc
    replaces an earlier one. Problems raise :class:`DatasetError` with the line number.
    The apostrophe :func:`dump_judgments_csv` puts before formula-like text (``'=x``)
    is removed again. See :func:`read_judgments` for TREC qrels.
    """
    return read_judgments(source).qrels


def _parse_rating(cell: str, where: str) -> int:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or value != value or value < MIN_RATING or not value.is_integer():
        raise DatasetError(
            f"{where}: rating '{cell}' is not a non-negative whole number (0, 1, 2, ...)."
        )
    return int(value)


def map_doc_ids(
    qrels: Mapping[str, Mapping[str, int]], dataset: Dataset, field: str | None
) -> tuple[Qrels, list[str]]:
    """Judged doc ids read as values of ``field`` (e.g. the ``Doc ID`` a search engine
    used), mapped to the dataset's own ids; and the judged ids found in no record.

    ``field`` None or the dataset's id field keeps the ids. Values of ``field`` must be
    unique among the records, else :class:`DatasetError`.
    """
    if not field or field == dataset.id_field:
        unknown = sorted({d for docs in qrels.values() for d in docs} - set(dataset.ids))
        return {q: dict(docs) for q, docs in qrels.items()}, unknown
    if field not in dataset.fields:
        raise DatasetError(
            f"id field '{field}' is not a field of '{dataset.name}' "
            f"(fields: {', '.join(dataset.fields)})."
        )
    by_value: dict[str, str] = {}
    for doc_id, record in zip(dataset.ids, dataset.records, strict=True):
        value = record.get(field)
        if value is None or str(value).strip() == "":
            continue
        key = str(value).strip()
        if key in by_value:
            raise DatasetError(
                f"field '{field}' is not unique in '{dataset.name}' ('{key}' appears twice): "
                "choose a field that identifies one document."
            )
        by_value[key] = doc_id
    mapped: Qrels = {}
    unknown: set[str] = set()
    for query, docs in qrels.items():
        for judged, grade in docs.items():
            if judged in by_value:
                mapped.setdefault(query, {})[by_value[judged]] = grade
            else:
                unknown.add(judged)
    return mapped, sorted(unknown)


def dump_judgments_csv(judgments: Mapping[str, Mapping[str, int]]) -> str:
    """Return judgments (query text -> doc id -> rating) as CSV text, header first.

    :func:`load_judgments_csv` reads the result back unchanged. Text a spreadsheet would
    run as a formula gets a leading apostrophe (:mod:`core.data.csvsafe`), which the
    reader removes again.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=LINE_END)
    writer.writerow(JUDGMENT_COLUMNS)
    for query, docs in judgments.items():
        for doc_id, rating in docs.items():
            writer.writerow(spreadsheet_safe_cells((query, doc_id, rating)))
    return out.getvalue()
