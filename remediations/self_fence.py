"""Promotion on the self-fence's word, for a pair without a BMC (P4.3.2).

A primary with the self-fence (`roles/db_self_fence`) stops taking writes once it has
heard neither its standby nor the monitoring server for `limit_s`. So a silent primary
is certainly stopped — or powered off, or dead — once *both* have not heard it for
`limit_s` + `margin_s`: the monitoring server by its own checks, the standby by its
self-fence, asked over TCP. Either one still hearing it means it may still hear them, so
it has not fenced itself: no promotion. A lone standby never decides, nor the monitoring
server alone (a link between it and the primary alone may be what failed).
"""

from __future__ import annotations

import json
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


def heard_by_standby(standby: Host, primary: Host, timeout: float = 2.0) -> float:
    """Seconds since the standby's self-fence last heard the primary. Raises OSError or
    ValueError when it cannot be asked or does not listen for the primary."""
    assert standby.self_fence and primary.pg_port
    with socket.create_connection((standby.address, standby.self_fence.port),
                                  timeout=timeout) as conn:
        conn.settimeout(timeout)
        said = json.loads(conn.makefile().readline() or "null")
    if not isinstance(said, dict):
        raise ValueError("no answer")
    for peer in said.get("peers", []):
        if peer.get("address") == primary.address and peer.get("port") == primary.pg_port:
            return float(peer["silent_s"])
    raise ValueError(f"it does not listen for {primary.address}:{primary.pg_port}")


def outlasted(primary: Host, standby: Host, last_answered: float | None,
              still_silent: Callable[[], str]) -> Outlasted:
    """Wait until neither the monitoring server (since `last_answered`, a time.monotonic()
    of this process; None: from now) nor the standby has heard the primary for its
    limit and margin. `still_silent` returns "" while the primary stays silent to us,
    else what it did. Gives up as soon as the standby hears it."""
    assert primary.self_fence
    needed = primary.self_fence.limit_s + primary.self_fence.margin_s
    started = time.monotonic()
    ours_since = last_answered if last_answered is not None else started
    deadline = started + needed + 2 * ROUND_S
    theirs = 0.0
    while True:
        answered = still_silent()
        if answered:
            return Outlasted(False, f"{primary.name} {answered} while waiting out its "
                                    "self-fence: not promoting")
        try:
            theirs = heard_by_standby(standby, primary)
        except (OSError, ValueError) as exc:
            return Outlasted(False, f"cannot ask {standby.name}'s self-fence whether it "
                                    f"hears {primary.name} ({exc}): not promoting")
        if theirs < HEARS_S:
            return Outlasted(False, f"{standby.name} hears {primary.name} ({theirs:.1f} s "
                                    "ago): it has not fenced itself and may take writes; "
                                    "not promoting")
        ours = time.monotonic() - ours_since
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
