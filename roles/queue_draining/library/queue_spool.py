#!/usr/bin/python
"""Ansible module: drain a jammed RabbitMQ queue to a durable spool, and replay it in order.

Spooling takes no message off the queue before it is on disc: the spool is written and
fsynced, then the messages are acknowledged, then the spool is named final. Replaying
publishes with publisher confirms and records its progress, so a rerun resumes instead of
sending twice. Needs pika on the host it runs on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: queue_spool
short_description: Spool a queue's messages to disc with their properties, or replay them
options:
  url: {description: AMQP URL with the vhost, type: str, required: true, no_log: true}
  queue: {description: The queue, type: str, required: true}
  spool_dir: {description: Folder of the spool files, type: path, required: true}
  state: {description: spooled or replayed, type: str, choices: [spooled, replayed]}
  require_consumers: {description: Replay only once the queue has consumers, type: bool}
  only_jammed: {description: Spool only a queue without consumers, type: bool}
  wait_consumers: {description: Seconds to wait for them, type: int}
"""

PROPERTIES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
              "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
              "user_id", "app_id", "cluster_id")


def _connect(url: str) -> Any:
    import pika  # imported here so a missing pika is a clear module failure, not a trace

    return pika.BlockingConnection(pika.URLParameters(url))


def _depth(channel: Any, queue: str) -> tuple[int, int]:
    ok = channel.queue_declare(queue, passive=True).method
    return ok.message_count, ok.consumer_count


def _record(seq: int, method: Any, props: Any, body: bytes) -> dict[str, Any]:
    return {"seq": seq, "exchange": method.exchange, "routing_key": method.routing_key,
            "redelivered": method.redelivered,
            "properties": {k: getattr(props, k) for k in PROPERTIES
                           if getattr(props, k) is not None},
            "body": base64.b64encode(body).decode(), "sha256": hashlib.sha256(body).hexdigest()}


def _spool_files(folder: Path, suffix: str) -> list[Path]:
    return sorted(folder.glob(f"*{suffix}"))  # names are timestamps: sorted is spool order


def spool(module: AnsibleModule, folder: Path, queue: str) -> dict[str, Any]:
    stale = _spool_files(folder, ".jsonl.part")
    if stale:
        # Written, maybe acknowledged, not named final: only a person can tell which.
        module.fail_json(msg=f"an interrupted spool of {queue} is waiting for a person to check "
                             f"it against the queue: {', '.join(map(str, stale))}")
    conn = _connect(module.params["url"])
    channel = conn.channel()
    before, consumers = _depth(channel, queue)
    result: dict[str, Any] = {"before": {"messages": before, "consumers": consumers}}
    if consumers and module.params["only_jammed"]:
        conn.close()
        return {**result, "changed": False, "spooled": 0, "skipped_reason": "has consumers"}
    if before == 0 or module.check_mode:
        conn.close()
        return {**result, "changed": before > 0, "spooled": before if module.check_mode else 0}
    name = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
    part = name.with_name(name.name + ".jsonl.part")
    last_tag, count = None, 0
    with part.open("w", encoding="utf-8") as out:
        while count < before:  # what was there when we looked: later arrivals stay queued
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            out.write(json.dumps(_record(count, method, props, body)) + "\n")
            last_tag, count = method.delivery_tag, count + 1
        out.write(json.dumps({"end": count}) + "\n")
        out.flush()
        os.fsync(out.fileno())
    channel.basic_ack(last_tag, multiple=True)
    after, _ = _depth(channel, queue)
    conn.close()
    final = name.with_name(name.name + ".jsonl")
    part.rename(final)
    return {**result, "changed": True, "spooled": count, "file": str(final),
            "after": {"messages": after}}


def _messages(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if not lines or lines[-1].get("end") != len(lines) - 1:
        raise ValueError(f"{path} is truncated: its end line does not count its messages")
    return lines[:-1]


def replay(module: AnsibleModule, folder: Path, queue: str) -> dict[str, Any]:
    import pika

    pending = _spool_files(folder, ".jsonl")
    if not pending:
        return {"changed": False, "replayed": 0}
    if module.check_mode:
        return {"changed": True, "replayed": sum(len(_messages(p)) for p in pending)}
    conn = _connect(module.params["url"])
    channel = conn.channel()
    channel.confirm_delivery()
    deadline = time.monotonic() + module.params["wait_consumers"]
    while module.params["require_consumers"] and _depth(channel, queue)[1] == 0:
        if time.monotonic() > deadline:
            conn.close()
            module.fail_json(msg=f"{queue} still has no consumer after "
                                 f"{module.params['wait_consumers']} s: nothing replayed")
        time.sleep(1)
    replayed, files = 0, []
    for path in pending:
        progress = path.with_suffix(".progress")
        done = int(progress.read_text()) if progress.exists() else 0
        messages = _messages(path)
        for message in messages[done:]:
            body = base64.b64decode(message["body"])
            if hashlib.sha256(body).hexdigest() != message["sha256"]:
                module.fail_json(msg=f"{path}: message {message['seq']} does not match its digest")
            props = pika.BasicProperties(**message["properties"])
            channel.basic_publish("", queue, body, props, mandatory=True)  # confirmed or raises
            done += 1
            progress.write_text(str(done))
        replayed += len(messages)
        path.rename(path.with_suffix(".replayed"))
        progress.unlink(missing_ok=True)
        files.append(str(path))
    conn.close()
    return {"changed": True, "replayed": replayed, "files": files}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"url": {"type": "str", "required": True, "no_log": True},
                       "queue": {"type": "str", "required": True},
                       "spool_dir": {"type": "path", "required": True},
                       "state": {"type": "str", "default": "spooled",
                                 "choices": ["spooled", "replayed"]},
                       "require_consumers": {"type": "bool", "default": True},
                       "only_jammed": {"type": "bool", "default": True},
                       "wait_consumers": {"type": "int", "default": 60}},
        supports_check_mode=True)
    queue = module.params["queue"]
    folder = Path(module.params["spool_dir"]) / queue  # one folder a queue, in spool order
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if module.params["state"] == "spooled":
            result = spool(module, folder, queue)
        else:
            result = replay(module, folder, queue)
    except ImportError:
        module.fail_json(msg="queue_spool needs the pika library on the host it runs on")
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # a broker error is a failed task, not a trace
        module.fail_json(msg=f"{queue}: {type(exc).__name__}: {exc}")
    module.exit_json(queue=queue, **result)


if __name__ == "__main__":
    main()
