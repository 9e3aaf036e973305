"""First aid promotes only when the old primary provably is not there to fence."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT
from tests.receivers import free_port
from vigil.inventory import load_inventory
from vigil.model import FenceDevice, Host, Inventory, SelfFence
from vigil.remediations.first_aid import promote_standby
from vigil.secrets import Secret


@pytest.fixture
def pair() -> Iterator[tuple[Inventory, int, int]]:
    """The lab inventory with its database pair moved to two free loopback ports."""
    inv = load_inventory(ROOT / "inventory/lab")
    primary, standby = free_port(), free_port()
    for name, port in (("lab-db-primary", primary), ("lab-db-standby", standby)):
        inv.hosts[name] = Host(**{**inv.hosts[name].model_dump(), "pg_port": port})
    yield inv, primary, standby


def test_a_hung_primary_without_a_fence_device_is_left_to_the_fencing_playbook(
        pair: tuple[Inventory, int, int]) -> None:
    inv, primary, _ = pair
    with socket.socket() as listener:  # the port accepts, nothing answers: a hung server
        listener.bind(("127.0.0.1", primary))
        listener.listen()
        aid = promote_standby(inv, {})
    assert not aid.done
    assert aid.why == "old primary lab-db-primary still accepts connections and has no fence " \
                      "device (vigil_fence) nor self-fences (vigil_self_fence on both nodes): " \
                      "left to the playbook"


def test_a_silent_primary_is_not_powered_off_while_its_standby_cannot_take_over(
        pair: tuple[Inventory, int, int]) -> None:
    inv, primary, standby = pair
    device = FenceDevice(ip="127.0.0.1", port=free_port(), username="admin",
                         password=Secret.parse("never-used-here"))
    inv.hosts["lab-db-primary"] = Host(**{**inv.hosts["lab-db-primary"].model_dump(),
                                          "fence": device})
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", primary))
        listener.listen()
        aid = promote_standby(inv, {})
    assert not aid.done  # the standby is down: no power-off was even tried
    assert aid.why.startswith("lab-db-standby: ") and str(standby) in aid.why


def test_a_refusing_primary_sends_first_aid_to_the_standby(
        pair: tuple[Inventory, int, int]) -> None:
    inv, _, standby = pair  # nothing listens on either port: the standby is down too
    aid = promote_standby(inv, {})
    assert not aid.done
    assert aid.why.startswith("lab-db-standby: ") and str(standby) in aid.why


def test_hosts_without_a_database_port_get_no_first_aid() -> None:
    inv = load_inventory(ROOT / "inventory/lab")
    aid = promote_standby(inv, {"db_failover_primary": "lab-app1"})
    assert not aid.done and aid.why == "no vigil_pg_port for lab-app1 / lab-db-standby in the " \
                                       "inventory"


def test_a_hung_primary_is_not_ordered_killed_while_its_standby_cannot_take_over(
        pair: tuple[Inventory, int, int]) -> None:
    """Without a BMC a hung primary's self-fence is ordered to kill it; not before the
    standby is known ready: its self-fence's port is not even connected to."""
    inv, primary, _ = pair
    with socket.socket() as listener, socket.socket() as its_self_fence:
        its_self_fence.bind(("127.0.0.1", 0))
        its_self_fence.listen()
        its_self_fence.settimeout(0.5)
        for name, port in (("lab-db-primary", its_self_fence.getsockname()[1]),
                           ("lab-db-standby", free_port())):
            inv.hosts[name] = Host(**{**inv.hosts[name].model_dump(),
                                      "self_fence": SelfFence(port=port, key="k" * 16)})
        listener.bind(("127.0.0.1", primary))  # the port accepts, nothing answers: hung
        listener.listen()
        aid = promote_standby(inv, {})
        with pytest.raises(TimeoutError):
            its_self_fence.accept()  # nobody asked it anything
    assert not aid.done
    assert aid.why.startswith("lab-db-standby: ")


@pytest.fixture
def no_bmc_pair(monkeypatch: pytest.MonkeyPatch) -> tuple[Host, Host, list[str]]:
    """The decision alone (logic only: the database calls replaced): a ready standby, a
    primary whose database port is silent while, after the wait, its host answers."""
    from vigil.remediations import first_aid, self_fence

    inv = load_inventory(ROOT / "inventory/lab")
    primary, standby = (Host(**{**inv.hosts[n].model_dump(),
                                "self_fence": SelfFence(port=free_port(), key="k" * 16)})
                        for n in ("lab-db-primary", "lab-db-standby"))
    calls: list[str] = []
    monkeypatch.setattr(first_aid, "_ready", lambda *a: "")
    monkeypatch.setattr(self_fence, "outlasted", lambda *a: self_fence.Outlasted(
        False, "db's host answers", host_answers=True))
    monkeypatch.setattr(self_fence, "order_kill", lambda h: calls.append(f"kill {h.name}")
                        or self_fence.Killed(True, "killed 8 PostgreSQL processes"))
    monkeypatch.setattr(first_aid, "_refuses", lambda *a: (True, "refuses connections"))
    monkeypatch.setattr(first_aid, "_promote", lambda s, u, why, lag: calls.append(
        f"promote {s.name}") or first_aid.Aid(True, why))
    return primary, standby, calls


def test_a_silent_database_whose_host_answers_is_killed_by_its_self_fence_then_promoted_over(
        no_bmc_pair: tuple[Host, Host, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.remediations import first_aid

    primary, standby, calls = no_bmc_pair
    monkeypatch.setattr(first_aid, "_role", lambda *a: (None, ""))  # still does not answer
    aid = first_aid._after_self_fence(primary, standby, "postgres", None,
                                      "does not answer (timed out)", full=False)
    assert calls == ["kill lab-db-primary", "promote lab-db-standby"]
    assert aid.done and "while its host answers (hung)" in aid.why


def test_a_primary_that_answers_and_can_write_again_after_the_wait_is_not_killed(
        no_bmc_pair: tuple[Host, Host, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.remediations import first_aid

    primary, standby, calls = no_bmc_pair
    monkeypatch.setattr(first_aid, "_role", lambda *a: ("primary", ""))  # the cut healed
    aid = first_aid._after_self_fence(primary, standby, "postgres", None,
                                      "does not answer (timed out)", full=False)
    assert calls == [] and not aid.done
    assert aid.why == "old primary lab-db-primary answers as a primary again: no failover"
