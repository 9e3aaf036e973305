"""Turn check Results into events: one `result` event per status change, not per repeat."""

from __future__ import annotations

from collections.abc import Iterable

from vigil import keys
from vigil.result import Result
from vigil.store import Event, Store, Tx


def log_changes(tx: Tx, results: Iterable[Result]) -> None:
    """Append a `result` event for each Result whose status differs from the last recorded."""
    for r in results:
        key = keys.check(r.key)
        last = tx.get_state(key)
        previous = last["status"] if last else None
        if previous == r.status.value:
            continue
        tx.append("result", r.key, {
            "check": r.check, "kind": r.kind, "system": r.system, "target": r.target,
            "fault_class": r.fault_class.value, "status": r.status.value,
            "previous": previous, "message": r.message, "message_zh": r.message_zh,
            "metrics": r.metrics, "observed_at": r.observed_at.isoformat(),
            "duration_s": r.duration_s,
        })
        tx.set_state(key, {"status": r.status.value, "since": r.observed_at.isoformat()})


def log_results(store: Store, results: Iterable[Result]) -> list[Event]:
    with store.transaction() as tx:
        log_changes(tx, results)
        return list(tx.appended)
