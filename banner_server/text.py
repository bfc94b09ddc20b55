"""Text from outside (a request's path, a header, a file's name) written where people
read it: the access log and the command line.

Control characters (C0), DEL, C1 controls, quotes and backslashes are written as
\\xNN: a `%0a` in a path, an ANSI escape in a User-Agent or in a file's name cannot
forge or hide a line, retitle a terminal or clear its screen.
"""

from __future__ import annotations

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x22, 0x5C, *range(0x7F, 0xA0))}


def clean(value) -> str:
    """`value` as text with nothing a terminal or a log reader would act on."""
    return str(value).translate(_ESCAPES)
