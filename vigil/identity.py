"""Who is acting: the person a command or a console request was proven to be, and how.

Every event appended while an actor is set carries it (`actor` in the event's data), so
the log names an authenticated person for each thing people did, with the way they were
identified, their address and their session."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

# unix: the OS user mapped to the contact; password: the contact's password (and second
# factor); console: a signed-in browser session; link: a message's signed link (may only
# acknowledge); override: root acting for a contact, with a reason.
Via = Literal["unix", "password", "console", "link", "override"]


@dataclass(frozen=True)
class Actor:
    contact: str
    via: Via
    session: str  # one sign-in, one OS account: two approvals never come from the same one
    address: str | None = None
    reason: str | None = None  # why root overrode identity

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("vigil_actor",
                                                                       default=None)


def current() -> Actor | None:
    return _current.get()


def become(actor: Actor) -> None:
    """The actor of the rest of this context (a CLI command: the whole process)."""
    _current.set(actor)


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)
