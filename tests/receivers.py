"""Real receivers on loopback for the channels: an HTTP webhook and an SMTP server.

Both record what arrives with its idempotency key, so tests can count deliveries and
effects (distinct keys) the way a real receiver that drops duplicates would.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY_IN_TEXT = re.compile(r"\[([^\[\]\s]+/[^\[\]\s]+)\]\s*$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    def __init__(self, port: int = 0,
                 on_post: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`on_post` sees each message after it is counted and before it is answered (a
        test may kill its sender in that window)."""
        self.port = port
        self.on_post = on_post
        self.received: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    payload = {"raw": body.decode("utf-8", "replace")}
                message = {"key": self.headers.get("X-Vigil-Key"), "path": self.path,
                           **payload}
                with receiver._lock:
                    receiver.received.append(message)
                if receiver.on_post:
                    receiver.on_post(message)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def keys(self) -> Counter[str]:
        with self._lock:
            return Counter(m["key"] for m in self.received if m.get("key"))

    def titles(self) -> list[str]:
        with self._lock:
            return [m.get("title", "") for m in self.received]


class SmtpReceiver:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[dict[str, str]] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                import email
                from email.policy import default

                msg = email.message_from_bytes(envelope.content, policy=default)
                part = msg.get_body(preferencelist=("plain", "html"))
                text = part.get_content() if part else ""
                receiver.messages.append({"to": ",".join(envelope.rcpt_tos),
                                          "subject": str(msg["subject"]), "body": text})
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def url(self, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=vigil@lab.local&to={to}"

    def keys(self) -> Counter[str]:
        found = (KEY_IN_TEXT.search(m["body"].strip()) for m in self.messages)
        return Counter(m.group(1) for m in found if m)
