"""Loopback targets for the check-cycle benchmark: N ports, half plain TCP, half HTTP.

Run as its own process (`python -m bench.targets BASE N`) so the targets' work is not
counted in the measured process.
"""

from __future__ import annotations

import asyncio
import sys

HTTP_REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
              b"Connection: close\r\n\r\nOK\n")


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HTTP_REPLY)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _tcp(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def main(base: int, count: int) -> None:
    servers = []
    for i in range(count):
        handler = _http if i % 2 else _tcp
        servers.append(await asyncio.start_server(handler, "127.0.0.1", base + i, backlog=256))
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
