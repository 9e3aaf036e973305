"""Bad input, as a careless or hostile user gives it, on every surface: inventories,
runbook overrides, reconciliation files, exchange bundles, damaged store rows, and
command-line arguments and environment. Over a thousand generated cases, each through
the real `vigil` command line (in this process, so a case costs milliseconds), each
with a time limit. Every case must end with a documented exit code, never a traceback
nor the generic "internal error", say what is wrong in one line, and leave the output
folder, inbox and store as they were when it refuses.

Generated with hypothesis, derandomized: CI runs the same cases each time, and a case
that fails prints the input that broke it.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import json
import os
import shutil
import signal
import sqlite3
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible.utils.display  # noqa: F401 (imported before any case captures output:
import pytest  # it patches the process's stdout and stderr once, and warns on a StringIO)
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from vigil.remediations.vouchers.bundle import MEMBERS, Keys
from vigil.remediations.vouchers.offline import export
from vigil.remediations.vouchers.suites import SUITES
from vigil.remediations.vouchers.voucher import Voucher
from vigil.store import Store

CASE_SECONDS = 20


def fuzz(n: int) -> Any:
    # No "explain" phase: its line tracing makes a deep parse look like a hang.
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.generate, Phase.shrink])


class Hang(BaseException):  # escapes the command line's own handler
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise Hang(f"no answer within {CASE_SECONDS} s")


def vigil(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
          ) -> tuple[int, str, str]:
    """`vigil ARGS` in this process: (exit code, stdout, stderr). A hang, or anything
    escaping the command line's own handling, fails the case."""
    from vigil.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, os.getcwd()
    os.environ.update(env or {})
    sys.argv = ["vigil", *args]
    code: Any = 0
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
    return code, out.getvalue(), err.getvalue()


def answered(run: tuple[int, str, str], codes: set[int]) -> tuple[int, str, str]:
    code, out, err = run
    said = out + err
    assert "Traceback" not in said, said[-3000:]
    assert "vigil: internal error" not in said, said[-3000:]
    assert code in codes, (code, said[-2000:])
    if code == 3:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("vigil:"), err
    return run


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="vigil-fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` with its content: what a refusal must leave alone."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def records(store: Path) -> Any:
    if not store.exists():
        return None
    with contextlib.closing(sqlite3.connect(store)) as db:
        return (db.execute("SELECT key, value FROM state ORDER BY key").fetchall(),
                db.execute("SELECT seq, kind, subject FROM events ORDER BY seq").fetchall())


# --- values a user might type ---------------------------------------------------------

ODD_TEXT = st.sampled_from([
    "", " ", "\n", "../../../../etc/passwd", "/dev/zero", "CST", "+08:00", "UTC ",
    "Asia/Shanghai\n", "NaN", "inf", "-1", "1e20", "9" * 5000, "\x00", "\ud800", "😀" * 50,
    "{{ lookup('pipe', 'id') }}", "{{ 1 + }}", "!vault x", "a" * 70_000, "%s%s%n",
    "'; DROP TABLE events; --", "*", "[", "{", "- x", "yes", "null", "0x1F",
    "2026-02-30", "9999-12-31T23:59", "P4.3.5(3)"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.integers(min_value=-10**40, max_value=10**40), st.text(max_size=40),
                    ODD_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)


def _mutate(data: Any, draw: Any) -> Any:
    """Replace, drop or add one value at a random place of a YAML document."""
    data = copy.deepcopy(data)
    node, path = data, []
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict)
                                   else list(range(len(node)))))
        path.append(key)
        if not isinstance(node[key], dict | list):
            break
        node = node[key]
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if not path:
        return draw(VALUES) if action == "replace" else data
    key = path[-1]
    if action == "drop":
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=12))] = draw(VALUES)
    else:
        parent[key] = draw(VALUES)
    return data


