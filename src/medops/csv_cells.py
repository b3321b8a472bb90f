"""CSV cells a spreadsheet opens as text, never as a formula (CSV injection, as OWASP names it).

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets: an audit reason of ``=HYPERLINK(...)`` or
``=cmd|...`` would act on the auditor's machine. Every CSV medops writes passes its text
cells through ``neutralize``, which puts a ``'`` in front of them (spreadsheets show the
cell without it).

The change is reversible, so an exported audit trail still verifies: ``restore`` removes
exactly the ``'`` that ``neutralize`` added. For that, a cell that already begins with
``'`` followed by one of those characters (or by another ``'``) gets a ``'`` too.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"
_AMBIGUOUS_AFTER_QUOTE = (*FORMULA_STARTS, _QUOTE)


def neutralize(cell: str) -> str:
    """The cell as a spreadsheet must show it: text, with a leading ``'`` where it could run."""
    if cell.startswith(FORMULA_STARTS) or (cell.startswith(_QUOTE) and cell[1:].startswith(_AMBIGUOUS_AFTER_QUOTE)):
        return _QUOTE + cell
    return cell


def restore(cell: str) -> str:
    """The original of a neutralized cell: ``restore(neutralize(x)) == x`` for every string."""
    if cell.startswith(_QUOTE) and cell[1:].startswith(_AMBIGUOUS_AFTER_QUOTE):
        return cell[1:]
    return cell
