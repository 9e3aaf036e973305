"""dbpair (database, P4.3.2): a PostgreSQL hot-standby pair seen from both sides.

Each node's role (pg_is_in_recovery), replication state and lag in bytes and seconds,
slot health. Two primaries (split brain) is critical; a standby missing or not streaming
is critical; a primary down is critical, with the standby's readiness for promotion in
the metrics, because P4.3.2 says to start the standby at once. A primary whose disk is
full answers every query and fails every write that needs a new block; it is found by
a query that spills a few hundred kilobytes to a temporary file in its data directory
(`DISK_PROBE_SQL`): no table, no transaction id, nothing replicated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vigil.checks.base import Finding, Probe, ProbeParams, verdict
from vigil.errors import first_line
from vigil.model import CheckSpec
from vigil.result import Metric, Result, Say, Status
from vigil.secrets import SecretField, SecretMissing


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    address: str
    port: int = Field(5432, ge=1, le=65535)


class DbPairParams(ProbeParams):
    nodes: list[Node] = Field(min_length=2, max_length=2)
    dbname: str = "postgres"
    user: str = "postgres"
    password: SecretField | None = None
    lag_bytes_warning: int = Field(16 * 1024 * 1024, ge=0)
    lag_bytes_critical: int = Field(256 * 1024 * 1024, ge=0)
    lag_seconds_warning: float = Field(60, ge=0)
    lag_seconds_critical: float = Field(600, ge=0)
    # Whether to ask the primary to write a temporary file (about 280 kB, removed at once)
    # each look: a disk full is otherwise invisible until payments fail. Off where
    # temp_tablespaces puts temporary files on another file system than the tables.
    disk_probe: bool = True


@dataclass
class NodeState:
    name: str
    up: bool
    error: str = ""
    in_recovery: bool | None = None
    streaming: bool = False  # standby: its WAL receiver is streaming
    receive_lsn: str | None = None
    replay_lsn: str | None = None
    replay_delay_s: float | None = None
    replicas: list[dict[str, Any]] = field(default_factory=list)  # primary: pg_stat_replication
    sync_names: str = ""  # primary: synchronous_standby_names (empty: asynchronous)
    slots: list[dict[str, Any]] = field(default_factory=list)
    disk_full: str = ""  # primary: why it cannot write a new block (SQLSTATE 53100)


_PRIMARY_SQL = """
SELECT application_name, client_addr::text, state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
       extract(epoch FROM replay_lag)::float AS lag_seconds, sync_state
FROM pg_stat_replication"""
_SLOTS_SQL = "SELECT slot_name, active, wal_status FROM pg_replication_slots"
_WRITTEN_SQL = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
       current_setting('synchronous_standby_names')"""
SYNCHRONOUS = ("sync", "quorum")  # pg_stat_replication.sync_state of a standby commits wait for
# Where this process last saw each primary write, in bytes of WAL, by address and port,
# unless a synchronous standby had every commit then: what a standby must have received
# for a failover to lose no more than the site allows (first_aid.py; Patroni keeps the
# same in its DCS as the leader's position).
_WRITTEN: dict[tuple[str, int], int | None] = {}


# A sort too big for 64 kB of memory writes about 280 kB to a temporary file under the
# data directory (base/pgsql_tmp) and removes it; with the file system full it fails
# with SQLSTATE 53100 (disk_full), as a table needing a new block does.
DISK_PROBE_SQL = ("SELECT count(*) FROM (SELECT g FROM generate_series(1, 20000) g "
                  "ORDER BY g DESC) AS spilled")
DISK_PROBE_MEMORY = "SET work_mem = '64kB'"


def disk_full(conn: Any) -> str:
    """Why the node cannot write a new block to its data directory's file system (the
    error's first line), or "" when it can — or when the probe failed otherwise (a
    timeout is not a full disk; the next look asks again)."""
    import psycopg

    try:
        conn.execute(DISK_PROBE_MEMORY)
        conn.execute(DISK_PROBE_SQL)
    except psycopg.errors.DiskFull as exc:
        return first_line(str(exc), "disk full")
    except psycopg.Error:
        pass  # a timeout or a lost connection says nothing about the disk
    return ""


