"""`vigil drill plan | run | list | show | report`: drills with records (P3.2.3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vigil import clock
from vigil.alerting import drills as drill_state
from vigil.cli.common import (
    InventoryOpt,
    JsonOpt,
    LangOpt,
    ProjectOpt,
    StoreOpt,
    VaultOpt,
    err,
    fail,
    load_inv,
    local,
    open_store,
    out,
    pick_lang,
    project_folder,
)
from vigil.cli.identity import AsOpt, OverrideOpt, ReasonOpt, who
from vigil.cli.monitors import leader_view
from vigil.identity import become
from vigil.model import Host, Inventory
from vigil.remediations import drills, first_aid
from vigil.store import Store

drill_app = typer.Typer(no_args_is_help=True, help=(
    "Drills (P3.2.3): a real fault caused on purpose, the running monitor and the people "
    "walking the plan, every message marked 【演练】, and an archived record."))

OutOpt = Annotated[Path | None, typer.Option(
    "--out-dir", help="Where records go (default $VIGIL_DRILL_DIR, else "
    "~/.local/state/vigil/drills).")]


def _out_dir(option: Path | None) -> Path:
    return option or Path(os.environ.get("VIGIL_DRILL_DIR") or
                          Path.home() / ".local/state/vigil/drills")


def _plan(ref: str, inv: Inventory) -> drills.DrillPlan:
    try:
        return drills.load_plan(ref, inv)
    except drills.DrillRefused as exc:
        fail(str(exc))


@drill_app.command("plan")
def plan(ref: Annotated[str | None, typer.Argument(
             help="A plan's id (inventory drills/ folder) or file; none: list them.")] = None,
         inventory: InventoryOpt = None, json_out: JsonOpt = False, lang: LangOpt = None,
         vault_password_file: VaultOpt = None) -> None:
    """Check a drill plan against the inventory and show it, or list the site's plans."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    if ref is None:
        found = [_plan(str(p), inv) for p in drills.list_plans(inv)]
        if json_out:
            sys.stdout.write(json.dumps([p.model_dump(mode="json") for p in found],
                                        ensure_ascii=False, indent=2) + "\n")
            return
        for p in found:
            out.print(f"{p.id}: {escape(p.name.get(lg))} ({p.fault_class.value}; "
                      f"{', '.join(p.systems)})")
        if not found:
            out.print(f"{drills.plans_dir(inv)}: " + ("没有演练计划" if lg == "zh" else
                                                      "no drill plans"))
        return
    p = _plan(ref, inv)
    if json_out:
        sys.stdout.write(json.dumps(p.model_dump(mode="json"), ensure_ascii=False, indent=2)
                         + "\n")
        return
    out.print(escape(f"{p.id}: {p.name.get(lg)}"))
    for k, v in (("cause", p.cause.text(lg)),
                 ("heal", "; ".join(a.text(lg) for a in p.heal) or "-"),
                 ("systems", ", ".join(p.systems)), ("participants", ", ".join(p.participants)),
                 ("levels", ", ".join(lv.value for lv in p.levels)), ("speed", f"×{p.speed:g}"),
                 ("max_minutes", f"{p.max_minutes:g}")):
        out.print(escape(f"  {k}: {v}"))


