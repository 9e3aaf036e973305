"""Delivery of one message through one channel: apprise for everything it knows (email,
WeCom, DingTalk, Feishu, SMS gateways, JSON webhooks), and a local file.

Every message carries its idempotency key — as the `X-Vigil-Key` header and a
`vigil_key` field for JSON webhooks, in the text for everything else — so a receiver can
drop the duplicates that at-least-once delivery may produce after a crash.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from pathlib import Path

KEY_HEADER = "X-Vigil-Key"


def kind_of(url: str) -> str:
    """The channel's scheme, which is safe to log (the URL itself may hold credentials)."""
    return url.split("://", 1)[0] if "://" in url else "unknown"


def send(url: str, title: str, body: str, key: str, timeout: float = 5.0) -> str | None:
    """Deliver; None on success, else what went wrong (without the URL's credentials)."""
    if url.startswith("file://"):
        return _to_file(Path(urllib.parse.urlsplit(url).path), title, body, key)
    import apprise

    target = url
    if kind_of(url) in ("json", "jsons"):
        target = _with_query(url, {f"+{KEY_HEADER}": key, ":vigil_key": key})
    target = _with_query(target, {"cto": f"{timeout:g}", "rto": f"{timeout:g}"})
    notifier = apprise.Apprise()
    if not notifier.add(target):
        return f"{kind_of(url)} channel URL not understood by apprise"
    text = body if kind_of(url) in ("json", "jsons") else f"{body}\n\n[{key}]"
    with apprise.LogCapture(level=logging.WARNING) as log:
        ok = notifier.notify(title=title, body=text)
    if ok:
        return None
    said = [line for line in log.getvalue().splitlines() if line.strip()]
    return f"{kind_of(url)} delivery failed" + (f": {said[-1][:200]}" if said else "")


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in extra.items() if k not in dict(query)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _to_file(path: Path, title: str, body: str, key: str) -> str | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "title": title, "body": body}, ensure_ascii=False)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return f"file channel {path}: {exc.strerror}"
    return None
