"""After converge the primary's commits no longer wait for the stopped standby, and what
was released is on record for `restored`."""

import json
import os

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
testinfra_hosts = ["lab-db-primary"]


def sql(host, query):  # type: ignore[no-untyped-def]
    return host.run("timeout 5 psql -h 127.0.0.1 -p 5433 -U postgres -d postgres -AtX "
                    f'-c "{query}"')


def test_a_commit_on_the_primary_goes_through_within_5_s(host):  # type: ignore[no-untyped-def]
    wrote = sql(host, "INSERT INTO molecule_sync VALUES (2)")
    assert wrote.rc == 0, wrote.stderr  # timeout(1) exits 124 if it still waited
    assert sql(host, "SHOW synchronous_standby_names").stdout.strip() == ""


def test_the_released_setting_is_on_record(host):  # type: ignore[no-untyped-def]
    record = json.loads(host.file(f"{EPHEMERAL}/sync-released-lab-db-primary.json").content_string)
    assert record["synchronous_standby_names"] == "*" and record["port"] == 5433
    assert not host.file(f"{EPHEMERAL}/sync-released-lab-db-standby.json").exists
