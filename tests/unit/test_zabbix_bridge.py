"""The Zabbix bridge's acknowledgements outward survive a change of leader: where sending
got to is in the store, not in the daemon that died."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.conftest import ROOT
from tests.receivers import free_port
from vigil import keys
from vigil.inventory import load_inventory
from vigil.model import ZabbixVars
from vigil.secrets import Secret
from vigil.store import Store
from vigil.zabbix.bridge import Bridge


def _bridge(store: Store) -> Bridge:
    inv = load_inventory(ROOT / "inventory/demo")
    z = ZabbixVars(url=f"http://127.0.0.1:{free_port()}/",  # nobody answers
                   token=Secret.parse("unused"))
    bridge = Bridge(inv, store, z, acknowledge=None,
                    now=lambda: dt.datetime.now(dt.UTC), every_s=3600)
    bridge.stop()
    return bridge


def test_a_new_leader_sends_the_acknowledgements_its_predecessor_had_not_sent(
        tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    first = store.append("incident.acked", "inc-1", {"by": "ops-duty"})
    store.append("incident.acked", "inc-2", {"by": "ops-duty"})  # not sent when it died
    with store.transaction() as tx:
        tx.set_state(keys.ZABBIX_ACKS_OUT, first.seq)
    assert _bridge(store)._acks_seen == first.seq  # inc-2 is sent next round


def test_the_first_bridge_sends_none_of_the_acknowledgements_made_before_it(
        tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    store.append("incident.acked", "inc-1", {"by": "ops-duty"})
    last = store.append("incident.acked", "inc-2", {"by": "ops-duty"})
    assert _bridge(store)._acks_seen == last.seq
