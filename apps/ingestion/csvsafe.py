"""CSV cells a spreadsheet will not execute: text that starts like a formula gets a leading quote.

Covers =, +, -, @ and tab/CR openers, after leading spaces or no-break spaces, and every line of a
multi-line cell (TESTPLAN I1). Numbers stay numbers.
"""

from __future__ import annotations

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _defang_line(line: str) -> str:
    stripped = line.lstrip(" \u00a0")
    return "'" + line if stripped.startswith(_TRIGGERS) else line


def safe_cell(value: object) -> object:
    if not isinstance(value, str):
        return value
    return "\n".join(_defang_line(line) for line in value.split("\n"))
