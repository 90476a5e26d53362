#!/usr/bin/env python3
"""bench/gateway/hang.py PORT STATUS_FILE: an upstream that hangs.

Accepts every connection, reads whatever arrives and never answers, until the peer closes.
After every change it rewrites STATUS_FILE with one line:
    open=N requests=M connections=C
open: connections open now; requests: request heads received in all (a blank line seen);
connections: connections accepted in all. bench/run.sh's section [n] reads it to know that
the requests it holds reached this upstream, and that apikeyd let go of them afterwards.
"""
import asyncio
import os
import signal
import sys

PORT, STATUS = int(sys.argv[1]), sys.argv[2]
state = {"open": 0, "requests": 0, "connections": 0}


def publish():
    tmp = STATUS + ".tmp"
    with open(tmp, "w") as f:
        f.write("open=%(open)d requests=%(requests)d connections=%(connections)d\n" % state)
    os.replace(tmp, STATUS)


async def client(reader, writer):
    state["open"] += 1
    state["connections"] += 1
    publish()
    tail = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            tail += data
            state["requests"] += tail.count(b"\r\n\r\n")
            tail = tail[tail.rfind(b"\r\n\r\n") + 4:] if b"\r\n\r\n" in tail else tail[-3:]
            publish()
    except OSError:
        pass
    finally:
        state["open"] -= 1
        publish()
        writer.close()


async def main():
    server = await asyncio.start_server(client, "127.0.0.1", PORT, backlog=1024)
    publish()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


asyncio.run(main())
