"""Loopback targets for the check-cycle benchmark: N ports, half plain TCP, half HTTP.

Run as its own process (`python -m bench.targets BASE N`) so the targets' work is not
counted in the measured process. Port BASE-1 answers `GET /peak` with the most HTTP
requests the targets held open at once since the last ask: the concurrency a prober
really used, seen from the targets' side.
"""

from __future__ import annotations

import asyncio
import sys

HTTP_REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
              b"Connection: close\r\n\r\nOK\n")


class Gauge:
    now = peak = 0


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    Gauge.now += 1
    Gauge.peak = max(Gauge.peak, Gauge.now)
    try:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0)  # let every connection already accepted be counted
        writer.write(HTTP_REPLY)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        Gauge.now -= 1
        writer.close()


async def _peak(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    body = f"{Gauge.peak}\n".encode()
    Gauge.peak = 0
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                 % len(body) + body)
    await writer.drain()
    writer.close()


async def _tcp(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def main(base: int, count: int) -> None:
    servers = [await asyncio.start_server(_peak, "127.0.0.1", base - 1)]
    for i in range(count):
        handler = _http if i % 2 else _tcp
        servers.append(await asyncio.start_server(handler, "127.0.0.1", base + i, backlog=256))
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
