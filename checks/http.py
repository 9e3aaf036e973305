"""http (core, voucher_library, peripheral, ca_seal): a service's HTTP(S) health endpoint.

The payment core, the voucher library and the e-seal service are vendors' software; what
Vigil can rely on is the health endpoint each exposes. TLS is verified (against
`ca_file` when given); a wrong status or body is critical.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request

from pydantic import Field

from checks.base import CheckSpec, Probe, ProbeParams
from checks.result import Result, Say, Status


class HttpParams(ProbeParams):
    url: str = Field(pattern=r"^https?://")  # "{address}" is replaced by the host's address
    expect_status: list[int] = [200]
    body_contains: str | None = None
    ca_file: str | None = None
    warning_ms: float = Field(1000, gt=0)


class HttpProbe(Probe):
    kind = "http"
    Params = HttpParams

    def run(self, check: CheckSpec) -> Result:
        p: HttpParams = check.params
        url = p.url.replace("{address}", check.address)
        context = ssl.create_default_context(cafile=p.ca_file) if url.startswith("https") \
            else None
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=check.timeout_s,
                                        context=context) as reply:
                code, body = reply.status, reply.read(65536)
        except urllib.error.HTTPError as exc:
            code, body = exc.code, exc.read(65536)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                say = Say(f"{url}: TLS certificate not valid: {reason.verify_message}",
                          f"{url}：TLS 证书无效：{reason.verify_message}")
            else:
                why = getattr(reason, "strerror", None) or reason
                say = Say(f"{url}: unreachable ({why})", f"{url}：无法访问（{why}）")
            return check.result(Status.CRITICAL, say, target=url, reachable=False)
        except (TimeoutError, OSError) as exc:
            return check.result(Status.CRITICAL, Say(f"{url}: no answer ({exc})",
                                                     f"{url}：无应答（{exc}）"),
                                target=url, reachable=False)
        elapsed = round((time.monotonic() - started) * 1000, 1)
        metrics = {"reachable": True, "http_status": code, "response_ms": elapsed}
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
