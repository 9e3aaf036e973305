"""SSH to monitored hosts: strict host keys, one connection per host reused across cycles.

Host keys are verified against a known_hosts file with paramiko's RejectPolicy: an
unknown or changed key is a `critical` Result saying so, never a silent accept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko

from vigil.model import SshTarget
from vigil.result import Say
from vigil.secrets import SecretMissing


class SshFailure(Exception):
    """Could not run a command; `say` is what an operator should read."""

    def __init__(self, say: Say, *, host_key: bool = False) -> None:
        super().__init__(say.en)
        self.say = say
        self.host_key = host_key  # a key problem is a security finding, not an outage

    @property
    def message(self) -> str:
        return self.say.en


@dataclass
class Output:
    code: int
    out: str
    err: str


_pool: dict[tuple[str, int, str], paramiko.SSHClient] = {}
_pool_lock = threading.Lock()
_host_locks: dict[tuple[str, int, str], threading.Lock] = {}


def _key(t: SshTarget) -> tuple[str, int, str]:
    return (t.address, t.port, t.user)


def _connect(t: SshTarget, timeout: float) -> paramiko.SSHClient:
    known = Path(t.known_hosts).expanduser()
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(known))
    except OSError as exc:
        raise SshFailure(Say(f"known_hosts {known} unreadable ({exc.strerror})",
                             f"无法读取 known_hosts 文件 {known}（{exc.strerror}）"),
                         host_key=True) from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        password = t.password.reveal() if t.password else None
    except SecretMissing as exc:
        raise SshFailure(Say(f"no SSH password: {exc}", f"缺少 SSH 密码：{exc}")) from None
    try:
        client.connect(t.address, port=t.port, username=t.user, key_filename=t.key_file,
                       password=password, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, look_for_keys=False, allow_agent=False)
    except paramiko.BadHostKeyException as exc:
        was = f"{exc.expected_key.get_name()} {exc.expected_key.fingerprint}"
        now = f"{exc.key.get_name()} {exc.key.fingerprint}"
        raise SshFailure(Say(
            f"host key of {t.address} CHANGED: known_hosts has {was}, host offers {now} — "
            "refusing to connect (possible interception; re-key only after checking on site)",
            f"{t.address} 的主机密钥已改变：记录为 {was}，现为 {now}——拒绝连接"
            "（可能被冒充；须现场核实后才能更新密钥）"), host_key=True) from None
    except paramiko.AuthenticationException:
        raise SshFailure(Say(f"SSH authentication failed for {t.label}",
                             f"SSH 登录 {t.label} 认证失败")) from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise SshFailure(Say(
                f"host key of {t.address} is unknown: not in {known} — refusing to connect",
                f"{t.address} 的主机密钥未登记（不在 {known} 中）——拒绝连接"),
                host_key=True) from None
        raise SshFailure(Say(f"SSH to {t.label} failed: {exc}",
                             f"SSH 连接 {t.label} 失败：{exc}")) from None
    except TimeoutError:
        raise SshFailure(Say(f"SSH to {t.label}: no answer within {timeout:g}s",
                             f"SSH 连接 {t.label}：{timeout:g} 秒内无应答")) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SshFailure(Say(f"SSH to {t.label}: {reason}",
                             f"SSH 无法连接 {t.label}：{reason}")) from None
    return client


def _client(t: SshTarget, timeout: float) -> paramiko.SSHClient:
    key = _key(t)
    with _pool_lock:
        lock = _host_locks.setdefault(key, threading.Lock())
    with lock:  # one connect per host at a time; the transport itself multiplexes
        client = _pool.get(key)
        transport = client.get_transport() if client else None
        if client is None or transport is None or not transport.is_active():
            if client:
                client.close()
            client = _connect(t, timeout)
            _pool[key] = client
        return client


def forget(t: SshTarget) -> None:
    """Drop the pooled connection (after a failure, or when a host was re-keyed)."""
    with _pool_lock:
        client = _pool.pop(_key(t), None)
    if client:
        client.close()


def run(t: SshTarget, command: str, timeout: float) -> Output:
    """Run a command on the host; reconnect once if the pooled connection went stale."""
    for attempt in (1, 2):
        client = _client(t, timeout)
        try:
            _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            return Output(stdout.channel.recv_exit_status(), out, err)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            forget(t)
            if attempt == 2:
                raise SshFailure(Say(f"SSH command on {t.label} failed: {exc}",
                                     f"在 {t.label} 上执行命令失败：{exc}")) from None
    raise AssertionError("unreachable")
