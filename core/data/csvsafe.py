"""CSV cells that a spreadsheet will not run as formulas.

Every CSV the app or the CLI writes (results export, judgments export, per-query
evaluation) passes its cells through :func:`spreadsheet_safe`. A *text* cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read by
Excel, LibreOffice or Google Sheets as a formula (``=HYPERLINK(...)`` from an uploaded
title becomes a live link), so it gets a leading apostrophe, the usual defence (OWASP
"CSV injection"): spreadsheets show the text and hide the apostrophe. Numbers stay
numbers (a negative score is still ``-2.5``), and JSON exports are never changed.

A text cell that already starts with apostrophes followed by one of those characters
gets one more, so :func:`unspreadsheet` undoes the change exactly: reading back a CSV
this module wrote gives the original strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
LINE_END: Final = "\r\n"
"""RFC 4180 line ends. Python's csv writer quotes a cell only for characters of its line
terminator, so with ``"\n"`` a carriage return inside a cell would split the row."""
_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")
_QUOTED = re.compile(r"'+[=+\-@\t\r]")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` with a leading apostrophe if it is text a spreadsheet would run.

    Only ``str`` values change; ``int``, ``float``, ``bool`` and ``None`` pass through.
    """
    if isinstance(value, str) and _NEEDS_QUOTE.match(value):
        return "'" + value
    return value


def spreadsheet_safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A dict row with every cell passed through :func:`spreadsheet_safe`."""
    return {key: spreadsheet_safe(value) for key, value in row.items()}


def spreadsheet_safe_cells(cells: Iterable[Any]) -> list[Any]:
    """A list row with every cell passed through :func:`spreadsheet_safe`."""
    return [spreadsheet_safe(value) for value in cells]


def unspreadsheet(cell: str) -> str:
    """Undo :func:`spreadsheet_safe` on a cell read back from one of our CSV files."""
    return cell[1:] if _QUOTED.match(cell) else cell
