"""The leading daemon's heartbeat reaches a receiver outside (a dead man's switch) at its
interval, each beat under a key of its own, naming the daemon and its epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.receivers import WebhookReceiver


def test_the_leader_beats_at_the_receiver_outside(demo_copy: Path, tmp_path: Path) -> None:
    receiver = WebhookReceiver().start()
    try:
        with (demo_copy / "group_vars/all/site.yml").open("a") as fh:
            fh.write(f"vigil_heartbeat: {{url: '{receiver.url}', interval_s: 5}}\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil", "watch", "--observe-only", "-i", str(demo_copy)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "VIGIL_STORE": str(tmp_path / "s.db")})
        try:
            deadline = time.monotonic() + 60
            while sum(k.startswith("heartbeat/") for k in list(receiver.keys())) < 2:
                assert time.monotonic() < deadline, receiver.received
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        beats = [m for m in receiver.received if (m["key"] or "").startswith("heartbeat/")]
        assert len({m["key"] for m in beats}) == len(beats)  # one key a beat
        first = json.loads(beats[0]["message"])
        assert first["site"] == "demo" and first["epoch"] == 1 and \
            first["monitor"].endswith(f":{proc.pid}")
    finally:
        receiver.stop()
