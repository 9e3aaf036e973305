"""Errors as people read them."""

from __future__ import annotations

from typing import Any

MAX_MESSAGE = 1000  # a message quotes input; a megabyte of it helps nobody


def one_line(text: str) -> str:
    """A message as exactly one line of text: whatever a user's input brought in that
    would break it (line breaks of every kind, control characters, lone surrogates) is
    shown escaped, and what is past MAX_MESSAGE characters is cut."""
    cut = text[:MAX_MESSAGE]
    line = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in cut)
    return line + ("…" if len(text) > MAX_MESSAGE else "")


def first_line(text: str, default: str) -> str:
    """The first line of an error message (drivers write several), else `default`."""
    lines = text.strip().splitlines()
    return lines[0] if lines else default


class UserError(Exception):
    """Bad input or setting a person can fix: its message is the one line they read
    (`vigil: …`, exit 3), never a traceback."""


def first_error(exc: Any, default: str = "value") -> str:
    """The first problem of a pydantic ValidationError, as `where: what`."""
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc']) or default}: {error['msg']}"
