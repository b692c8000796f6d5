"""xlsx formula cells whose result was never saved.

Excel saves each formula's last result next to the formula; the reader (openpyxl with
``data_only=True``) reads that result. A workbook written by a script (openpyxl, some exporters)
holds the formula only, and its cells read as empty: a column of such formulas would vanish without
a word. This module finds those cells in the sheet's XML with C regular expressions (a sheet
without any ``<f>`` element costs one search), instead of a second, formula-keeping parse by
openpyxl that would double the reading time.

A cell counts as having no saved result when its ``<v>`` element is missing, self-closing or
empty — except an empty ``<v></v>`` of a string formula (``t="str"``), which is a saved empty
text (``=IF(A2="","",…)``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

_ANY_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")
# one cell whose content starts with its formula: attributes, then everything up to </c>
_FORMULA_CELL = re.compile(
    rb"<(?:\w+:)?c\b([^>]*?)(?<!/)>\s*<(?:\w+:)?f\b(.*?)</(?:\w+:)?c>", re.DOTALL
)
_FILLED_VALUE = re.compile(rb"<(?:\w+:)?v\b[^>]*?(?<!/)>\s*[^<\s]")
_EMPTY_VALUE = re.compile(rb"<(?:\w+:)?v\b[^>]*?(?<!/)>\s*</")
_STRING_TYPE = re.compile(rb"""\bt\s*=\s*["']str["']""")
_CELL_REF = re.compile(rb"""\br\s*=\s*["']\$?([A-Za-z]{1,3})\$?([0-9]+)["']""")


def _column_index(letters: bytes) -> int:
    """``A`` → 0, ``Z`` → 25, ``AA`` → 26 (Excel column letters, 0-based)."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ch - 64)
    return n - 1


def unsaved_formula_cells(xml: bytes) -> tuple[list[tuple[int, int]], int]:
    """(row, column) of each formula cell without a saved result in one sheet's XML, both 0-based
    (row 0 = Excel row 1, column 0 = A), and the number of such cells without a cell reference."""
    if not _ANY_FORMULA.search(xml):
        return [], 0
    found: list[tuple[int, int]] = []
    unplaced = 0
    for m in _FORMULA_CELL.finditer(xml):
        attrs, body = m.group(1), m.group(2)
        if _FILLED_VALUE.search(body):
            continue
        if _STRING_TYPE.search(attrs) and _EMPTY_VALUE.search(body):
            continue  # a saved empty text
        ref = _CELL_REF.search(attrs)
        if ref is None:
            unplaced += 1
            continue
        found.append((int(ref.group(2)) - 1, _column_index(ref.group(1))))
    return found, unplaced


def sheet_xml(path: Path, member: str | None) -> bytes | None:
    """The XML of one worksheet of an xlsx file (``member`` as openpyxl names it), None if absent."""
    if not member:
        return None
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for name in (member, member.lstrip("/")):
            if name in names:
                return z.read(name)
    return None
