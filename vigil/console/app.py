"""The console's web application (Starlette, Jinja2 templates, a little plain JavaScript
for live updates; nothing fetched from the internet).

Every action runs as the signed-in person (vigil.identity), after the session's CSRF token
and a one-time form nonce are checked, so a forged or replayed post changes nothing; a
message's signed link signs its recipient in for acknowledging that incident only."""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vigil import accounts, clock, keys, links
from vigil.alerting import incidents as incidents_mod
from vigil.cli.steps import status_text
from vigil.clock import local_text
from vigil.console import sessions, views
from vigil.console.sessions import Session
from vigil.domain import Level
from vigil.identity import acting
from vigil.model import Contact, Inventory
from vigil.remediations import steps
from vigil.store import Event, Store, events_table

HERE = Path(__file__).parent
_LOGIN_WINDOW_S, _LOGIN_PER_WINDOW = 300, 20  # sign-ins tried from one address
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class Console:
    def __init__(self, inv: Inventory, store: Store) -> None:
        self.inv, self.store = inv, store
        self.key = links.secret(store)
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True))
        self.env.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True)
        self.tries: dict[str, collections.deque[float]] = {}
        self.verdict: dict[str, Any] | None = None  # the chain's last verification
        self.snapshot = views.Snapshot(inv, store)
        self.lock = threading.Lock()  # one refresh of the snapshot at a time

    # --- helpers ---------------------------------------------------------------------

    def contact(self, contact_id: str) -> Contact | None:
        return next((c for c in self.inv.contacts if c.id == contact_id), None)

    def session(self, request: Request) -> Session | None:
        return sessions.find(self.store, request.cookies.get(sessions.COOKIE), clock.now())

    def lang(self, request: Request, session: Session | None) -> str:
        asked = request.query_params.get("lang")
        if asked in ("zh", "en"):
            return asked
        return session.lang if session else self.inv.site.lang

    def render(self, request: Request, template: str, session: Session | None,
               status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = self.lang(request, session)
        me = self.contact(session.contact) if session else None

        def tr(zh: str, en: str) -> str:
            return en if lang == "en" else zh

        html = self.env.get_template(template).render(
            request=request, lang=lang, tr=tr, me=me, session=session,
            nonce=sessions.new_nonce, site=self.inv.site.name.get(lang),
            level_text=lambda mark: Level(mark).text(lang) if mark else "-",
            local=lambda iso: local_text(iso, self.inv.site.timezone),
            status_text=lambda s: status_text(s, lang), **ctx)
        return HTMLResponse(html, status_code=status)

    def problem(self, request: Request, session: Session | None, status: int, zh: str,
                en: str) -> HTMLResponse:
        return self.render(request, "problem.html", session, status=status, zh=zh, en=en)

    def need_session(self, request: Request) -> Session | RedirectResponse:
        session = self.session(request)
        if session is None:
            return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
        return session

    # --- pages -----------------------------------------------------------------------
    # Every handler that reads or writes the store is a plain function: Starlette runs it
    # in its thread pool, so a slow store stalls that request, not the event loop and every
    # other page with it. A posted form is read on the loop first, then handed over.

    def overview(self, request: Request) -> Response:
        session = self.need_session(request)
        if isinstance(session, Response):
            return session
        if session.via == "link":
            return RedirectResponse(f"/incidents/{quote(session.incident or '')}", 303)
        me = self.contact(session.contact)
        assert me is not None
        with self.lock:
            data = views.overview(self.snapshot, me, self.lang(request, session), clock.now())
        live = request.url.path.startswith("/live")
        return self.render(request, "overview_live.html" if live else "overview.html",
                           session, data=data)

    def incident(self, request: Request) -> Response:
        session = self.need_session(request)
        if isinstance(session, Response):
            return session
        me = self.contact(session.contact)
        incident_id = request.path_params["incident"]
        page = views.incident(self.store, self.inv, me, incident_id,
                              self.lang(request, session), clock.now()) if me else None
        if page is None or (session.via == "link" and session.incident != incident_id):
            return self.problem(request, session, 404, f"没有可查看的事件 {incident_id}",
                                f"No incident {incident_id} you may see")
        live = request.url.path.startswith("/live")
        return self.render(request, "incident_live.html" if live else "incident.html",
                           session, page=page, done=request.query_params.get("done"))

    def checks(self, request: Request) -> Response:
        session = self.need_session(request)
        if isinstance(session, Response):
            return session
        if session.via == "link":
            return self.problem(request, session, 403, "请先登录", "Sign in first")
        q = request.query_params.get("q", "").strip().lower()
        only = request.query_params.get("status", "")
        states = self.store.states("check:")
        rows = []
        for spec in self.inv.checks:
            hits = [(k.removeprefix("check:"), v) for k, v in states.items()
                    if k.removeprefix("check:").split("@", 1)[0] == spec.name]
            for key, state in hits or [(spec.name, None)]:
                row = {"name": spec.name, "key": key, "system": spec.system, "kind": spec.kind,
                       "host": spec.host, "status": state["status"] if state else "unknown",
                       "since": state["since"] if state else None}
                if q and q not in " ".join(str(v) for v in row.values()).lower():
                    continue
                if only and row["status"] != only:
                    continue
                rows.append(row)
        return self.render(request, "checks.html", session, rows=rows, q=q, only=only)

    def events(self, request: Request) -> Response:
        session = self.need_session(request)
        if isinstance(session, Response):
            return session
        if session.via == "link":
            return self.problem(request, session, 403, "请先登录", "Sign in first")
        q = request.query_params.get("q", "").strip()
        kind = request.query_params.get("kind", "").strip() or None
        try:
            before = int(request.query_params.get("before", "0") or 0)
        except ValueError:
            before = 0
        found = _search(self.store, q, kind, before)
        if request.query_params.get("verify") == "1":  # seconds at a million events: aside
            verdict = self.store.verify()
            self.verdict = {"ok": verdict.ok, "count": verdict.count,
                            "bad_seq": verdict.bad_seq, "reason": verdict.reason,
                            "at": clock.now().isoformat()}
        return self.render(request, "events.html", session, events=found, q=q,
                           kind=kind or "", verdict=self.verdict,
                           older=found[-1].seq if len(found) == 100 else None)

    def report(self, request: Request) -> Response:
        from vigil.remediations.report import ReportRefused, as_html, incident_report

        session = self.need_session(request)
        if isinstance(session, Response):
            return session
        incident_id = request.path_params["incident"]
        me = self.contact(session.contact)
        if session.via == "link" or me is None or \
                not views.may_see(self.inv, me, incident_id):
            return self.problem(request, session, 404, f"没有可查看的事件 {incident_id}",
                                f"No incident {incident_id} you may see")
        lang = self.lang(request, session)
        try:
            text = incident_report(self.store, self.inv, incident_id, lang)
        except ReportRefused as exc:
            return self.problem(request, session, 404, str(exc), str(exc))
        response = HTMLResponse(as_html(text, lang))
        # The printable page styles itself inline; it runs no script.
        response.headers["Content-Security-Policy"] = _CSP.replace(
            "style-src 'self'", "style-src 'unsafe-inline'")
        return response

    # --- signing in ------------------------------------------------------------------

    def _login_token(self) -> str:
        return links.signer(self.key, "login").dumps("login")

    async def login(self, request: Request) -> Response:
        form = await request.form() if request.method == "POST" else None
        return await run_in_threadpool(self._login, request, form)

    def _login(self, request: Request, form: FormData | None) -> Response:
        session = self.session(request)
        if form is None:
            return self.render(request, "login.html", session, token=self._login_token(),
                               next=_safe_next(request.query_params.get("next")), error=None)
        nxt = _safe_next(str(form.get("next", "")))
        address = request.client.host if request.client else None
        lang = self.lang(request, session)

        def again(status: int, zh: str, en: str) -> HTMLResponse:
            return self.render(request, "login.html", session, status=status,
                               token=self._login_token(), next=nxt,
                               error=zh if lang == "zh" else en)

        try:
            links.signer(self.key, "login").loads(str(form.get("token", "")), max_age=3600)
        except BadSignature:
            return again(400, "表单已过期，请重新登录", "The form expired: sign in again")
        if not self._may_try(address or "?"):
            return again(429, "尝试过于频繁，请稍后再试", "Too many tries: wait a few minutes")
        contact_id = str(form.get("contact", "")).strip()
        contact = self.contact(contact_id)
        try:
            accounts.sign_in(self.store, self.inv, contact_id, str(form.get("password", "")),
                             str(form.get("code", "")), address=address, now=clock.now())
        except accounts.SignInError as exc:
            zh = "账户已锁定，请稍后再试或请管理员重置" if "locked" in str(exc) else \
                "账户已停用" if "disabled" in str(exc) else "账户、密码或动态码错误"
            return again(403, zh, str(exc))
        assert contact is not None  # sign_in refuses an account that is not a contact
        if session:  # the one this browser had, found at the top
            sessions.end(self.store, session)
        sid = sessions.start(self.store, contact_id, "console", address,
                             self.inv.console.session_hours, clock.now(), contact.lang)
        response = RedirectResponse(nxt, 303)
        self._cookie(request, response, sid, self.inv.console.session_hours)
        return response

    def _may_try(self, address: str) -> bool:
        now = time.monotonic()
        tries = self.tries.setdefault(address, collections.deque())
        while tries and now - tries[0] > _LOGIN_WINDOW_S:
            tries.popleft()
        tries.append(now)
        return len(tries) <= _LOGIN_PER_WINDOW

    def _cookie(self, request: Request, response: Response, sid: str, hours: float) -> None:
        response.set_cookie(sessions.COOKIE, sid, max_age=int(hours * 3600), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")

    async def logout(self, request: Request) -> Response:
        return await run_in_threadpool(self._logout, request, await request.form())

    def _logout(self, request: Request, form: FormData) -> Response:
        session = self.session(request)
        if session:
            why = sessions.spend(self.store, session, str(form.get("csrf", "")),
                                 str(form.get("nonce", "")))
            if why:
                return self._refused(request, session, why)
            sessions.end(self.store, session)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(sessions.COOKIE, path="/")
        return response

    def link(self, request: Request) -> Response:
        try:
            contact_id, incident_id = links.read(self.key, request.path_params["token"],
                                                 self.inv.console.link_hours)
        except links.LinkRefused as exc:
            self.store.append("console.link_refused", "console", {
                "why": str(exc), "address": request.client.host if request.client else None})
            return self.problem(request, None, 403, "链接无效或已过期，请登录后操作",
                                f"{exc}")
        contact = self.contact(contact_id)
        if contact is None or not views.may_see(self.inv, contact, incident_id):
            return self.problem(request, None, 403, "链接无效", "This link is not valid")
        current = self.session(request)
        target = f"/incidents/{quote(incident_id)}"
        if current and current.via == "console" and current.contact == contact_id:
            return RedirectResponse(target, 303)
        sid = sessions.start(self.store, contact_id, "link",
                             request.client.host if request.client else None,
                             min(1.0, self.inv.console.link_hours), clock.now(),
                             contact.lang, incident=incident_id)
        response = RedirectResponse(target, 303)
        self._cookie(request, response, sid, 1.0)
        return response

    async def set_lang(self, request: Request) -> Response:
        return await run_in_threadpool(self._set_lang, request, await request.form())

    def _set_lang(self, request: Request, form: FormData) -> Response:
        """The signed-in person's language, kept in their session (a form like any other:
        its token and nonce checked)."""
        session = self.session(request)
        nxt = _safe_next(str(form.get("next", "")))
        lang = str(form.get("lang", ""))
        if session is None or lang not in ("zh", "en"):
            return RedirectResponse(nxt, 303)
        why = sessions.spend(self.store, session, str(form.get("csrf", "")),
                             str(form.get("nonce", "")))
        if why:
            return self._refused(request, session, why)
        sessions.set_lang(self.store, session, lang)
        return RedirectResponse(nxt, 303)

    # --- actions ---------------------------------------------------------------------

    def _refused(self, request: Request, session: Session | None, why: str) -> HTMLResponse:
        self.store.append("console.post_refused", session.contact if session else "console",
                          {"why": why, "path": request.url.path,
                           "address": request.client.host if request.client else None})
        if why == "replayed":
            return self.problem(request, session, 409, "该表单已提交过，未再执行",
                                "This form was already sent: nothing was done again")
        return self.problem(request, session, 403, "请求无效（缺少或错误的表单令牌），未执行",
                            "Refused: the form's token is missing or wrong; nothing was done")

    async def act(self, request: Request) -> Response:
        return await run_in_threadpool(self._act, request, await request.form())

    def _act(self, request: Request, form: FormData) -> Response:
        session = self.session(request)
        if session is None:
            return self._refused(request, None, "no session")
        why = sessions.spend(self.store, session, str(form.get("csrf", "")),
                             str(form.get("nonce", "")))
        if why:
            return self._refused(request, session, why)
        action = request.path_params["action"]
        incident_id = str(form.get("incident", ""))
        if session.via == "link" and not (action == "ack" and incident_id == session.incident):
            return RedirectResponse(
                f"/login?next={quote('/incidents/' + incident_id)}", 303)
        me = self.contact(session.contact)
        if me is None or not views.may_see(self.inv, me, incident_id):
            return self.problem(request, session, 404, f"没有可查看的事件 {incident_id}",
                                f"No incident {incident_id} you may see")
        now = clock.now()
        try:
            with acting(session.actor()):
                done = self._do(action, form, me, incident_id, now)
        except PermissionError as exc:
            return self.problem(request, session, 403, f"无权执行：{exc}", f"Refused: {exc}")
        except (steps.StepError, LookupError, ValueError) as exc:
            return self.problem(request, session, 409, f"未执行：{exc}", f"Not done: {exc}")
        return RedirectResponse(f"/incidents/{quote(incident_id)}?done={done}", 303)

    def _do(self, action: str, form: Any, me: Contact, incident_id: str,
            now: dt.datetime) -> str:
        book = self.inv.site_runbook
        if action == "ack":
            acked = incidents_mod.acknowledge(self.store, self.inv, incident_id, me.id, now)
            return "acked" if acked.quiets else "received"
        if action == "note":
            incidents_mod.note(self.store, self.inv, incident_id, me.id,
                               str(form.get("note", "")), now)
            return "noted"
        key = str(form.get("step", ""))
        rec = self.store.get_state(keys.step(key))
        if rec is None or rec["incident"] != incident_id:
            raise LookupError(f"no step {key!r} in {incident_id}")
        if rec["status"] != form.get("shown"):  # the page was stale
            raise steps.StepError(f"{key} is now {rec['status']}: reload the page and "
                                  f"decide again")
        if action in ("approve", "deny"):
            rec = steps.approve(self.store, self.inv, book, key, me.id, now) \
                if action == "approve" else \
                steps.deny(self.store, self.inv, book, key, me.id, str(form.get("reason", "")),
                           now)
            if rec["status"] == "expired":
                raise steps.StepError(f"{key} expired at {rec.get('expires_at')}: it will not "
                                      f"run")
            return "approved" if action == "approve" else "denied"
        if action == "done":
            steps.done(self.store, self.inv, book, key, me.id, str(form.get("note", "")), now)
            return "ticked"
        raise LookupError(f"no action {action!r}")


def _search(store: Store, q: str, kind: str | None, before: int) -> list[Event]:
    """The newest 100 events (before `before`) whose kind, subject or data mention `q`."""
    query = select(events_table).order_by(events_table.c.seq.desc()).limit(100)
    if before:
        query = query.where(events_table.c.seq < before)
    if kind:
        query = query.where(events_table.c.kind == kind)
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        query = query.where(events_table.c.subject.like(like) | events_table.c.data.like(like))
    return store.rows(query)


def _safe_next(value: str | None) -> str:
    """Only a path on this console: never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


class Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"  # links carry tokens
        response.headers.setdefault("Cache-Control", "no-store")
        if request.url.scheme == "https":
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response


def build(inv: Inventory, store: Store) -> Starlette:
    console = Console(inv, store)
    routes = [
        Route("/", console.overview),
        Route("/live/overview", console.overview),
        Route("/incidents/{incident}", console.incident),
        Route("/live/incidents/{incident}", console.incident),
        Route("/checks", console.checks),
        Route("/events", console.events),
        Route("/reports/{incident}", console.report),
        Route("/login", console.login, methods=["GET", "POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/l/{token}", console.link),
        Route("/lang", console.set_lang, methods=["POST"]),
        Route("/act/{action}", console.act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        session = await run_in_threadpool(console.session, request)
        return console.problem(request, session, 404, "没有这个页面", "No such page")

    async def broken(request: Request, exc: Exception) -> Response:
        return console.problem(request, None, 500, "内部错误，已记录", "Internal error")

    return Starlette(routes=routes, middleware=[Middleware(Headers)],
                     exception_handlers={404: not_found, 500: broken})
