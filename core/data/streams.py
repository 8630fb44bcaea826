"""Read records from a file as a stream, never holding the whole file in memory.

Formats, by extension (:func:`source_format`):

* ``.json``: an array of objects, or an object holding one array of objects; parsed
  incrementally (one record at a time) by :func:`iter_json_array`.
* ``.jsonl`` / ``.ndjson``: one object per line (blank lines skipped).
* ``.csv`` / ``.tsv``: a header row, then one record per row (values are strings;
  empty cells are left out of the record).
* ``.parquet``: read in row batches with pyarrow.

Every reader yields plain ``dict`` records and raises :class:`DatasetError` with the
record (or line) number on bad input.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core.data.documents import json_type
from core.data.csvformat import sep_line, sniff_delimiter
from core.data.encoding import file_not_utf8_message
from core.models.errors import DatasetError, DatasetUnavailableError

FORMATS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
_CHUNK = 1 << 20
_WS = " \t\r\n"
_MAX_RECORD = 64 << 20  # characters: a longer "record" is reported as invalid JSON


def source_format(path: Path) -> str:
    """The format of ``path`` from its extension; :class:`DatasetError` if unknown."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DatasetError(
            f"{path.name}: unknown file type '{path.suffix}'; "
            f"use one of {', '.join(sorted(FORMATS))}"
        )
    return fmt


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of the file at ``path``, one at a time, in file order."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DatasetUnavailableError(f"file not found: {file}")
    fmt = source_format(file)
    try:
        if fmt == "json":
            with file.open("r", encoding="utf-8-sig") as handle:
                yield from _objects(iter_json_array(handle, file.name), file.name)
        elif fmt == "jsonl":
            yield from _iter_jsonl(file)
        elif fmt in ("csv", "tsv"):
            yield from _iter_csv(file, "\t" if fmt == "tsv" else ",")
        else:
            yield from _iter_parquet(file)
    except UnicodeDecodeError:
        raise DatasetError(f"{file_not_utf8_message(file)}.") from None
    except RecursionError:
        raise DatasetError(
            f"{file.name} nests arrays or objects too deeply to read (thousands of levels)"
        ) from None


def _objects(values: Iterator[Any], source: str) -> Iterator[dict[str, Any]]:
    for i, value in enumerate(values):
        if not isinstance(value, dict):
            raise DatasetError(
                f"{source}: record {i} is a JSON {json_type(value)}, not an object with named "
                "fields"
            )
        yield value


def iter_json_array(handle: io.TextIOBase, source: str = "input") -> Iterator[Any]:
    """The items of a JSON array read incrementally from ``handle``.

    The top level may be the array itself or an object with one array value (the first
    array found is streamed; other keys are skipped). Memory holds one item at a time
    (plus a read buffer of about 1 MB).
    """
    reader = _Buffer(handle)
    decoder = json.JSONDecoder()
    first = reader.peek_non_ws()
    if first == "{":
        reader.pos += 1
        while True:
            ch = reader.peek_non_ws()
            if ch == "}" or ch == "":
                raise DatasetError(f"{source}: the JSON object holds no array of records")
            key = reader.decode(decoder, source)
            if not isinstance(key, str) or reader.peek_non_ws() != ":":
                raise DatasetError(f"{source}: invalid JSON object near byte {reader.offset}")
            reader.pos += 1
            if reader.peek_non_ws() == "[":
                break
            reader.decode(decoder, source)  # a non-array value: skip it
            if reader.peek_non_ws() == ",":
                reader.pos += 1
    elif first != "[":
        raise DatasetError(f"{source}: expected a JSON array of records (or an object holding one)")
    reader.pos += 1  # the '['
    if reader.peek_non_ws() == "]":
        return
    while True:
        yield reader.decode(decoder, source)
        ch = reader.peek_non_ws()
        if ch == ",":
            reader.pos += 1
            continue
        if ch == "]":
            return
        raise DatasetError(
            f"{source}: invalid JSON near byte {reader.offset}: expected ',' or ']' between records"
        )


class _Buffer:
    """A sliding text buffer over a file for incremental ``raw_decode``."""

    def __init__(self, handle: io.TextIOBase) -> None:
        self.handle = handle
        self.text = ""
        self.pos = 0
        self.consumed = 0  # characters dropped from the front
        self.eof = False

    @property
    def offset(self) -> int:
        return self.consumed + self.pos

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.consumed += self.pos
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        return True

    def peek_non_ws(self) -> str:
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def decode(self, decoder: json.JSONDecoder, source: str) -> Any:
        self.peek_non_ws()
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # Incomplete at the buffer's end: read more and retry; else it is invalid.
                if len(self.text) - self.pos < _MAX_RECORD and self._more():
                    continue
                raise DatasetError(
                    f"{source} is not valid JSON: {exc.msg} near byte {self.consumed + exc.pos}"
                ) from exc
            # A number or literal touching the buffer's end may continue in the next chunk.
            if end >= len(self.text) and not self.eof and self._more():
                continue
            self.pos = end
            return value


def _iter_jsonl(file: Path) -> Iterator[dict[str, Any]]:
    with file.open("r", encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    f"{file.name}: line {line_no} is not valid JSON: {exc.msg}"
                ) from exc
            if not isinstance(value, dict):
                raise DatasetError(
                    f"{file.name}: line {line_no} is a JSON {json_type(value)}, not an object"
                )
            yield value


def _iter_csv(file: Path, delimiter: str) -> Iterator[dict[str, Any]]:
    """Rows of a CSV file as records; the separator is ``delimiter`` unless the first line
    names one (``sep=;``) or the header holds ``; | TAB`` more often (core.data.csvformat)."""
    csv.field_size_limit(1 << 28)
    with file.open("r", encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
        named = sep_line(first)
        lines: Iterable[str] = handle
        if named is None:
            lines = itertools.chain([first], handle)
        reader = csv.reader(lines, delimiter=named or sniff_delimiter(first, delimiter))
        header = next(reader, None)
        if not header:
            raise DatasetError(f"{file.name} is empty: expected a header row")
        names = [h.strip() for h in header]
        if len(set(names)) != len(names) or not all(names):
            raise DatasetError(f"{file.name}: the header has empty or repeated column names")
        for row_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) > len(names):
                raise DatasetError(
                    f"{file.name}: row {row_no} has {len(row)} cells for {len(names)} columns"
                )
            yield {n: v for n, v in zip(names, row, strict=False) if v != ""}


def _iter_parquet(file: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DatasetError(f"{file.name} is not a readable Parquet file: {exc}") from exc
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield {k: v for k, v in row.items() if v is not None}
