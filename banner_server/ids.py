"""Ids (campaign, banner, click, conversion) are integers 0 ... 2^63-1 everywhere
(SPEC §5): what the loader accepts, the server serves, Redis and JSON carry."""

from __future__ import annotations

MAX_ID = 2**63 - 1


def parse_id(text: str) -> int | None:
    """The id written as `text` (ASCII digits), or None.  (str methods: half the time of
    a regular expression, and the server parses one on every request.)"""
    if text.isdigit() and text.isascii() and len(text) <= 19:
        value = int(text)
        if value <= MAX_ID:
            return value
    return None
