"""After converge the former standby takes writes and has the old data, the old primary
refuses writes and streams from it, and the clients point at it."""

import os

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
testinfra_hosts = ["lab-db-standby"]


def sql(host, port, query):  # type: ignore[no-untyped-def]
    return host.run(f'psql -h 127.0.0.1 -p {port} -U postgres -d postgres -AtX -c "{query}"')


def test_former_standby_is_primary_and_kept_the_data(host):  # type: ignore[no-untyped-def]
    assert sql(host, 5434, "SELECT pg_is_in_recovery()").stdout.strip() == "f"
    assert sql(host, 5434, "SELECT v FROM molecule_marker").stdout.strip() == "before failover"
    wrote = sql(host, 5434, "INSERT INTO molecule_marker VALUES ('after failover')")
    assert wrote.rc == 0, wrote.stderr


def test_old_primary_refuses_writes(host):  # type: ignore[no-untyped-def]
    refused = sql(host, 5433, "INSERT INTO molecule_marker VALUES ('split brain')")
    assert refused.rc != 0
    assert "read-only transaction" in refused.stderr


def test_old_primary_streams_from_the_new_one(host):  # type: ignore[no-untyped-def]
    state = sql(host, 5434, "SELECT slot_name, active FROM pg_replication_slots").stdout.split()
    assert "vigil_standby|t" in state
    assert sql(host, 5433, "SELECT status FROM pg_stat_wal_receiver").stdout.strip() == "streaming"


def test_clients_repointed_and_record_consumed_by_the_rebuild(host):  # type: ignore[no-untyped-def]
    assert "db_port = 5434" in host.file(f"{EPHEMERAL}/app/db.conf").content_string
    assert not host.file(f"{EPHEMERAL}/old-primary.json").exists
