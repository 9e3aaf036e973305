"""Errors as people read them."""

from __future__ import annotations


def first_line(text: str, default: str) -> str:
    """The first line of an error message (drivers write several), else `default`."""
    lines = text.strip().splitlines()
    return lines[0] if lines else default


class UserError(Exception):
    """Bad input or setting a person can fix: its message is the one line they read
    (`vigil: …`, exit 3), never a traceback."""
