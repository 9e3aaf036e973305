"""http (core, voucher_library, peripheral, ca_seal): a service's HTTP(S) health endpoint.

The payment core, the voucher library and the e-seal service are vendors' software; what
Vigil can rely on is the health endpoint each exposes. TLS is verified (against
`ca_file` when given); a wrong status or body is critical. One GET with
`Connection: close` over asyncio streams, so a cycle of a thousand endpoints needs no
thread per request; redirects are reported, not followed.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.parse

from pydantic import Field

from vigil.checks.base import AsyncProbe, ProbeParams
from vigil.model import CheckSpec
from vigil.result import Metric, Result, Say, Status

MAX_BODY = 65536


class HttpParams(ProbeParams):
    url: str = Field(pattern=r"^https?://")  # "{address}" is replaced by the host's address
    expect_status: list[int] = [200]
    body_contains: str | None = None
    ca_file: str | None = None
    warning_ms: float = Field(1000, gt=0)


class HttpError(Exception):
    pass


async def get(url: str, ca_file: str | None) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    context = ssl.create_default_context(cafile=ca_file) if secure else None
    reader, writer = await asyncio.open_connection(host, port, ssl=context,
                                                   server_hostname=host if secure else None)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: vigil\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            raise HttpError(f"not an HTTP answer: {status_line[:60]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in header_lines if line)}
        body = b""
        while len(body) < MAX_BODY:
            chunk = await reader.read(MAX_BODY - len(body))
            if not chunk:
                break
            body += chunk
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = _dechunk(body)
        return int(fields[1]), body
    finally:
        writer.close()


def _dechunk(raw: bytes) -> bytes:
    out, rest = b"", raw
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


class HttpProbe(AsyncProbe):
    kind = "http"
    Params = HttpParams

    async def arun(self, check: CheckSpec) -> Result:
        p: HttpParams = check.params
        url = p.url.replace("{address}", check.address)
        started = time.monotonic()
        try:
            async with asyncio.timeout(check.timeout_s):
                code, body = await get(url, p.ca_file)
        except ssl.SSLCertVerificationError as exc:
            return check.result(Status.CRITICAL, Say(
                f"{url}: TLS certificate not valid: {exc.verify_message}",
                f"{url}：TLS 证书无效：{exc.verify_message}"), target=url, reachable=False)
        except TimeoutError:
            limit = f"{check.timeout_s:g}"
            return check.result(Status.CRITICAL, Say(f"{url}: no answer within {limit}s",
                                                     f"{url}：{limit} 秒内无应答"),
                                target=url, reachable=False)
        except (OSError, HttpError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return check.result(Status.CRITICAL, Say(f"{url}: unreachable ({why})",
                                                     f"{url}：无法访问（{why}）"),
                                target=url, reachable=False)
        elapsed = round((time.monotonic() - started) * 1000, 1)
        metrics: dict[str, Metric] = {"reachable": True, "http_status": code,
                                      "response_ms": elapsed}
        expected = ", ".join(map(str, p.expect_status))
        if code not in p.expect_status:
            return check.result(Status.CRITICAL, Say(
                f"{url} answered {code} (expected {expected})",
                f"{url} 返回 {code}（应为 {expected}）"), target=url, metrics=metrics)
        if p.body_contains and p.body_contains.encode() not in body:
            return check.result(Status.CRITICAL, Say(
                f"{url} answered {code} but without {p.body_contains!r}",
                f"{url} 返回 {code}，但内容中没有 {p.body_contains!r}"), target=url,
                metrics=metrics)
        status = Status.WARNING if elapsed >= p.warning_ms else Status.OK
        return check.result(status, Say(f"{url} healthy ({code}, {elapsed:.0f} ms)",
                                        f"{url} 服务正常（{code}，{elapsed:.0f} 毫秒）"),
                            target=url, metrics=metrics)