DEMO = ROOT / "inventory" / "demo"
DEMO_FILES = ["group_vars/all/site.yml", "host_vars/vigil-server.yml", "hosts.yml"]
RAW_YAML = st.sampled_from([
    "a: &a [1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
    "x: " + "[" * 3000 + "]" * 3000 + "\n", "x: &a [*a]\n", "\tx: 1\n", "x: [1, 2\n",
    "x: 1\nx: 2\n", "--- !!python/object:os.system\n", "\xef\xbb\xbfx: 1\n", ": :\n",
    "x: " + "9" * 5000 + "\n", "vigil_site: 7\n", "vigil_parties: []\n"])


@fuzz(260)
@given(st.data())
def test_broken_inventories_are_one_line_exit_3(data: st.DataObject) -> None:
    with scratch() as tmp:
        inv = tmp / "inv"
        shutil.copytree(DEMO, inv)
        name = data.draw(st.sampled_from(DEMO_FILES))
        if data.draw(st.integers(0, 9)) == 0:
            (inv / name).write_text(data.draw(RAW_YAML), encoding="utf-8")
        else:
            doc = yaml.safe_load((inv / name).read_text(encoding="utf-8"))
            for _ in range(data.draw(st.integers(1, 3))):
                doc = _mutate(doc, data.draw)
            (inv / name).write_text(yaml.safe_dump(doc, allow_unicode=True),
                                    encoding="utf-8")
        answered(vigil("inventory", "validate", "-i", str(inv)), {0, 3})


STEP_REFS = st.one_of(st.sampled_from([
    "database.IV.activate-standby", "database.IV.call-vendor", "infrastructure.III.backup-line",
    "peripheral.I.backend-data", "voucher_library.IV.restart-service", "nope.IV.x",
    "database.V.x", "database", "database.IV", "..", ""]), st.text(max_size=30))
STEP_FIELDS = st.sampled_from(["kind", "attempts", "enabled", "approvers", "two_person",
                               "run", "timeout_s", "expires_minutes", "clause", "zh", "en",
                               "verify", "only_if_failing", "as_class", "roles", "id", "x"])


@fuzz(130)
@given(st.dictionaries(STEP_REFS, st.dictionaries(STEP_FIELDS, VALUES, max_size=3),
                       max_size=3),
       st.one_of(st.just({}), st.dictionaries(st.text(max_size=15), VALUES, max_size=2)),
       st.one_of(st.just(False), VALUES))
def test_runbook_overrides_are_checked_at_load(overrides: dict[str, Any], add: Any,
                                               observe_only: Any) -> None:
    with scratch() as tmp:
        inv = tmp / "inv"
        shutil.copytree(DEMO, inv)
        runbook = {"overrides": overrides, "add": add, "observe_only": observe_only}
        (inv / "group_vars/all/runbook.yml").write_text(
            yaml.safe_dump({"vigil_runbook": runbook}, allow_unicode=True), encoding="utf-8")
        answered(vigil("inventory", "validate", "-i", str(inv)), {0, 3})
        answered(vigil("plan", "show", "-i", str(inv), "--json"), {0, 3})


COLUMNS = ["number", "type", "business_date", "amount", "payer_account", "payee_account",
           "signed", "sent", "received", "receipt_returned"]
CELL = st.one_of(st.sampled_from(["V000001", "支付", "2026-11-27", "1000.00", "62220001",
                                  "true", "", "NaN", "-0", "1e999999", "sNaN",
                                  "2026-13-01", "None"]), ODD_TEXT, st.text(max_size=12))


def _voucher_rows(draw: Any) -> list[dict[str, Any]]:
    rows = []
    for i in range(draw(st.integers(0, 6))):
        row: dict[str, Any] = {"number": f"V{i:06d}", "type": "支付",
                               "business_date": "2026-11-27", "amount": f"{100 + i}.00",
                               "payer_account": "62220001", "payee_account": f"6222{i:04d}",
                               "signed": "true", "sent": "true"}
        if draw(st.integers(0, 3)) == 0:
            field = draw(st.sampled_from(COLUMNS))
            if draw(st.booleans()):
                row.pop(field, None)
            else:
                row[field] = draw(CELL)
        rows.append(row)
    return rows


