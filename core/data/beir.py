"""Labelled data: BEIR-format datasets, and relevance judgments kept as CSV.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``
after a header line). Judgments made in the app are keyed by query *text*, since a
typed query has no id, and travel as a CSV with the header ``query,doc_id,rating``.
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
from core.errors import DatasetError, DatasetUnavailableError

Qrels = dict[str, dict[str, int]]

JUDGMENT_COLUMNS: tuple[str, str, str] = ("query", "doc_id", "rating")
MIN_RATING = 0
MAX_RATING = 3


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


def load_judgments_csv(source: str | os.PathLike[str] | bytes) -> Qrels:
    """Read judgments from a CSV file path or its bytes: query text -> doc id -> rating.

    The header must name the columns ``query``, ``doc_id`` and ``rating`` (any order,
    extra columns ignored); ratings are integers 0-3. A later row for the same query
    and doc replaces an earlier one. Problems raise :class:`DatasetError` with the
    line number. The apostrophe :func:`dump_judgments_csv` puts before formula-like
    text (``'=x``) is removed again.
    """
    if isinstance(source, bytes):
        name, data = "judgments CSV", source
    else:
        path = Path(source)
        if not path.is_file():
            raise DatasetUnavailableError(f"Judgments file not found: {path}")
        name, data = path.name, path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name} is not UTF-8 text; save it as UTF-8 CSV.") from exc

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{name} is empty; expected a header {','.join(JUDGMENT_COLUMNS)}.")
        columns = [column.strip().lower() for column in header]
        missing = [column for column in JUDGMENT_COLUMNS if column not in columns]
        if missing:
            raise DatasetError(
                f"{name} line 1: header lacks {', '.join(missing)};"
                f" expected {','.join(JUDGMENT_COLUMNS)}."
            )
        query_at, doc_at, rating_at = (columns.index(column) for column in JUDGMENT_COLUMNS)
        judgments: Qrels = {}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{name} line {reader.line_num}"
            if len(row) < len(columns):
                raise DatasetError(f"{where}: expected {len(columns)} fields, got {len(row)}.")
            query = unspreadsheet(row[query_at].strip())
            doc_id = unspreadsheet(row[doc_at].strip())
            if not query or not doc_id:
                raise DatasetError(f"{where}: empty query or doc_id.")
            judgments.setdefault(query, {})[doc_id] = _parse_rating(row[rating_at], where)
    except csv.Error as exc:
        raise DatasetError(f"{name} line {reader.line_num}: malformed CSV ({exc}).") from exc
    return judgments


def _parse_rating(cell: str, where: str) -> int:
    try:
        rating = int(cell.strip())
    except ValueError:
        rating = None
    if rating is None or not MIN_RATING <= rating <= MAX_RATING:
        raise DatasetError(f"{where}: rating '{cell}' is not an integer {MIN_RATING}-{MAX_RATING}.")
    return rating


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