def last_written(address: str, port: int) -> int | None:
    """The WAL position (bytes) this process last saw the node write as a primary with
    asynchronous replication; None when not seen, or when its standby was synchronous
    (no commit can be lost, and WAL of a transaction not yet committed is no loss)."""
    return _WRITTEN.get((address, port))


_STANDBY_SQL = """
SELECT (SELECT status FROM pg_stat_wal_receiver) AS receiver,
       pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float"""


def inspect(node: Node, p: DbPairParams, timeout: float) -> NodeState:
    import psycopg

    try:
        password = p.password.reveal() if p.password else None
    except SecretMissing as exc:
        return NodeState(node.name, up=False, error=str(exc))
    try:
        with psycopg.connect(host=node.address, port=node.port, dbname=p.dbname, user=p.user,
                             password=password, connect_timeout=max(1, int(timeout)),
                             autocommit=True, application_name="vigil") as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            in_recovery = bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]
            state = NodeState(node.name, up=True, in_recovery=in_recovery)
            if in_recovery:
                receiver, rec, rep, delay = conn.execute(_STANDBY_SQL).fetchone()  # type: ignore[misc]
                state.streaming = receiver == "streaming"
                state.receive_lsn, state.replay_lsn, state.replay_delay_s = rec, rep, delay
            else:
                cols = ("name", "client", "state", "lag_bytes", "lag_seconds", "sync_state")
                state.replicas = [dict(zip(cols, r, strict=True))
                                  for r in conn.execute(_PRIMARY_SQL).fetchall()]
                state.slots = [dict(zip(("name", "active", "wal_status"), r, strict=True))
                               for r in conn.execute(_SLOTS_SQL).fetchall()]
                written, names = conn.execute(_WRITTEN_SQL).fetchone()  # type: ignore[misc]
                synchronous = any(r["sync_state"] in SYNCHRONOUS for r in state.replicas)
                _WRITTEN[(node.address, node.port)] = None if synchronous else int(written)
                state.sync_names = names or ""
                if p.disk_probe:
                    state.disk_full = disk_full(conn)
            return state
    except psycopg.Error as exc:
        return NodeState(node.name, up=False, error=first_line(str(exc), type(exc).__name__))