def _export_file(path: Path, rows: list[Any], draw: Any) -> None:
    form = draw(st.sampled_from(["csv", "jsonl", "bytes", "encoding", "odd-json"]))
    if form == "csv":
        head = draw(st.sampled_from([COLUMNS, COLUMNS[:6], COLUMNS[:3], ["number"]]))
        lines = [",".join(head)] + [",".join(str(r.get(c, "")) for c in head) for r in rows]
        if rows and draw(st.booleans()):  # a short row
            lines[-1] = lines[-1].rsplit(",", 2)[0]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    elif form == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows))
    elif form == "encoding":
        text = ",".join(COLUMNS[:6]) + "\n" + "".join(
            ",".join(str(r.get(c, "")) for c in COLUMNS[:6]) + "\n" for r in rows)
        codec = draw(st.sampled_from(["gbk", "utf-16", "utf-16-le", "utf-8-sig", "latin-1"]))
        path.write_bytes(text.encode(codec, errors="replace"))
    elif form == "odd-json":
        path.write_text(draw(st.sampled_from([
            "[1, 2]\n", "7\n", '"x"\n', "[" * 100_000 + "\n", "{\n", "null\n",
            '{"number": "\\ud800", "type": "x", "business_date": "2026-11-27", '
            '"amount": "1", "payer_account": "a", "payee_account": "b"}\n',
            "x" * 200_000 + "\n"])))
    else:
        path.write_bytes(draw(st.binary(max_size=300)))


@fuzz(260)
@given(st.data())
def test_bad_reconciliation_files_leave_no_half_result(data: st.DataObject) -> None:
    with scratch() as tmp:
        names = []
        for side in ("a", "b"):
            suffix = data.draw(st.sampled_from([".csv", ".jsonl"]))
            path = tmp / f"{side}{suffix}"
            _export_file(path, _voucher_rows(data.draw), data.draw)
            names.append(str(path))
        store, out = tmp / "s.db", tmp / "out"
        encoding = data.draw(st.sampled_from([[], ["--encoding", "gb18030"],
                                              ["--encoding", "nonsense"]]))
        code, _, _ = answered(vigil("reconcile", *names, "--out", str(out), "--store",
                                    str(store), *encoding), {0, 1, 3})
        if code == 3:
            assert not out.exists(), "a refused comparison leaves no resend list"
            assert records(store) in (None, ([], []))
        else:
            assert {p.name for p in out.iterdir()} == {
                "discrepancies-a-b.jsonl", "resend-a-to-b.csv", "resend-b-to-a.csv"}


