"""The lab's monitoring server deployed with Vigil's own role: `playbooks/monitoring-server.yml`
installs the daemon in a podman container with systemd as PID 1 (sharing the lab's
network), with the lab inventory as its site and its store on the lab's PostgreSQL; the
deployed daemon detects an injected lab fault and pages the webhook receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.lab.watcher import wait_until
from tests.receivers import WebhookReceiver, free_port
from vigil import lab
from vigil.store import Store

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("restore_lab")]

IMAGE = "localhost/debian-vigil-client:bookworm"
BIN = Path(sys.executable).parent


def sh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def server() -> Iterator[str]:
    if sh("podman", "image", "exists", IMAGE).returncode != 0:
        pytest.fail(f"{IMAGE} missing: molecule/images/build.sh builds it")
    name = f"vigil-lab-monitor-{uuid.uuid4().hex[:6]}"
    run = sh("podman", "run", "-d", "--name", name, "--network", "host",
             "--systemd", "always", IMAGE, "/lib/systemd/systemd")
    assert run.returncode == 0, run.stderr
    yield name
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
        "channels": [webhook]}]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return site


def test_the_deployed_daemon_pages_on_a_lab_fault(tmp_path: Path, pg_store_url: str,
                                                   server: str) -> None:
    webhook = WebhookReceiver().start()
    try:
        wheelhouse = tmp_path / "wheelhouse"
        subprocess.run([str(BIN / "pip"), "wheel", "-q", "--wheel-dir", str(wheelhouse),
                        str(ROOT)], check=True, capture_output=True, timeout=600)
        site = site_from_lab(tmp_path, webhook.url)
        (tmp_path / "server.yml").write_text(yaml.safe_dump({"all": {"hosts": {server: {
            "ansible_connection": "containers.podman.podman",
            "ansible_python_interpreter": "/usr/bin/python3"}}}}))
        metrics = free_port()
        settings = {
            "target": server, "vigil_server_wheelhouse": str(wheelhouse),
            "vigil_server_inventory_src": str(site),
            "vigil_server_store": "url", "vigil_server_store_url": pg_store_url,
            "vigil_server_metrics_port": metrics,
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

        unit = sh("podman", "exec", server, "systemctl", "show", "-p", "ActiveState",
                  "--value", "vigil").stdout.strip()
        assert unit == "active"
        store = Store(pg_store_url)
        wait_until("daemon.started in the lab's PostgreSQL",
                   lambda: bool(store.events(kind="daemon.started")))
        assert sh("curl", "-fsS", f"http://127.0.0.1:{metrics}/metrics").returncode == 0

        lab.component("net").stop_voucher_service()  # type: ignore[attr-defined]
        wait_until("the page at the webhook", lambda: any(
            "四级" in t and "电子凭证库" in t for t in webhook.titles()), timeout=90)
        (opened,) = store.events(kind="incident.opened")
        assert opened.subject.startswith("voucher-library.voucher_library.")
    finally:
        webhook.stop()
