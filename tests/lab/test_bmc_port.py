"""The failover benchmark starts a BMC simulator per run on the same port: one stopped
must have let go of it, one left running must stop the next run (it would answer the
fence in its place). Real `ipmi_sim` and `ipmitool`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.receivers import free_port
from vigil.lab.bmc import Bmc
from vigil.lab.procs import LabError


def test_a_bmc_restarted_at_once_on_its_port_answers_and_a_live_one_blocks_the_next(
        tmp_path: Path) -> None:
    port = free_port()
    first = Bmc(tmp_path / "first", "vbf-t", "vbf-t0", port, "bmc-Secret-16")
    first.start()
    try:
        with pytest.raises(LabError, match=rf"UDP port {port} .* held by process \d+ \(ipmi_sim"):
            Bmc(tmp_path / "stale", "vbf-t", "vbf-t0", port, "bmc-Secret-16").start()
    finally:
        first.stop()
    second = Bmc(tmp_path / "second", "vbf-t", "vbf-t0", port, "bmc-Secret-16")
    second.start()  # no wait between: stop() has let go of the port
    try:
        assert second.answers()
    finally:
        second.stop()
    assert second.port_holder() is None
