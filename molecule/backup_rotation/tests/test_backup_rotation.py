"""Today's backup exists in both buildings, matches its checksum, was restored, and old
ones were rotated; Vigil's own backups check agrees."""

import datetime as dt
import os

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
ROOM, OTHER = f"{EPHEMERAL}/machine-room", f"{EPHEMERAL}/other-building"
TODAY = f"postgres-{dt.date.today():%Y%m%d}.dump"


def test_backup_in_both_locations_with_matching_checksums(host):  # type: ignore[no-untyped-def]
    for folder in (ROOM, OTHER):
        dump = host.file(f"{folder}/{TODAY}")
        assert dump.exists and dump.size > 0
        expected = host.file(f"{folder}/{TODAY}.sha256").content_string.split()[0]
        assert dump.sha256sum == expected
        assert host.file(f"{folder}/{TODAY}.manifest.json").contains('"database": "postgres"')


def test_restore_test_passed(host):  # type: ignore[no-untyped-def]
    marker = host.file(f"{ROOM}/{TODAY}.restore-ok")
    assert marker.exists and "relations" in marker.content_string


def test_retention_kept_daily_and_a_sunday(host):  # type: ignore[no-untyped-def]
    names = sorted(n for n in host.check_output(f"ls {ROOM}").split() if n.endswith(".dump"))
    # today + the two newest old ones (daily 3), + Sunday 2026-11-08 (weekly 1)
    assert names == ["postgres-20261108.dump", "postgres-20261109.dump",
                     "postgres-20261110.dump", TODAY]


def test_vigil_backups_check_is_ok(host):  # type: ignore[no-untyped-def]
    from vigil.checks.backups import BackupsParams, BackupsProbe
    from vigil.model import CheckSpec
    from vigil.result import Status

    spec = CheckSpec(name="b", kind="backups", system="db", fault_class="database", host="h",
                     address="127.0.0.1",
                     params=BackupsParams(locations=[ROOM, OTHER], pattern="*.dump"))
    result = BackupsProbe()(spec)
    assert result.status is Status.OK, result.message
