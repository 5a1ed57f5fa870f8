"""Student text made safe to show: the one function every terminal line, HTML page and CSV cell
that coursekit writes passes student-controlled text through.

Student ids (folder names), notebook names, exception messages and reasons are written by
students.  On a terminal, ANSI/VT escape sequences (ESC, CSI, OSC ...) move the cursor, erase and
rewrite lines: an exception message once redrew its student's row of `coursekit report` as full
marks.  A carriage return or a line break does the same more simply (a fake row), and Unicode's
bidirectional controls (RLO, LRI ...) reorder what is shown, in a terminal, a browser or a
spreadsheet alike ("Trojan Source").  `printable` writes each such character as a visible Python
escape (``\\x1b``, ``\\u202e``), so the instructor sees that it was there and nothing acts on it.
Lone surrogates (which no terminal or file encoding accepts) are escaped the same way.

Why not a library: ``rich.markup.escape`` escapes rich's own markup, not control characters, and
stripping with a regular expression of known sequences misses what it does not know; escaping
every character of the classes below is complete by construction.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls, DEL, C1 controls; bidirectional marks, embeddings, overrides and isolates; the
# Unicode line and paragraph separators; lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
                     "\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, keep: str = "") -> str:
    """`text` with every control, bidirectional or separator character written as an escape
    (``\\x1b[2K`` for ESC [ 2 K), except those in `keep` (e.g. ``"\\n\\t"`` for a multi-line HTML
    block or a CSV cell)."""
    text = str(text)
    if keep:
        return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escaped(m), text)
    return _UNSAFE.sub(_escaped, text)
