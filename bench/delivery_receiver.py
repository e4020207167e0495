"""A fast local webhook receiver for bench/delivery.py (127.0.0.1 only).

asyncio, HTTP/1.1 keep-alive, answers 200 at once and notes the receipt time
of every request by its ``webhook-id`` header (the baseline sends one too).
``GET /dump`` returns {id: [first receipt time, count]}; ``GET /reset`` clears.
With ``--log FILE`` every receipt is also appended to FILE ("<time> <id>" per
line, written before the answer), so a receiver that is stopped and started
again (bench/faults.py) loses no record of what it received.

    delivery_receiver.py [PORT] [--log FILE] [--delay SECONDS]   (prints the port it listens on)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import TextIO

RECEIVED: dict[str, list] = {}
LOG: TextIO | None = None
DELAY = 0.0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            now = time.time()
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)
            body = b"ok"
            if path == "/dump":
                body = json.dumps(RECEIVED).encode()
            elif path == "/reset":
                RECEIVED.clear()
            else:
                key = headers.get("webhook-id", "")
                seen = RECEIVED.get(key)
                if seen is None:
                    RECEIVED[key] = [now, 1]
                else:
                    seen[1] += 1
                if LOG is not None:
                    LOG.write(f"{now:.6f} {key}\n")
                if DELAY:
                    await asyncio.sleep(DELAY)  # a slow receiver: requests stay in flight for a while
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Local webhook receiver (127.0.0.1).")
    parser.add_argument("port", type=int, nargs="?", default=0)
    parser.add_argument("--log", help="append '<time> <webhook-id>' per receipt to this file")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering a webhook")
    args = parser.parse_args()
    DELAY = args.delay
    if args.log:
        LOG = open(args.log, "a", buffering=1)  # noqa: SIM115 - line-buffered for the process's lifetime
    asyncio.run(main(args.port))
