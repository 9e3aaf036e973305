"""The durable outbox: a message is committed to the store before anyone tries to send it.

Delivery is at least once: a crash between sending and recording "sent" sends again on
restart, with the same idempotency key, so the receiver can drop the duplicate. Failed
deliveries retry with capped exponential backoff, forever: nothing is dropped. A channel
that keeps failing is an event, a metric and a message through the contact's other
channels (or, failing those, to the implementation team) — never a silent log line.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from vigil import keys, links
from vigil.delivery import channels
from vigil.domain import Role
from vigil.model import Contact, Inventory
from vigil.secrets import SecretMissing
from vigil.store import Store, Tx

log = logging.getLogger("vigil.outbox")

ALERT_AFTER = 3  # failed attempts before the channel itself is reported
MAX_BACKOFF_S = 600.0
BASE_BACKOFF_S = 2.0

Sender = Callable[[str, str, str, str], "str | None"]


def queue(tx: Tx, *, key: str, contact: Contact, channel: int, title: str, body: str,
          incident: str | None, kind: str, now: dt.datetime) -> bool:
    """Queue one message for one channel of one contact; a key already queued is a no-op."""
    if tx.get_state(keys.message(key)) is not None:
        return False
    tx.append("message.queued", key, {"contact": contact.id, "channel": channel,
                                      "channel_kind": channels.kind_of(_url_or_blank(contact,
                                                                                     channel)),
                                      "incident": incident, "kind": kind, "title": title,
                                      "body": body})
    tx.set_state(keys.message(key), {"contact": contact.id, "channel": channel, "title": title,
                                "body": body, "incident": incident, "kind": kind,
                                "status": "pending", "attempts": 0})
    tx.set_state(keys.pending(key), {"due": now.isoformat()})
    return True


def _url_or_blank(contact: Contact, channel: int) -> str:
    try:
        return contact.channels[channel].reveal()
    except (SecretMissing, IndexError):
        return ""


def backoff(attempts: int) -> float:
    return min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(0, attempts - 1))


class Outbox:
    def __init__(self, inv: Inventory, store: Store, sender: Sender | None = None) -> None:
        self.inv, self.store = inv, store
        self.contacts = {c.id: c for c in inv.contacts}
        self.sender = sender or (lambda url, title, body, key:
                                 channels.send(url, title, body, key))
        self.failures_total = 0
        self.sent_total = 0
        self._link_key: str | None = None

    def pending(self) -> dict[str, Any]:
        return self.store.states(keys.PENDING)

    def deliver(self, now: dt.datetime, limit: int = 200) -> int:
        """Try every due message once; return how many were delivered."""
        delivered = 0
        due = sorted((dt.datetime.fromisoformat(v["due"]), k.removeprefix(keys.PENDING))
                     for k, v in self.pending().items())
        for when, key in due[:limit]:
            if when > now:
                break
            msg = self.store.get_state(keys.message(key))
            if msg is None or msg["status"] != "pending":
                continue
            error = self._send(key, msg)
            with self.store.transaction() as tx:
                if error is None:
                    tx.append("message.sent", key, {"attempts": msg["attempts"] + 1,
                                                    "incident": msg["incident"]})
                    tx.set_state(keys.message(key), {**msg, "status": "sent",
                                                "attempts": msg["attempts"] + 1})
                    tx.delete_state(keys.pending(key))
                    delivered += 1
                    self.sent_total += 1
                else:
                    self._failed(tx, key, msg, error, now)
        return delivered

    def _send(self, key: str, msg: dict[str, Any]) -> str | None:
        contact = self.contacts.get(msg["contact"])
        if contact is None or msg["channel"] >= len(contact.channels):
            return "contact or channel no longer in the inventory"
        try:
            url = contact.channels[msg["channel"]].reveal()
        except SecretMissing as exc:
            return str(exc)
        try:
            return self.sender(url, msg["title"], self._with_link(contact, msg), key)
        except Exception as exc:  # a channel bug must not stop the outbox
            return f"{type(exc).__name__}: {exc}"

    def _with_link(self, contact: Contact, msg: dict[str, Any]) -> str:
        """The body, and the recipient's own signed link to the incident when the console
        has a public address (made now: the stored message holds none)."""
        base = self.inv.console.url
        if not (base and msg.get("incident")):
            return str(msg["body"])
        if self._link_key is None:
            self._link_key = links.secret(self.store)
        link = links.url(base, self._link_key, contact.id, msg["incident"])
        said = "在控制台查看并确认" if contact.lang == "zh" else "See and acknowledge"
        return f"{msg['body']}\n\n{said}: {link}"

    def _failed(self, tx: Tx, key: str, msg: dict[str, Any], error: str,
                now: dt.datetime) -> None:
        attempts = msg["attempts"] + 1
        self.failures_total += 1
        retry_at = now + dt.timedelta(seconds=backoff(attempts))
        tx.append("message.failed", key, {"attempts": attempts, "error": error,
                                          "retry_at": retry_at.isoformat(),
                                          "incident": msg["incident"]})
        tx.set_state(keys.message(key), {**msg, "attempts": attempts, "last_error": error})
        tx.set_state(keys.pending(key), {"due": retry_at.isoformat()})
        log.warning("delivery failed", extra={"key": key, "attempts": attempts, "error": error})
        if attempts == ALERT_AFTER and not msg["kind"].startswith("channel-failing"):
            self._report_channel(tx, key, msg, error, now)

    def _report_channel(self, tx: Tx, key: str, msg: dict[str, Any], error: str,
                        now: dt.datetime) -> None:
        contact = self.contacts[msg["contact"]]
        tx.append("channel.failing", f"{contact.id}#{msg['channel']}",
                  {"contact": contact.id, "channel": msg["channel"], "error": error,
                   "message": key})
        title = f"【Vigil 通知渠道故障】{contact.name} 的第 {msg['channel'] + 1} 个渠道"
        body = (f"发给 {contact.name} 的消息连续 {ALERT_AFTER} 次投递失败：{error}。"
                f"消息仍在重试。原消息：{msg['title']}\n\n{msg['body']}")
        # The same contact's other channels first, then the implementation team's.
        routes = [(contact, i) for i in range(len(contact.channels)) if i != msg["channel"]]
        if not routes:
            routes = [(c, 0) for c in self.inv.contacts
                      if Role.IMPLEMENTATION_TEAM in c.roles and c.id != contact.id
                      and c.channels]
        for other, index in routes:
            queue(tx, key=f"{key}/channel-failing/{other.id}#{index}", contact=other,
                  channel=index, title=title, body=body, incident=msg["incident"],
                  kind="channel-failing", now=now)
