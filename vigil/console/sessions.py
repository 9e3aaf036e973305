"""Console sessions: a random id in a cookie, its digest and what it may do in the store
(so reading the database gives no usable session); a CSRF token per session and a
one-time nonce per form, so a forged or replayed post changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from vigil import keys
from vigil.identity import Actor, Via
from vigil.store import Store

COOKIE = "vigil_session"
_USED_KEPT = 500  # nonces remembered per session (a session's forms, far more than used)


@dataclass
class Session:
    digest: str
    contact: str
    via: Via  # console (signed in) or link (may only acknowledge `incident`)
    address: str | None
    expires: str
    csrf: str
    lang: str
    incident: str | None = None  # a link's incident
    used: list[str] | None = None

    def actor(self) -> Actor:
        return Actor(self.contact, self.via, self.digest[:16], address=self.address)


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(store: Store, contact: str, via: Via, address: str | None, hours: float,
          now: dt.datetime, lang: str, incident: str | None = None) -> str:
    """A new session; returns the id for the cookie (only its digest is kept)."""
    session_id = secrets.token_urlsafe(32)
    record: dict[str, Any] = {"contact": contact, "via": via, "address": address,
              "expires": (now + dt.timedelta(hours=hours)).isoformat(),
              "csrf": secrets.token_urlsafe(24), "lang": lang, "incident": incident,
              "used": []}
    with store.transaction() as tx:
        for key, old in tx.states(keys.SESSION).items():  # the expired ones go
            if now >= dt.datetime.fromisoformat(old["expires"]):
                tx.delete_state(key)
        tx.set_state(keys.session(digest(session_id)), record)
        tx.append("console.session_started", contact, {
            "via": via, "address": address, "session": digest(session_id)[:16],
            **({"incident": incident} if incident else {})})
    return session_id


def find(store: Store, session_id: str | None, now: dt.datetime) -> Session | None:
    if not session_id or len(session_id) > 100:
        return None
    d = digest(session_id)
    record: Any = store.get_state(keys.session(d))
    if not isinstance(record, dict) or now >= dt.datetime.fromisoformat(record["expires"]):
        return None
    account = store.get_state(keys.account(record["contact"]))
    if record["via"] == "console" and (not account or account.get("disabled")):
        return None  # disabled since: the session ends with the account
    return Session(d, record["contact"], record["via"], record.get("address"),
                   record["expires"], record["csrf"], record.get("lang", "zh"),
                   record.get("incident"), record.get("used", []))


def end(store: Store, session: Session) -> None:
    with store.transaction() as tx:
        tx.delete_state(keys.session(session.digest))
        tx.append("console.session_ended", session.contact, {"session": session.digest[:16]})


def set_lang(store: Store, session: Session, lang: str) -> None:
    with store.transaction() as tx:
        record = tx.get_state(keys.session(session.digest))
        if record:
            record["lang"] = lang
            tx.set_state(keys.session(session.digest), record)


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def spend(store: Store, session: Session, csrf: str, nonce: str) -> str:
    """Accept a form once: "" when good, else why not (nothing is changed)."""
    if not (csrf and secrets.compare_digest(csrf, session.csrf)):
        return "csrf"
    if not nonce or len(nonce) > 64:
        return "csrf"
    with store.transaction() as tx:
        record = tx.get_state(keys.session(session.digest))
        if record is None:
            return "expired"
        if nonce in record["used"]:
            return "replayed"
        record["used"] = [*record["used"], nonce][-_USED_KEPT:]
        tx.set_state(keys.session(session.digest), record)
    return ""
