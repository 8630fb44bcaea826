"""Where a file stops being UTF-8, said so that the user can find it in an editor."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from pathlib import Path

_BOM = b"\xef\xbb\xbf"
_BLOCK = 1 << 20


def _first_invalid(blocks: Iterable[bytes], head: bytes) -> tuple[int, int, int, int] | None:
    """(line, column, byte offset, byte) of the first byte that is not valid UTF-8 in the
    concatenation of ``blocks`` (whose first bytes are ``head``); None if all valid."""
    base = 0  # offset of data[0] in the file
    line, line_start = 1, 0
    carry = b""
    for block in chain(blocks, [b""]):  # lazily: a file may be larger than memory
        data = carry + block
        if not data:
            break
        try:
            data.decode("utf-8")
            good = len(data)
        except UnicodeDecodeError as exc:
            if not (block and exc.reason == "unexpected end of data"):
                at = exc.start
                line += data.count(b"\n", 0, at)
                newline = data.rfind(b"\n", 0, at)
                start = base + newline + 1 if newline >= 0 else line_start
                column = base + at - start + 1
                if line == 1 and head.startswith(_BOM):
                    column -= len(_BOM)
                return line, column, base + at, data[at]
            good = exc.start  # a character cut by the block's end: read on
        line += data.count(b"\n", 0, good)
        newline = data.rfind(b"\n", 0, good)
        if newline >= 0:
            line_start = base + newline + 1
        carry, base = data[good:], base + good
        if not block:
            break
    return None


def _message(name: str, found: tuple[int, int, int, int], head: bytes) -> str:
    line, column, offset, bad = found
    hint = ""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        hint = " (it looks like UTF-16)"
    elif bad >= 0x80:
        hint = " (it may be Latin-1 or Windows-1252)"
    return (
        f"{name} is not UTF-8 text: line {line:,}, column {column:,} (byte offset {offset:,}) "
        f"holds 0x{bad:02x}, which is not valid UTF-8{hint}; save the file as UTF-8"
    )


def not_utf8_message(name: str, data: bytes) -> str:
    """One line saying where ``data`` (a file's bytes, which failed to decode) stops
    being UTF-8: line and column from 1, byte offset from 0, the byte, a guess at the
    real encoding."""
    found = _first_invalid([data], data[:4])
    return _message(name, found, data[:4]) if found else f"{name} is not UTF-8 text"


def file_not_utf8_message(path: Path) -> str:
    """As :func:`not_utf8_message` for a file on disk, read in blocks (the error path of
    a streamed reader, which only knows the position inside its own buffer)."""

    def blocks():
        with path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                yield block

    with path.open("rb") as handle:
        head = handle.read(4)
    found = _first_invalid(blocks(), head)
    return _message(path.name, found, head) if found else f"{path.name} is not UTF-8 text"