def _act(action: drills.Action, inv: Inventory, project: Path | None, drill_id: str,
         say: Console, lang: str) -> None:
    """Carry out one action of the plan; a failure ends the drill (and is in its record)."""
    zh = lang == "zh"
    if action.by_hand:
        say.print(("请现在执行：" if zh else "Do this now: ") + escape(action.by_hand.get(lang)))
        return
    if action.lab:
        run = subprocess.run([sys.executable, "-m", "vigil", "lab", *action.lab],
                             capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            raise drills.DrillRefused(f"vigil lab {' '.join(action.lab)}: "
                                      f"{(run.stderr or run.stdout).strip()[-300:]}")
        return
    from vigil.remediations.playbook_run import run_playbook
    from vigil.runbook import Run

    assert action.playbook and project
    outcome = run_playbook(Run(playbook=action.playbook, vars=action.vars), inv.path,
                           drill_id, False, 900, lambda item: None, project=project)
    if not outcome.ok:
        raise drills.DrillRefused(f"{action.playbook}: {outcome.status} "
                                  f"{', '.join(outcome.failed_tasks)[:300]}")


def _wait(what: str, done: Any, deadline: float, store: Store, drill_id: str,
          say: Console) -> bool:
    """Poll until `done()` or the deadline, reporting the drill's incidents and steps as
    they change."""
    seen: set[str] = set()
    while True:
        for inc in drills.incidents_of(store, drill_id):
            line = f"{inc['id']}: {inc['status']} {inc['mark'] or ''}"
            if line not in seen:
                seen.add(line)
                say.print(escape(f"  {line}"))
        for rec in drills.steps_of(store, drill_id):
            line = f"{rec['key'].split('/', 1)[1]} ({rec['clause']}): {rec['status']}"
            if line not in seen:
                seen.add(line)
                say.print(escape(f"  {line}"))
        if done():
            return True
        if time.monotonic() > deadline:
            err.print(f"[yellow]{escape(what)}: not within the drill's max_minutes[/]")
            return False
        time.sleep(1)


def _watch_writes(db: Store, drill_id: str, host: Host, deadline: float) -> None:
    """From the cause on, try a write on the host every 0.1 s; record when one is taken."""
    started = time.monotonic()

    def watch() -> None:
        while time.monotonic() < deadline:
            if first_aid.takes_writes(host):
                drills.mark(db, drill_id, "writable", {
                    "host": host.name, "seconds": round(time.monotonic() - started, 2)})
                return
            time.sleep(0.1)

    threading.Thread(target=watch, name=f"writes on {host.name}", daemon=True).start()


@drill_app.command("run")
def run(ref: Annotated[str, typer.Argument(help="A plan's id or file.")],
        as_: AsOpt = None, override: OverrideOpt = False, why: ReasonOpt = None,
        inventory: InventoryOpt = None, store: StoreOpt = None, out_dir: OutOpt = None,
        project: ProjectOpt = None, json_out: JsonOpt = False, lang: LangOpt = None,
        vault_password_file: VaultOpt = None) -> None:
    """Run a drill against the running monitor: cause the fault, let the monitor and the
    participants walk the plan, heal it, then evaluate and archive the record. Exit 0
    when the evaluation passed, 1 when it found failures."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    actor = who(as_, override, why, inv, db, lg, clock.now())
    become(actor)
    p = _plan(ref, inv)
    needs_project = p.cause.playbook or any(a.playbook for a in p.heal)
    folder = project_folder(project, inv) if needs_project else None
    if not leader_view(db)["leader"]:
        fail("a drill exercises the running monitor: start `vigil watch` on this store first")
    try:
        drill = drills.start(db, inv, p, actor.contact, clock.now())
    except (drills.DrillRefused, PermissionError) as exc:
        fail(str(exc))
    deadline = time.monotonic() + p.max_minutes * 60
    why = "done"
    say = err if json_out else out  # progress never mixes into the JSON
    say.print(f"演练 {drill['id']} 开始" if lg == "zh" else f"drill {drill['id']} started")
    try:
        _act(p.cause, inv, folder, drill["id"], say, lg)
        drills.mark(db, drill["id"], "caused", {"action": p.cause.text("en")})
        for host in p.expect.writable:
            _watch_writes(db, drill["id"], inv.hosts[host], deadline)
        _wait("the plan's levels walked", lambda: drills.walked(db, p, drill["id"]), deadline,
              db, drill["id"], say)
        if p.heal:
            drills.healing(db, drill["id"])
        for action in p.heal:
            _act(action, inv, folder, drill["id"], say, lg)
            drills.mark(db, drill["id"], "healed", {"action": action.text("en")})
        if p.heal:
            _wait("recovery", lambda: drills.settled(db, drill["id"]), deadline, db,
                  drill["id"], say)
    except drills.DrillRefused as exc:
        why = str(exc)
        err.print(f"[red]{escape(why)}[/]")
    except KeyboardInterrupt:
        why = "interrupted"
    finally:
        ended = drills.end(db, drill["id"], clock.now(), why)
    findings = drills.evaluate(db, inv, p, drill["id"])
    files = drills.archive(db, inv, p, ended, findings, _out_dir(out_dir))
    ok = drills.passed(findings) and why == "done"
    if json_out:
        sys.stdout.write(json.dumps({"drill": drill["id"], "passed": ok,
                                     "files": [str(f) for f in files],
                                     "findings": [f.__dict__ for f in findings]},
                                    ensure_ascii=False, indent=2) + "\n")
    else:
        _print_findings(findings, lg)
        for f in files:
            out.print(str(f))
    raise typer.Exit(0 if ok else 1)


def _print_findings(findings: list[drills.Finding], lg: str) -> None:
    zh = lg == "zh"
    table = Table(title="演练评估" if zh else "Drill evaluation", title_justify="left")
    for col in (("项目", "Item"), ("预期", "Expected"), ("实际", "Actual"), ("结论", "Verdict")):
        table.add_column(col[0] if zh else col[1], overflow="fold")
    for f in findings:
        verdict = ("记录" if zh else "noted") if f.ok is None else \
            ("[green]通过[/]" if zh else "[green]passed[/]") if f.ok else \
            ("[red]未通过[/]" if zh else "[red]failed[/]")
        table.add_row(escape(f.what if zh else f.what_en), escape(f.expected),
                      escape(f.actual), verdict)
    out.print(table)


def _recorded(db: Store) -> dict[str, dict[str, Any]]:
    return {e.subject: e.data for e in db.events(kind="drill.recorded")}


@drill_app.command("list")
def list_(inventory: InventoryOpt = None, store: StoreOpt = None, json_out: JsonOpt = False,
          lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Past and running drills, newest first, with their verdicts."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    recorded = _recorded(db)
    rows = sorted(db.states(drill_state.PREFIX).values(), key=lambda d: d["started"],
                  reverse=True)
    rows = [{**d, "passed": recorded.get(d["id"], {}).get("passed")} for d in rows]
    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    zh = lg == "zh"
    if not rows:
        out.print("尚无演练记录（vigil drill run）" if zh else "no drills yet (vigil drill run)")
        return
    table = Table(title_justify="left")
    for col in (("演练", "Drill"), ("故障类别", "Fault class"), ("开始", "Started"),
                ("结束", "Ended"), ("结论", "Verdict")):
        table.add_column(col[0] if zh else col[1], overflow="fold")
    for d in rows:
        verdict = "-" if d["passed"] is None else (
            ("通过" if zh else "passed") if d["passed"] else ("未通过" if zh else "failed"))
        table.add_row(escape(d["id"]), d["fault_class"], local(d["started"], inv),
                      local(d["ended"], inv) or ("进行中" if zh else "running"), verdict)
    out.print(table)


def _stored_plan(db: Store, drill_id: str) -> tuple[drill_state.Drill, drills.DrillPlan]:
    drill = drill_state.load(db, drill_id)
    started = db.events(kind="drill.started", subject=drill_id)
    if drill is None or not started:
        fail(f"no drill {drill_id!r} (see vigil drill list)")
    return drill, drills.DrillPlan.model_validate(started[0].data["plan_text"])


@drill_app.command("show")
def show(drill_id: Annotated[str, typer.Argument(help="A drill's id (vigil drill list).")],
         inventory: InventoryOpt = None, store: StoreOpt = None, lang: LangOpt = None,
         vault_password_file: VaultOpt = None) -> None:
    """A drill's record: plan, process, evaluation and sign-off lines (Markdown)."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    drill, p = _stored_plan(db, drill_id)
    sys.stdout.write(drills.record(db, inv, p, drill, drills.evaluate(db, inv, p, drill_id),
                                   lg))


@drill_app.command("report")
def report(drill_id: Annotated[str, typer.Argument(help="A drill's id (vigil drill list).")],
           inventory: InventoryOpt = None, store: StoreOpt = None, out_dir: OutOpt = None,
           lang: LangOpt = None, vault_password_file: VaultOpt = None) -> None:
    """Write a drill's archived record again (zh/en, Markdown and printable HTML), its
    digest in the event chain."""
    lg = pick_lang(lang)
    inv = load_inv(inventory, vault_password_file, lg)
    db = open_store(store, lg)
    drill, p = _stored_plan(db, drill_id)
    if drill["status"] != "ended":
        fail(f"drill {drill_id} is still running")
    for f in drills.archive(db, inv, p, drill, drills.evaluate(db, inv, p, drill_id),
                            _out_dir(out_dir)):
        out.print(str(f))
