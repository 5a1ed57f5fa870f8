"""CSV files that a spreadsheet opens as data, never as formulas: the one writer for every CSV coursekit
writes (the class report's grades.csv, `coursekit export`).

Excel, LibreOffice and Google Sheets treat a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a
formula, and a leading tab or carriage return can hide such a start from a naive check.  A student id,
a name from the LMS or an error message can begin with any of them ("CSV injection", OWASP).  Text
cells that do are written with a leading apostrophe, which spreadsheets show as text and do not
display; numbers are written as numbers, so a negative score stays a number.  Line breaks and tabs
in text are kept (the csv module quotes them); every other control or bidirectional character is
written as a visible escape by `coursekit.printable`, as on the terminal and in HTML.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .printable import printable

__all__ = ["FORMULA_STARTS", "neutralise", "write_csv"]

# What a spreadsheet may read as the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | float | None


def neutralise(value: Cell) -> str | int | float:
    """The cell as it is safe to write: numbers unchanged, None empty, text that a spreadsheet would
    read as a formula prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):  # a bool is an int; write it as the word
        return str(value)
    if isinstance(value, (int, float)):
        return value
    text = printable(value, keep="\n\t")
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
    """Write a CSV file with every cell neutralised, atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([neutralise(h) for h in header])
        writer.writerows([neutralise(c) for c in row] for row in rows)
    os.replace(tmp, path)
