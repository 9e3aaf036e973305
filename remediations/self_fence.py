"""Promotion on the self-fence's word, for a pair without a BMC (P4.3.2).

A primary with the self-fence (`roles/db_self_fence`) stops taking writes once it has
heard neither its standby nor the monitoring server for `limit_s`. So a silent primary
is certainly stopped — or powered off, or dead — once *both* have not heard its host for
`limit_s` + `margin_s`: the monitoring server by looking at the host's self-fence port,
the standby by its self-fence, asked over TCP. The host, not the database port: a hung
PostgreSQL whose listen backlog has filled is silent on its port while the host and its
self-fence are up, hear their peers and will never stop it. Either one still hearing it
means it may still hear them, so it has not fenced itself: no promotion. A lone standby
never decides, nor the monitoring server alone (a link between it and the primary alone
may be what failed).

A hung primary (its port accepts, nothing answers), or one whose disk is full, is the
other case: its self-fence hears its peers and will never stop it, so the monitoring
server orders that self-fence, over the same signed channel, to kill its PostgreSQL
(`order_kill`), then sees the port refuse before it promotes.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from vigil.model import Host

ROUND_S = 0.25
# A self-fence looks every 0.5 s and waits 0.5 s for an answer: heard this recently, the
# standby hears the primary now.
HEARS_S = 2.0


@dataclass(frozen=True)
class Outlasted:
    ok: bool  # True: neither side has heard the primary for its limit and margin
    why: str
    host_answers: bool = False  # the primary's host answered the monitoring server


def heard_by_standby(standby: Host, primary: Host, timeout: float = 2.0) -> float:
    """Seconds since the standby's self-fence last heard the primary's host (its
    self-fence's port), from an answer signed with the standby's key over a fresh nonce.
    Raises OSError or ValueError when it cannot be asked, its answer is unsigned or
    forged, or it does not listen for the primary; LookupError when the key's `env:`
    variable is not set."""
    assert standby.self_fence and primary.self_fence
    if standby.self_fence.key is None:
        raise ValueError("no vigil_self_fence.key to check its answer with")
    key = standby.self_fence.key.reveal().encode()
    nonce = secrets.token_hex(16).encode()
    with socket.create_connection((standby.address, standby.self_fence.port),
                                  timeout=timeout) as conn:
        conn.settimeout(timeout)
        conn.sendall(nonce + b"\n")
        reply = conn.makefile("rb")
        line, mac = reply.readline().rstrip(b"\n"), reply.readline().strip()
    if not hmac.compare_digest(mac, _mac(key, nonce, line)):
        raise ValueError("its answer is not signed with the pair's key")
    said = json.loads(line or b"null")
    if not isinstance(said, dict):
        raise ValueError("no answer")
    for peer in said.get("peers", []):
        if peer.get("address") == primary.address and peer.get("port") == primary.self_fence.port:
            return float(peer["silent_s"])
    raise ValueError(f"it does not listen for {primary.address}:{primary.self_fence.port}")


@dataclass(frozen=True)
class Killed:
    stopped: bool  # its self-fence saw the postmaster gone
    why: str


def order_kill(primary: Host, timeout: float = 15.0) -> Killed:
    """Order a failed primary's self-fence to kill its PostgreSQL: `kill` and our nonce, its
    challenge, our HMAC over both; its answer signed over both nonces. Raises OSError or
    ValueError when it cannot be told or its answer is not signed with the pair's key;
    LookupError when the key's `env:` variable is not set."""
    assert primary.self_fence
    if primary.self_fence.key is None:
        raise ValueError("no vigil_self_fence.key to sign the order with")
    key = primary.self_fence.key.reveal().encode()
    ours = secrets.token_hex(16).encode()
    with socket.create_connection((primary.address, primary.self_fence.port),
                                  timeout=2.0) as conn:
        conn.settimeout(timeout)  # it waits up to 10 s for the postmaster to be gone
        conn.sendall(b"kill " + ours + b"\n")
        reply = conn.makefile("rb")
        challenge = reply.readline().strip()
        if not challenge.startswith(b"challenge "):
            raise ValueError("it takes no kill order (no key, or an older self-fence)")
        theirs = challenge[len(b"challenge "):]
        conn.sendall(_mac(key, b"kill", ours, theirs) + b"\n")
        line, mac = reply.readline().rstrip(b"\n"), reply.readline().strip()
    if not line:
        raise ValueError("it refused the order (not signed with its key)")
    if not hmac.compare_digest(mac, _mac(key, ours, theirs, line)):
        raise ValueError("its answer is not signed with the pair's key")
    said = json.loads(line)
    return Killed(bool(said.get("stopped")), str(said.get("why", "")))


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"\n".join(parts), hashlib.sha256).hexdigest().encode()


def host_answers(host: Host, timeout: float = 0.5) -> bool:
    """Whether the host's kernel answers on its self-fence's port (accepts or refuses).
    Not the database port: a hung PostgreSQL whose backlog is full is silent there while
    its host, and its self-fence, are up and hear their peers."""
    assert host.self_fence
    try:
        with socket.create_connection((host.address, host.self_fence.port), timeout=timeout):
            return True
    except OSError as exc:
        return exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET)


def outlasted(primary: Host, standby: Host,
              answers: Callable[[Host], bool] = host_answers) -> Outlasted:
    """Wait until neither the monitoring server (from now: what it saw before was the
    database, not the host) nor the standby has heard the primary's host for its
    self-fence's limit and margin. Gives up as soon as either hears it."""
    assert primary.self_fence
    needed = primary.self_fence.limit_s + primary.self_fence.margin_s
    started = time.monotonic()
    deadline = started + needed + 2 * ROUND_S
    while True:
        if answers(primary):
            return Outlasted(False, f"{primary.name}'s host answers the monitoring server: "
                                    "its self-fence hears us and will not stop it; not "
                                    "promoting", host_answers=True)
        try:
            theirs = heard_by_standby(standby, primary)
        except (OSError, ValueError, LookupError) as exc:  # LookupError: the key's env var
            return Outlasted(False, f"cannot ask {standby.name}'s self-fence whether it "
                                    f"hears {primary.name} ({exc}): not promoting")
        if theirs < HEARS_S:
            return Outlasted(False, f"{standby.name} hears {primary.name} ({theirs:.1f} s "
                                    "ago): it has not fenced itself and may take writes; "
                                    "not promoting")
        ours = time.monotonic() - started
        if ours >= needed and theirs >= needed:
            return Outlasted(True, f"neither the monitoring server ({ours:.1f} s) nor "
                                   f"{standby.name} ({theirs:.1f} s) has heard it for its "
                                   f"self-fence's limit and margin ({needed:g} s): it has "
                                   "stopped itself")
        if time.monotonic() > deadline:
            return Outlasted(False, f"{standby.name} heard {primary.name} {theirs:.1f} s ago "
                                    f"(needed: {needed:g} s of silence): it may still take "
                                    "writes; not promoting")
        time.sleep(ROUND_S)
