"""SSH to monitored hosts: strict host keys, one connection per host reused across cycles.

Host keys are verified against a known_hosts file with paramiko's RejectPolicy: an
unknown or changed key is a `critical` Result saying so, never a silent accept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko
from pydantic import BaseModel, ConfigDict

from vigil.secrets import Secret, SecretMissing


class SshTarget(BaseModel):
    """How to reach a host over SSH, from its Ansible variables."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    password: Secret | None = None
    known_hosts: str = "~/.ssh/known_hosts"

    @property
    def label(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


class SshFailure(Exception):
    """Could not run a command; `message` is what an operator should read."""

    def __init__(self, message: str, *, host_key: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.host_key = host_key  # a key problem is a security finding, not an outage


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
        raise SshFailure(f"known_hosts {known} unreadable ({exc.strerror})",
                         host_key=True) from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        password = t.password.reveal() if t.password else None
    except SecretMissing as exc:
        raise SshFailure(f"no SSH password: {exc}") from None
    try:
        client.connect(t.address, port=t.port, username=t.user, key_filename=t.key_file,
                       password=password, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, look_for_keys=False, allow_agent=False)
    except paramiko.BadHostKeyException as exc:
        raise SshFailure(
            f"host key of {t.address} CHANGED: known_hosts has "
            f"{exc.expected_key.get_name()} {exc.expected_key.fingerprint}, host offers "
            f"{exc.key.get_name()} {exc.key.fingerprint} — refusing to connect "
            "(possible interception; re-key only after checking on site)", host_key=True,
        ) from None
    except paramiko.AuthenticationException:
        raise SshFailure(f"SSH authentication failed for {t.label}") from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise SshFailure(f"host key of {t.address} is unknown: not in {known} "
                             "— refusing to connect", host_key=True) from None
        raise SshFailure(f"SSH to {t.label} failed: {exc}") from None
    except TimeoutError:
        raise SshFailure(f"SSH to {t.label}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise SshFailure(f"SSH to {t.label}: {exc.strerror or exc}") from None
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
                raise SshFailure(f"SSH command on {t.label} failed: {exc}") from None
    raise AssertionError("unreachable")
