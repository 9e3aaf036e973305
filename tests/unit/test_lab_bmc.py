"""A lab BMC refuses to start on a port another process holds: a simulator left by a run
that crashed before its teardown would answer the fence in the new one's place."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from vigil.lab.bmc import Bmc
from vigil.lab.procs import LabError


def test_a_bmc_whose_port_is_held_refuses_to_start_and_names_the_holder(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stale:
        stale.bind(("127.0.0.1", 0))
        port = stale.getsockname()[1]
        bmc = Bmc(tmp_path / "bmc", "vbf-x", "vbf-x0", port, "bmc-Secret-16")
        with pytest.raises(LabError, match=rf"UDP port {port} .* held by process {os.getpid()}"):
            bmc.start()
    assert not (tmp_path / "bmc").exists()  # nothing started, nothing written