class DbPairProbe(Probe):
    kind = "dbpair"
    Params = DbPairParams
    # P4.3.2 says start the standby at once: a dead primary is seen within two seconds
    # (two failing samples), a hung one within the timeout of two. Two short connections
    # a second are nothing to a database server.
    interval_s = 1.0
    timeout_s = 2.0

    def run(self, check: CheckSpec) -> Result:
        p: DbPairParams = check.params
        states = [inspect(n, p, check.timeout_s) for n in p.nodes]
        return self.evaluate(check, p, states)

    def evaluate(self, check: CheckSpec, p: DbPairParams, states: list[NodeState]) -> Result:
        target = ",".join(f"{n.address}:{n.port}" for n in p.nodes)
        metrics: dict[str, Metric] = {}
        for s in states:
            metrics[f"up:{s.name}"] = s.up
            metrics[f"role:{s.name}"] = (None if s.in_recovery is None
                                         else "standby" if s.in_recovery else "primary")
        primaries = [s for s in states if s.up and s.in_recovery is False]
        standbys = [s for s in states if s.up and s.in_recovery is True]
        down = [s for s in states if not s.up]
        metrics["primaries"] = len(primaries)
        findings: list[Finding] = []

        if len(primaries) > 1:
            names = ", ".join(s.name for s in primaries)
            findings.append((Status.CRITICAL, Say(
                f"split brain: two primaries ({names}) — fence one before any write (P4.3.2)",
                f"脑裂：出现两个主库（{names}）——写入前必须隔离其中一个（P4.3.2）")))
        elif not primaries:
            ready = [s for s in standbys if s.replay_lsn]
            metrics["standby_ready_for_promotion"] = bool(ready)
            why = "; ".join(f"{s.name}: {s.error}" for s in down) or "no node is primary"
            if ready:
                best = ready[0]
                findings.append((Status.CRITICAL, Say(
                    f"primary down ({why}); standby {best.name} ready for promotion at replay "
                    f"{best.replay_lsn}: start the standby at once (P4.3.2)",
                    f"主库故障（{why}）；备库 {best.name} 已同步至 {best.replay_lsn}，可以提升："
                    "立即启用备用数据库（P4.3.2）")))
            else:
                findings.append((Status.CRITICAL, Say(
                    f"primary down ({why}) and no standby ready for promotion: call the "
                    "vendor (P4.3.2)",
                    f"主库故障（{why}）且无可提升的备库：立即联系软硬件厂商（P4.3.2）")))
        else:
            primary = primaries[0]
            metrics[f"disk_full:{primary.name}"] = bool(primary.disk_full)
            if primary.disk_full:
                findings.append((Status.CRITICAL, Say(
                    f"primary {primary.name} cannot write: its disk is full "
                    f"({primary.disk_full}) — payments fail; start the standby (P4.3.2)",
                    f"主库 {primary.name} 无法写入：磁盘已满（{primary.disk_full}）——支付失败；"
                    "启用备用数据库（P4.3.2）")))
            for s in down:
                findings.append((Status.CRITICAL, Say(
                    f"standby {s.name} down: {s.error} — the pair has no hot standby (P4.3.2)",
                    f"备库 {s.name} 故障：{s.error}——双机热备失去备机（P4.3.2）")))
            for s in standbys:
                if not s.streaming:
                    findings.append((Status.CRITICAL, Say(
                        f"standby {s.name} is not streaming from the primary",
                        f"备库 {s.name} 未从主库流复制")))
                metrics[f"replay_delay_s:{s.name}"] = s.replay_delay_s
            streaming = [r for r in primary.replicas if r["state"] == "streaming"]
            metrics["replicas_streaming"] = len(streaming)
            if primary.sync_names and not any(r.get("sync_state") in SYNCHRONOUS
                                              for r in streaming):
                # Every commit waits for a synchronous standby's answer that cannot come.
                metrics["commits_wait"] = True
                findings.append((Status.CRITICAL, Say(
                    f"commits on primary {primary.name} wait: it needs a synchronous standby "
                    f"(synchronous_standby_names = '{primary.sync_names}') and none is "
                    "connected — payments hang until one is, or the setting is released "
                    "(P4.3.2)",
                    f"主库 {primary.name} 的提交在等待：已要求同步备库（synchronous_standby_names"
                    f" = '{primary.sync_names}'），但没有同步备库连接——支付将一直挂起，直到备库"
                    "恢复或解除该设置（P4.3.2）")))
            if standbys and not streaming:
                findings.append((Status.CRITICAL, Say(
                    f"primary {primary.name} sees no streaming replica",
                    f"主库 {primary.name} 没有正在复制的备库")))
            for r in streaming:
                lag_b = int(r["lag_bytes"] or 0)
                lag_s = float(r["lag_seconds"] or 0.0)
                metrics["lag_bytes"] = max(lag_b, int(metrics.get("lag_bytes") or 0))
                metrics["lag_seconds"] = max(lag_s, float(metrics.get("lag_seconds") or 0))
                lag = Say(f"replication lag {lag_b} bytes, {lag_s:.0f}s",
                          f"复制延迟 {lag_b} 字节、{lag_s:.0f} 秒")
                if lag_b >= p.lag_bytes_critical or lag_s >= p.lag_seconds_critical:
                    findings.append((Status.CRITICAL, lag))
                elif lag_b >= p.lag_bytes_warning or lag_s >= p.lag_seconds_warning:
                    findings.append((Status.WARNING, lag))
            for slot in primary.slots:
                name = slot["name"]
                if not slot["active"]:
                    findings.append((Status.WARNING, Say(
                        f"replication slot {name} inactive (WAL accumulates on the primary)",
                        f"复制槽 {name} 未使用（主库 WAL 日志持续堆积）")))
                if slot["wal_status"] == "lost":
                    findings.append((Status.CRITICAL, Say(
                        f"replication slot {name} lost WAL: the standby must be rebuilt",
                        f"复制槽 {name} 已丢失 WAL：必须重建备库")))
        healthy = Say("", "")
        if primaries:
            names = ", ".join(s.name for s in standbys)
            worst_lag = metrics.get("lag_bytes", 0)
            healthy = Say(f"primary {primaries[0].name}, standby {names} streaming, lag "
                          f"{worst_lag} bytes",
                          f"主库 {primaries[0].name}，备库 {names} 流复制正常，"
                          f"延迟 {worst_lag} 字节")
        status, say = verdict(findings, healthy)
        return check.result(status, say, target=target, metrics=metrics)