@pytest.fixture(scope="module")
def disc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Exchanged keys (intl suite: fast) and one genuine bundle from finance to pboc."""
    home = tmp_path_factory.mktemp("disc")
    keys = Keys(home / "keys")
    for party in ("finance", "pboc"):
        keys.generate(SUITES["intl"], party)
    vouchers = [Voucher(f"V{i:06d}", "支付", dt.date(2026, 11, 27), Decimal_(f"{i}.50"),
                        "62220001", f"6222{i:04d}", signed=True, sent=True) for i in range(5)]
    bundle, _ = export(vouchers, sender="finance", recipient="pboc", keys=keys,
                       suite=SUITES["intl"], out_dir=home / "out",
                       ttl=dt.timedelta(days=3650 // 365), now=dt.datetime.now(dt.UTC))
    return {"keys": keys.folder, "bundle": bundle}


def Decimal_(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)


MANIFEST_FIELDS = st.sampled_from(["format", "kind", "bundle_id", "suite", "from", "to",
                                   "created_at", "expires_at", "count", "total_amount",
                                   "payload", "nonce", "wrapped_key", "supplementary",
                                   "in_reply_to", "evil"])


@fuzz(260)
@given(data=st.data())
def test_bad_bundles_are_refused_and_change_nothing(data: st.DataObject,
                                                    disc: dict[str, Path]) -> None:
    with scratch() as tmp:
        keys = tmp / "keys"
        shutil.copytree(disc["keys"], keys)
        raw = disc["bundle"].read_bytes()
        with tarfile.open(disc["bundle"]) as tar:
            parts = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                     for m in tar.getmembers()}
            # the bytes that mean something: each member's header and data; the rest is
            # the archive's zero padding
            meant = [(m.offset, m.offset_data + m.size) for m in tar.getmembers()]
        how = data.draw(st.sampled_from(["field", "field-resigned", "bytes", "cut",
                                         "members", "genuine"]))
        spot = data.draw(st.integers(0, len(raw) - 1))
        bundle = tmp / "in.vgb"
        if how in ("field", "field-resigned"):
            manifest = json.loads(parts["manifest.json"])
            for _ in range(data.draw(st.integers(1, 2))):
                field = data.draw(MANIFEST_FIELDS)
                if data.draw(st.booleans()):
                    manifest.pop(field, None)
                else:
                    manifest[field] = data.draw(VALUES)
            body = json.dumps(manifest, ensure_ascii=False).encode("utf-8", "surrogatepass")
            parts["manifest.json"] = body
            if how == "field-resigned":  # as an insider with finance's key
                parts["manifest.sig"] = SUITES["intl"].sign(
                    keys / "finance.sign.key.pem", body)
            _tar(bundle, parts)
        elif how == "bytes":
            bundle.write_bytes(raw[:spot] + bytes([raw[spot] ^ data.draw(st.integers(1, 255))])
                               + raw[spot + 1:])
        elif how == "cut":
            bundle.write_bytes(raw[:spot])
        elif how == "members":
            name = data.draw(st.sampled_from(list(MEMBERS)))
            parts[name] = data.draw(st.binary(max_size=200))
            if data.draw(st.booleans()):
                parts["../escape"] = b"x"
            _tar(bundle, parts)
        else:
            bundle.write_bytes(raw)
        inbox, store = tmp / "inbox", tmp / "s.db"
        me = data.draw(st.sampled_from(["pboc", "pboc", "finance", "../pboc", "bank-a"]))
        code, _, _ = answered(vigil("exchange", "import", str(bundle), "--as", me, "--keys",
                                    str(keys), "--inbox", str(inbox), "--store", str(store),
                                    "--no-receipt"), {0, 1, 3, 4})
        if code in (3, 4):
            assert tree(inbox) == {}, "a refused bundle imports nothing"
            state, events = records(store) or ([], [])
            assert state == [] and [e[1] for e in events] in ([], ["exchange.refused"])
        else:  # only the genuine bundle, or one changed in its padding alone
            padding = not any(start <= spot < stop for start, stop in meant)
            whole = spot >= max(stop for _, stop in meant)
            # (an insider's re-signed manifest that still holds is theirs to send)
            assert me == "pboc" and (how in ("genuine", "field-resigned")
                                     or (how == "bytes" and padding)
                                     or (how == "cut" and whole)), how


def _tar(path: Path, parts: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in parts.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with an incident, a step and events, as the daemon leaves them."""
    path = tmp_path_factory.mktemp("history") / "s.db"
    store = Store(str(path))
    with store.transaction() as tx:
        tx.append("incident.opened", "db.database.1", {"system": "db"})
        tx.set_state("incident:db.database.1", {
            "id": "db.database.1", "system": "db", "fault_class": "database", "party": "finance",
            "onset": "2026-11-27T10:00:00+08:00", "opened_at": "2026-11-27T10:00:10+08:00",
            "status": "open", "mark": "IV", "checks": ["db.primary"], "cause": None,
            "flapping": False, "detail": ["坏了", "down"], "told": [], "last_told": None,
            "reminders": 0})
        tx.set_state("step:db.database.1/IV/call-vendor", {
            "key": "db.database.1/IV/call-vendor", "incident": "db.database.1", "level": "IV",
            "step": "call-vendor", "fault_class": "database", "clause": "P4.3.2",
            "kind": "manual", "status": "open", "attempts": 0, "approvals": [],
            "planned_at": "2026-11-27T10:00:10+08:00",
            "not_before": "2026-11-27T10:00:10+08:00"})
        tx.append("step.planned", "db.database.1/IV/call-vendor", {"clause": "P4.3.2"})
    return path


DAMAGE = st.one_of(st.binary(max_size=40), st.sampled_from([
    b"\x80\xff", b"{", b"[]", b"7", b'{"id": 1}', b"null", b'{"status": "open"}']))


