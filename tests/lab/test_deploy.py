"""The lab's monitoring servers deployed with Vigil's own role: `playbooks/monitoring-server.yml`
installs the daemon in two podman containers with systemd as PID 1 (sharing the lab's
network), with the lab inventory as their site and one store on the lab's PostgreSQL;
the leading daemon detects an injected lab fault and pages the webhook receiver, and
when its container is killed the other takes over."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.lab.watcher import wait_until
from tests.receivers import WebhookReceiver, free_port
from vigil import lab, lease
from vigil.store import Store

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]

IMAGE = "localhost/debian-vigil-client:bookworm"
BIN = Path(sys.executable).parent


def sh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def servers() -> Iterator[list[str]]:
    """Two monitoring servers: containers with systemd as PID 1 on the lab's network."""
    if sh("podman", "image", "exists", IMAGE).returncode != 0:
        pytest.fail(f"{IMAGE} missing: molecule/images/build.sh builds it")
    names = [f"vigil-lab-monitor-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    try:
        for name in names:
            run = sh("podman", "run", "-d", "--name", name, "--hostname", name,
                     "--network", "host", "--systemd", "always", IMAGE, "/lib/systemd/systemd")
            assert run.returncode == 0, run.stderr
        yield names
    finally:
        for name in names:
            sh("podman", "rm", "-f", "-t", "0", name)


def site_from_lab(dest: Path, webhook: str) -> Path:
    """The lab inventory, with one contact paged at the webhook for every role."""
    site = dest / "site"
    subprocess.run(["cp", "-r", str(ROOT / "inventory/lab"), str(site)], check=True)
    path = site / "group_vars/all/site.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["vigil_contacts"] = [{
        "id": "lab-duty", "name": "实验值班员", "party": "finance",
        "roles": ["implementation_team", "onsite_technician", "leadership_group", "supervisor"],
        "channels": [webhook]},
        # the database's owner (the lab inventory's), reachable nowhere here
        {"id": "lab-vendor", "name": "数据库厂商工程师", "party": "vendor", "roles": ["vendor"],
         "channels": []}]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return site


def test_two_deployed_servers_one_leads_and_the_other_takes_over_when_it_dies(
        tmp_path: Path, pg_store_url: str, servers: list[str]) -> None:
    """The role installs two monitoring servers against one store: one leads and pages about
    a lab fault; its machine dies (the container killed, systemd and all) and the other
    leads within 10 s and tells the implementation team."""
    webhook = WebhookReceiver().start()
    try:
        wheelhouse = tmp_path / "wheelhouse"
        subprocess.run([str(BIN / "pip"), "wheel", "-q", "--wheel-dir", str(wheelhouse),
                        str(ROOT)], check=True, capture_output=True, timeout=600)
        site = site_from_lab(tmp_path, webhook.url)
        metrics = {name: free_port() for name in servers}
        (tmp_path / "server.yml").write_text(yaml.safe_dump({"all": {"hosts": {name: {
            "ansible_connection": "containers.podman.podman",
            "ansible_python_interpreter": "/usr/bin/python3",
            "vigil_server_metrics_port": metrics[name]} for name in servers}}}))
        settings = {
            "target": ",".join(servers), "vigil_server_wheelhouse": str(wheelhouse),
            "vigil_server_inventory_src": str(site),
            "vigil_server_store": "url", "vigil_server_store_url": pg_store_url,
            # The lab's files (keys, CA) where the lab inventory looks for them.
            "vigil_server_environment": {"VIGIL_LAB_DIR": str(lab.lab_dir())},
            "vigil_server_watch_args": ["--observe-only", "--limit", "voucher-library.health"]}
        run = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", str(site), "-i", str(tmp_path / "server.yml"),
             str(ROOT / "playbooks/monitoring-server.yml"), "-e", json.dumps(settings)],
            capture_output=True, text=True, timeout=900,
            env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1",
                 "HOME": str(Path.home())})
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

        for name in servers:
            unit = sh("podman", "exec", name, "systemctl", "show", "-p", "ActiveState",
                      "--value", "vigil").stdout.strip()
            assert unit == "active", name
            assert sh("curl", "-fsS", f"http://127.0.0.1:{metrics[name]}/metrics").returncode == 0
        store = Store(pg_store_url)
        wait_until("both daemons beat, one leads", lambda: (
            len([m for m in lease.monitors(store)[0] if m.heartbeat_age_s < 5]) == 2 and
            lease.monitors(store)[1] is not None))
        # Neither was restarted on the way (two daemons making one empty store's tables).
        assert len(lease.monitors(store)[0]) == 2
        held = lease.monitors(store)[1]
        assert held is not None
        first = held.holder.partition(":")[0]  # the container's hostname is its name
        (second,) = set(servers) - {first}

        lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
        wait_until("the page at the webhook", lambda: any(
            "四级" in t and "电子凭证库" in t for t in webhook.titles()), timeout=90)
        (opened,) = store.events(kind="incident.opened")
        assert opened.subject.startswith("voucher-library.voucher_library.")

        # The leader's machine dies: the other leads within 10 s and says so.
        assert sh("podman", "kill", first).returncode == 0
        died = time.monotonic()
        wait_until("the other server leads", lambda: (
            (lease.monitors(store)[1] or held).holder.startswith(f"{second}:")), timeout=30)
        assert time.monotonic() - died < 10
        wait_until("the failover page", lambda: any(
            "Vigil 监控切换" in t and first in t for t in webhook.titles()), timeout=60)
        assert len(store.events(kind="incident.opened")) == 1  # the open incident, kept
    finally:
        webhook.stop()
