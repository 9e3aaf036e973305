"""The deployed self-fence: running under systemd, listening for the peers the inventory
names; a primary that hears one keeps running, one that hears none stops (P4.3.2)."""

from __future__ import annotations

import base64
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


# Vigil's kill order (remediations/self_fence.order_kill), as a script in the container.
ORDER = """
import hashlib, hmac, socket, sys
key, ours = sys.argv[1].encode(), b"v1g1l-n0nce"
conn = socket.create_connection(("127.0.0.1", 5440), timeout=20)
conn.sendall(b"kill " + ours + b"\\n")
reply = conn.makefile("rb")
theirs = reply.readline().split()[1]
conn.sendall(hmac.new(key, b"kill\\n" + ours + b"\\n" + theirs, hashlib.sha256).hexdigest().encode()
             + b"\\n")
line, mac = reply.readline().rstrip(b"\\n"), reply.readline().strip()
good = hmac.new(key, ours + b"\\n" + theirs + b"\\n" + line, hashlib.sha256).hexdigest()
print(line.decode() or "null")
print(hmac.compare_digest(mac, good.encode()))
"""
DATA = "/var/lib/postgresql/15/main"


def test_a_hung_primary_is_killed_on_vigil_s_signed_order_and_marked_to_restart_as_a_standby(host):  # type: ignore[no-untyped-def]
    host.run_expect([0], "pkill -STOP -x postgres")  # every PostgreSQL process: hung
    host.run_expect([0], f"echo {base64.b64encode(ORDER.encode()).decode()} | base64 -d "
                         "> /tmp/order.py")
    try:
        refused = host.check_output("python3 /tmp/order.py 'not the pair key, 16+'")
        assert refused.splitlines() == ["null", "False"]  # nothing done for a forged order
        assert not host.file(f"{DATA}/standby.signal").exists
        line, signed = host.check_output(f"python3 /tmp/order.py '{KEY.decode()}'").splitlines()
        said = json.loads(line)
        assert signed == "True" and said["stopped"] is True and len(said["killed"]) >= 5
        assert host.run("pgrep -x postgres").rc == 1  # postmaster and children gone
        assert host.file(f"{DATA}/standby.signal").exists  # a restart is no second primary
        assert json.loads(host.file(RECORD).content_string)["killed"] == said["killed"]
    finally:  # the cluster back as the primary it was, for the next test
        host.run("pkill -KILL -x postgres")
        host.run(f"rm -f {DATA}/standby.signal {RECORD}")
        host.run("systemctl reset-failed postgresql@15-main")
        host.run_expect([0], "systemctl restart postgresql@15-main")
        _wait("the primary up again", lambda: _db_up(host))


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
