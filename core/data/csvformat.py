"""How a CSV file separates its values, read from its first line.

Spreadsheets in many locales write ``;`` (the decimal comma takes ``,``), some tools
``|`` or tabs, and Excel honours (and some exporters write) a first line ``sep=;`` that
names the separator. Uploads and collection builds read CSV the same way.
"""

from __future__ import annotations

import re

DELIMITERS = (",", ";", "\t", "|")
_SEP_LINE = re.compile(r"^\ufeff?sep=(.)\s*$")


def sep_line(first_line: str) -> str | None:
    """The separator a first line ``sep=X`` names (Excel's hint line), else None."""
    match = _SEP_LINE.match(first_line.rstrip("\r\n"))
    return match.group(1) if match else None


def sniff_delimiter(header_line: str, default: str = ",") -> str:
    """The separator of a header line: the one of ``, ; TAB |`` it holds most often, if
    it holds it more often than ``default``; else ``default``."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > header_line.count(default) else default
