"""Signed, expiring links to an incident for one recipient (`vigil serve`'s /l/…): added
to each message as it is delivered, never stored with it, so the event log holds no
usable link. Following one lets that person acknowledge without a password, and nothing
else."""

from __future__ import annotations

import secrets
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from vigil.store import Store

SECRET_KEY = "console:secret"  # the store's state: the console's signing key


def secret(store: Store) -> str:
    """The site's signing key, made once: every daemon and console on one store agree."""
    found = store.get_state(SECRET_KEY)
    if isinstance(found, str):
        return found
    made = secrets.token_urlsafe(32)
    with store.transaction() as tx:
        found = tx.get_state(SECRET_KEY)
        if isinstance(found, str):
            return found
        tx.set_state(SECRET_KEY, made)  # no event: a key is never in the log
    return made


def signer(key: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt=f"vigil.{purpose}")


def make(key: str, contact: str, incident: str) -> str:
    return signer(key, "link").dumps({"c": contact, "i": incident})


class LinkRefused(Exception):
    """A link that is forged, damaged or expired."""


def read(key: str, token: str, max_hours: float) -> tuple[str, str]:
    """(contact, incident) of a link still good."""
    try:
        data: Any = signer(key, "link").loads(token, max_age=int(max_hours * 3600))
    except SignatureExpired:
        raise LinkRefused("this link has expired: sign in instead") from None
    except BadSignature:
        raise LinkRefused("this link is not one Vigil made") from None
    if not (isinstance(data, dict) and isinstance(data.get("c"), str)
            and isinstance(data.get("i"), str)):
        raise LinkRefused("this link is not one Vigil made")
    return data["c"], data["i"]


def url(base: str, key: str, contact: str, incident: str) -> str:
    return f"{base.rstrip('/')}/l/{make(key, contact, incident)}"
