"""The store's state keys, built in one place: each kind of record has a prefix (to list
them all) and a function (to name one)."""

from __future__ import annotations

INCIDENT = "incident:"
STEP = "step:"
MESSAGE = "msg:"
PENDING = "pending:"
ACK = "ack:"
SILENCE = "silence:"
REPORT = "report:"
BUNDLE = "bundle:"
EXPORTED = "exported:"
ACCOUNT = "account:"
SESSION = "session:"
EXECUTOR_CURSOR = "executor:cursor"  # the last event seq the executor planned from
ZABBIX_ACKS_OUT = "zabbix:acks-out"  # the last incident.acked seq sent on to Zabbix


def incident(incident_id: str) -> str:
    return f"{INCIDENT}{incident_id}"


def open_incident(system: str, fault_class: str) -> str:
    """The open incident of a system and fault class, if any."""
    return f"open:{system}:{fault_class}"


def track(result_key: str) -> str:
    """A check's recent history, for opening and recovering incidents."""
    return f"track:{result_key}"


def check(result_key: str) -> str:
    """A check's last recorded status (status_log)."""
    return f"check:{result_key}"


def ack(incident_id: str) -> str:
    return f"{ACK}{incident_id}"


def silence(silence_id: str) -> str:
    return f"{SILENCE}{silence_id}"


def report(report_id: str) -> str:
    """A fault reported (or withdrawn) by a person, until the tracker takes it."""
    return f"{REPORT}{report_id}"


def analysis(incident_id: str) -> str:
    """What people concluded about an incident, for its summary report (P5)."""
    return f"analysis:{incident_id}"


def step(step_key: str) -> str:
    return f"{STEP}{step_key}"


def message(message_key: str) -> str:
    return f"{MESSAGE}{message_key}"


def pending(message_key: str) -> str:
    """A message still to deliver, and when."""
    return f"{PENDING}{message_key}"


def bundle(bundle_id: str) -> str:
    """An exchange bundle (or receipt) imported here: imported twice is a replay."""
    return f"{BUNDLE}{bundle_id}"


def exported(bundle_id: str) -> str:
    """An exchange bundle exported from here: its receipt is awaited."""
    return f"{EXPORTED}{bundle_id}"


def supplementary(party: str, number: str) -> str:
    """A voucher marked for a party's supplementary vouchers (补录凭证), once."""
    return f"supplementary:{party}:{number}"


def account(contact: str) -> str:
    """A person's console and CLI account (vigil.accounts): never in an event."""
    return f"{ACCOUNT}{contact}"


def session(session_id: str) -> str:
    """A signed-in console session (vigil.console.sessions)."""
    return f"{SESSION}{session_id}"
