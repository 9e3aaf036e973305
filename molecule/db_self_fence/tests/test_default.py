"""The deployed self-fence: running under systemd, listening for the peers the inventory
names; a primary that hears one keeps running, one that hears none stops (P4.3.2)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

CONFIG = "/etc/vigil/self-fence.json"
RECORD = "/var/lib/vigil-self-fence/fenced.json"
KEY = b"molecule-only shared key"  # molecule.yml's


def _wait(what, predicate, timeout=30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for: {what}")


def _db_up(host) -> bool:  # type: ignore[no-untyped-def]
    return host.run("pg_isready -q -p 5432").rc == 0


def test_the_service_runs_with_the_inventory_s_peers_and_limit(host):  # type: ignore[no-untyped-def]
    assert host.service("vigil-self-fence").is_running
    assert host.service("vigil-self-fence").is_enabled
    config = json.loads(host.file(CONFIG).content_string)
    assert config["limit_s"] == 2
    assert config["listen"] == {"address": "127.0.0.1", "port": 5440}
    key = host.file(config["status_key_file"])
    assert key.mode == 0o640 and key.user == "root" and key.group == "postgres"
    assert config["peers"] == [
        {"name": "made-up-standby", "address": "127.0.0.1", "port": 5441},
        {"name": "made-up-monitor", "address": "127.0.0.2", "port": 22}]


def test_a_primary_whose_peers_refuse_keeps_running_and_says_it_hears_them(host):  # type: ignore[no-untyped-def]
    # Nothing listens on the peers' ports: each look is refused, which is an answer.
    time.sleep(5)  # 2.5 times the limit: long enough for a wrong fence to have happened
    assert _db_up(host)
    assert not host.file(RECORD).exists
    # asked as Vigil asks: a nonce, the answer signed over it with the pair's key
    line, mac = host.check_output(
        "python3 -c 'import socket; c = socket.create_connection((\"127.0.0.1\", 5440)); "
        "c.sendall(b\"n0nce\\n\"); print(c.makefile().read())'").splitlines()[:2]
    assert hmac.compare_digest(mac, hmac.new(KEY, b"n0nce\n" + line.encode(),
                                             hashlib.sha256).hexdigest())
    said = json.loads(line)
    assert said["primary"] is True and said["fenced"] is False
    assert all(p["silent_s"] < 2 for p in said["peers"])


def test_a_primary_that_hears_no_peer_is_stopped_within_the_limit(host):  # type: ignore[no-untyped-def]
    config = json.loads(host.file(CONFIG).content_string)
    for i, peer in enumerate(config["peers"]):  # routes to nowhere: silence, as a cut
        peer["address"] = f"192.0.2.{i + 1}"
        host.run_expect([0], f"ip route add blackhole 192.0.2.{i + 1}/32")
    host.run_expect([0], f"echo {json.dumps(json.dumps(config))} > {CONFIG}")
    host.run_expect([0], "systemctl restart vigil-self-fence")
    started = time.monotonic()
    _wait("the primary stopped", lambda: not _db_up(host), timeout=30)
    assert time.monotonic() - started < 2 + 5  # the limit, a round, the stop
    _wait("the record", lambda: host.file(RECORD).exists, timeout=10)
    record = json.loads(host.file(RECORD).content_string)
    assert record["stopped"] is True and "P4.3.2" in record["why"]
    journal = host.check_output("journalctl -u vigil-self-fence --no-pager -o cat")
    assert '"event": "fenced"' in journal
