#!/usr/bin/env python3
"""bench/gateway/hold.py PORT PATH KEY N: N requests that wait.

Opens N connections to 127.0.0.1:PORT, sends `GET PATH` with `Authorization: Bearer KEY` on
each, prints `sent N` and then waits, reading, until SIGTERM. Then it prints
    held=H answered=A closed=C
H: connections that got nothing back; A: connections that got any answer (the first line of
each goes to stderr); C: connections the server closed without answering. For bench/run.sh's
section [n]: the requests stuck on a hanging route while another route is measured.
"""
import asyncio
import signal
import sys

PORT, PATH, KEY, N = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
REQ = ("GET %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n\r\n" % (PATH, KEY)).encode()
answered, closed = [], [0]


async def one(i):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    writer.write(REQ)
    await writer.drain()
    return reader, writer


async def watch(reader):
    try:
        data = await reader.read(4096)
    except OSError:
        data = b""
    if data:
        answered.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
    else:
        closed[0] += 1


async def main():
    conns = await asyncio.gather(*(one(i) for i in range(N)))
    print("sent %d" % N, flush=True)
    watchers = [asyncio.ensure_future(watch(r)) for r, _ in conns]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    done = sum(1 for w in watchers if w.done())
    for w in watchers:
        w.cancel()
    for _, w in conns:
        w.close()
    print("held=%d answered=%d closed=%d" % (N - done, len(answered), closed[0]), flush=True)
    for line in sorted(set(answered)):
        print("answer: %s (x%d)" % (line, answered.count(line)), file=sys.stderr)


asyncio.run(main())
