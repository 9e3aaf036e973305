"""The spool format of the queue_draining role: a spool without its end line is refused."""

import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "queue_spool", Path(__file__).parents[2] / "roles/queue_draining/library/queue_spool.py")
assert _SPEC and _SPEC.loader
queue_spool = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(queue_spool)


def _spool(tmp_path: Path, lines: list[dict[str, object]]) -> Path:
    path = tmp_path / "20261128T000000-000000001.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_complete_spool_reads_back_in_order(tmp_path: Path) -> None:
    path = _spool(tmp_path, [{"seq": 0}, {"seq": 1}, {"end": 2}])
    assert [m["seq"] for m in queue_spool._messages(path)] == [0, 1]


@pytest.mark.parametrize("lines", [[{"seq": 0}, {"seq": 1}], [{"seq": 0}, {"end": 2}], []])
def test_a_truncated_spool_is_refused(tmp_path: Path, lines: list[dict[str, object]]) -> None:
    with pytest.raises(ValueError, match="truncated"):
        queue_spool._messages(_spool(tmp_path, lines))
