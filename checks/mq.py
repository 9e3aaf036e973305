"""mq (mq_network, P4.3.1(1), P4.3.7): the MQ broker, its queues, and jams.

The plan tells every party to stop sending MQ data "so the queues do not jam". This probe
sees a jam coming: a queue whose depth grows while nothing is delivered, or a queue that
must have a consumer and has none. It also reports whether a party's sending is paused
(the mq_sending remediation revokes the party user's write permission on the broker).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pika
import pika.exceptions
from pydantic import BaseModel, ConfigDict, Field

from vigil.checks.base import Finding, Probe, ProbeParams, verdict
from vigil.model import CheckSpec
from vigil.result import Metric, Result, Say, Status
from vigil.secrets import SecretField, SecretMissing

PAUSED = "^$"  # a write permission that matches nothing: the party cannot publish


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    min_consumers: int = Field(1, ge=0)
    depth_warning: int = Field(1000, ge=0)
    depth_critical: int = Field(10000, ge=0)


class PartyUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    party: str
    user: str


class MqParams(ProbeParams):
    address: str | None = None
    port: int = Field(5672, ge=1, le=65535)
    management_url: str | None = None  # default http://ADDRESS:15672
    vhost: str = "/"
    user: str = "guest"
    password: SecretField | None = None  # default "guest" (loopback only)
    queues: list[QueueSpec] = []
    parties: list[PartyUser] = []


class _Api:
    def __init__(self, base: str, user: str, password: str, timeout: float) -> None:
        self.base, self.timeout = base.rstrip("/"), timeout
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def get(self, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read() or b"null")
            except ValueError:
                body = None
            return exc.code, body


def _rate(stats: dict[str, Any] | None, key: str) -> float:
    return float(((stats or {}).get(f"{key}_details") or {}).get("rate") or 0.0)


class MqProbe(Probe):
    kind = "mq"
    Params = MqParams

    def run(self, check: CheckSpec) -> Result:
        p: MqParams = check.params
        address = p.address or check.address
        target = f"{address}:{p.port}"
        try:
            password = p.password.reveal() if p.password else "guest"
        except SecretMissing as exc:
            return check.result(Status.UNKNOWN, Say(f"no MQ password: {exc}",
                                                    f"缺少 MQ 密码：{exc}"), target=target)
        metrics: dict[str, Metric] = {}
        findings: list[Finding] = []

        amqp_error = self._amqp(address, p, password, check.timeout_s)
        metrics["amqp_ok"] = amqp_error is None
        if amqp_error:
            findings.append((Status.CRITICAL, Say(f"AMQP {target}: {amqp_error.en}",
                                                  f"MQ {target}：{amqp_error.zh}")))

        api = _Api(p.management_url or f"http://{address}:15672", p.user, password,
                   check.timeout_s)
        try:
            self._inspect(api, p, metrics, findings)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            metrics["management_ok"] = False
            findings.append((Status.CRITICAL if amqp_error else Status.WARNING,
                             Say(f"management API unreachable ({reason})",
                                 f"MQ 管理接口无法访问（{reason}）")))
        n = len(p.queues)
        status, say = verdict(findings, Say(f"broker up, {n} queues flowing",
                                            f"MQ 正常，{n} 个队列收发正常"))
        paused = [u.party for u in p.parties if metrics.get(f"sending_paused:{u.party}")]
        if paused:
            who = ", ".join(paused)
            say = Say.join([say, Say(f"sending paused for {who}", f"已暂停发送：{who}")])
        return check.result(status, say, target=target, metrics=metrics)

    def _amqp(self, address: str, p: MqParams, password: str, timeout: float) -> Say | None:
        params = pika.ConnectionParameters(
            host=address, port=p.port, virtual_host=p.vhost,
            credentials=pika.PlainCredentials(p.user, password), connection_attempts=1,
            socket_timeout=timeout, stack_timeout=timeout, blocked_connection_timeout=timeout)
        try:
            pika.BlockingConnection(params).close()
        except pika.exceptions.ProbableAuthenticationError:
            return Say(f"login refused for user {p.user}", f"用户 {p.user} 登录被拒绝")
        except pika.exceptions.AMQPError as exc:
            why = f"{type(exc).__name__}: {exc or 'no answer'}"
            return Say(f"broker unreachable ({why})", f"无法连接 MQ（{why}）")
        except OSError as exc:
            why = exc.strerror or str(exc)
            return Say(f"broker unreachable ({why})", f"无法连接 MQ（{why}）")
        return None

    def _inspect(self, api: _Api, p: MqParams, metrics: dict[str, Metric],
                 findings: list[Finding]) -> None:
        vhost = urllib.parse.quote(p.vhost, safe="")
        code, _ = api.get("/api/health/checks/alarms")
        metrics["management_ok"] = code in (200, 503)
        if code == 401:
            findings.append((Status.UNKNOWN, Say(f"management API refused user {p.user}",
                                                 f"管理接口拒绝用户 {p.user}")))
            return
        if code == 503:
            findings.append((Status.CRITICAL, Say(
                "broker resource alarm: publishers are blocked",
                "MQ 资源告警：发送方已被阻塞")))
        for q in p.queues:
            code, data = api.get(f"/api/queues/{vhost}/{urllib.parse.quote(q.name, safe='')}")
            if code == 404:
                findings.append((Status.CRITICAL, Say(f"queue {q.name} does not exist",
                                                      f"队列 {q.name} 不存在")))
                continue
            depth = int(data.get("messages") or 0)
            consumers = int(data.get("consumers") or 0)
            stats = data.get("message_stats")
            publish = _rate(stats, "publish")
            deliver = _rate(stats, "deliver_get")
            growth = _rate(data, "messages")
            m = q.name
            metrics.update({
                f"depth:{m}": depth, f"ready:{m}": int(data.get("messages_ready") or 0),
                f"unacked:{m}": int(data.get("messages_unacknowledged") or 0),
                f"consumers:{m}": consumers, f"publish_rate:{m}": publish,
                f"deliver_rate:{m}": deliver, f"depth_rate:{m}": growth,
            })
            if consumers < q.min_consumers:
                findings.append((Status.CRITICAL, Say(
                    f"queue {m}: {consumers} consumers (needs {q.min_consumers}), "
                    f"{depth} messages waiting",
                    f"队列 {m} 无人接收：消费者 {consumers} 个（至少 {q.min_consumers} 个），"
                    f"{depth} 条消息积压")))
            elif depth > 0 and growth > 0 and deliver == 0:
                findings.append((Status.CRITICAL, Say(
                    f"queue {m} jammed: depth {depth} growing {growth:.1f}/s, nothing "
                    "delivered — stop sending (P4.3.1(1))",
                    f"队列 {m} 堵塞：积压 {depth} 条且每秒增加 {growth:.1f} 条，无投递——"
                    "通知各方停止发送 MQ 数据（P4.3.1(1)）")))
            if depth >= q.depth_warning:
                findings.append((Status.CRITICAL if depth >= q.depth_critical else Status.WARNING,
                                 Say(f"queue {m} depth {depth}", f"队列 {m} 积压 {depth} 条")))
        for u in p.parties:
            code, perm = api.get(f"/api/permissions/{vhost}/{urllib.parse.quote(u.user)}")
            paused = code == 200 and perm.get("write") == PAUSED
            metrics[f"sending_paused:{u.party}"] = paused
