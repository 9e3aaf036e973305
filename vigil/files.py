"""Reading a small file a user names (a password, a key, an offset): only a regular file,
and only as much as such a file can hold — /dev/zero or a pipe must not hang Vigil."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vigil.errors import UserError


class FileRefused(UserError):
    pass


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The file's bytes; refused with one line if it is missing, not a regular file, or
    larger than `limit` bytes."""
    try:
        # O_NONBLOCK: opening a pipe with no writer would block before any check.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileRefused(f"{what} {path}: not a regular file")
            data = fh.read(limit + 1)
    except OSError as exc:
        raise FileRefused(f"{what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise FileRefused(f"{what} {path}: larger than {limit} bytes")
    return data


def write_atomically(path: Path, data: bytes) -> None:
    """Whole or absent: a crash or a refusal never leaves half a file under the name."""
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
