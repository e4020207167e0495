"""A fast local webhook receiver for bench/delivery.py (127.0.0.1 only).

asyncio, HTTP/1.1 keep-alive, answers 200 at once and notes the receipt time
of every request by its ``webhook-id`` header (the baseline sends one too).
``GET /dump`` returns {id: [first receipt time, count]}; ``GET /reset`` clears.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

RECEIVED: dict[str, list] = {}


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
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
