"""Text from the database or a file, made safe to print on an operator's terminal.

Names, notes, instructions, a file's keys and values are written by anyone with an API key or a
staff account, and the management commands print them. A control character in them is an
instruction to the terminal: ESC[2J clears the screen, ESC]52 writes the clipboard, CR or a
newline forges a line of the command's own output, and UTF-8 terminals obey the C1 controls
(U+009B is CSI) too. Every command prints such text through `terminal_safe`, which shows each
control character as its JSON escape (`\\u001b`) instead of sending it: the same notation a
JSON value in the output already uses (config_diff's values), so such a value stays valid JSON
for the same text.
"""

import re
from collections.abc import Iterable

from django.core.management.base import CommandError, OutputWrapper

# C0 (ESC among them), DEL and C1. A tab does nothing worse than a space. A newline is kept only
# in text meant to span lines (a CommandError's paragraph), never in one row of a listing.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r"}


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character but tab (and newline, if `keep_newlines`) written
    as its escape: `\\n`, `\\r`, else `\\u00XX`."""
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(_escape, str(text))


def _escape(match: re.Match) -> str:
    character = match.group()
    return _SHORT_ESCAPES.get(character) or f"\\u{ord(character):04x}"


def command_refused(stderr: OutputWrapper, reasons: Iterable[str], summary: str) -> CommandError:
    """Write each reason on its own line of a command's `stderr`, and return the CommandError
    (to raise) that ends the command with `summary`; all of it terminal-safe."""
    for reason in reasons:
        stderr.write(terminal_safe(reason))
    return CommandError(terminal_safe(summary))