@fuzz(130)
@given(st.sampled_from(["events.data", "events.kind", "events.hash", "state.value",
                        "state.key", "chain_head.hash"]), DAMAGE,
       st.sampled_from([["events", "list"], ["events", "verify"], ["steps", "--all"],
                        ["incidents", "show", "db.database.1"], ["incidents", "list", "--all"],
                        ["report", "show", "db.database.1"], ["status", "--json"]]))
def test_a_damaged_store_is_reported_not_crashed_on(history: Path, where: str,
                                                    damage: bytes, command: list[str]) -> None:
    with scratch() as tmp:
        store = tmp / "s.db"
        shutil.copy(history, store)
        table, column = where.split(".")
        with contextlib.closing(sqlite3.connect(store)) as db:
            rowid = db.execute(f"SELECT rowid FROM {table} ORDER BY rowid LIMIT 1").fetchone()
            db.execute(f"UPDATE {table} SET {column} = CAST(? AS TEXT) WHERE rowid = ?",
                       (damage, rowid[0]))
            db.commit()
        answered(vigil(*command, "--store", str(store)), {0, 2, 3})


COMMANDS = [["check"], ["check", "--json"], ["check", "--limit"], ["inventory", "validate"],
            ["inventory", "show"], ["events", "list"], ["events", "verify"], ["status"],
            ["incidents", "list"], ["incidents", "show"], ["ack"], ["ladder", "explain"],
            ["plan", "show"], ["plan", "coverage"], ["steps"], ["approve"], ["deny"],
            ["task", "done"], ["report", "show"], ["report", "edit"], ["report", "send"],
            ["incidents", "open"], ["incidents", "close"], ["drill", "plan"],
            ["drill", "list"], ["drill", "show"], ["drill", "report"], ["routine", "list"],
            ["routine", "done"], ["reconcile"], ["supplementary", "plan"],
            ["exchange", "keygen"], ["exchange", "export"], ["exchange", "import"],
            ["version"], []]
OPTIONS = st.sampled_from([
    "--lang", "--json", "--store", "-i", "--inventory", "--limit", "--as", "--onset",
    "--now", "--class", "--level", "--out", "--date", "--since", "--until", "--party",
    "--from", "--to", "--keys", "--inbox", "--ttl-hours", "--suite", "--reason", "--note",
    "--encoding", "--outage-start", "--outage-end", "--all", "--strict", "--version",
    "--vault-password-file", "--project-dir", "--", "-x"])


@fuzz(220)
@given(st.sampled_from(COMMANDS), st.lists(st.one_of(OPTIONS, ODD_TEXT,
                                                     st.text(max_size=15)), max_size=6),
       st.dictionaries(st.sampled_from(["VIGIL_LANG", "VIGIL_STORE", "VIGIL_PROJECT_DIR",
                                        "VIGIL_CLOCK_OFFSET", "ANSIBLE_VAULT_PASSWORD_FILE"]),
                       ODD_TEXT, max_size=2))
def test_any_arguments_and_environment_get_a_documented_answer(
        command: list[str], words: list[str], env: dict[str, str]) -> None:
    with scratch() as tmp:
        clock = tmp / "offset"
        if "VIGIL_CLOCK_OFFSET" in env:  # the file the offset variable names
            clock.write_text(env.pop("VIGIL_CLOCK_OFFSET"), encoding="utf-8",
                             errors="surrogatepass")
            env["VIGIL_CLOCK_OFFSET_FILE"] = str(clock)
        env = {k: _as_os_gives(v) for k, v in env.items()}
        env.setdefault("VIGIL_STORE", str(tmp / "s.db"))
        words = [_as_os_gives(w) for w in words]
        answered(vigil(*command, *words, env=env, cwd=tmp), {0, 1, 2, 3, 4})


def _as_os_gives(text: str) -> str:
    """A string as a process receives it in argv or its environment: no NUL, and bytes
    that are not UTF-8 as Python's surrogate escapes."""
    raw = text.replace("\x00", "").encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "surrogateescape")
