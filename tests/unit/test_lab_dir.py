"""The lab's folder is reachable by the services' own users wherever the clone lives."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vigil.lab.base import lab_dir


def test_a_private_clone_lets_the_lab_services_pass_but_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    clone = tmp_path / "clone"  # as `mktemp -d` makes it: 0700
    clone.mkdir(mode=0o700)
    monkeypatch.setenv("VIGIL_LAB_DIR", str(clone / ".lab"))
    assert lab_dir() == clone / ".lab"
    mode = clone.stat().st_mode
    assert mode & stat.S_IXOTH and not mode & stat.S_IROTH
    assert f"other users may now pass through {clone} (o+x)" in capsys.readouterr().err
    lab_dir()
    assert capsys.readouterr().err == ""  # said once, when it changed something
