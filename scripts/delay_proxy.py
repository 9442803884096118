#!/usr/bin/env python3
"""A delay line for TCP, for kernels without `tc netem` (scripts/netem_shards.sh falls back to
it): listens on LISTEN_HOST:PORT for each PORT given and forwards to TARGET_HOST:PORT, holding
every chunk DELAY_MS in each direction (and, with RATE_BPS, pacing each direction to that many
bytes per second). Order within a direction is kept. Stops when its parent process is gone.

    delay_proxy.py LISTEN_HOST TARGET_HOST DELAY_MS RATE_BPS PORT [PORT ...]
"""
import asyncio
import os
import signal
import sys


async def pump(reader, writer, delay, rate):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    free_at = 0.0  # when the paced link is free again

    async def release():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(release())
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            now = loop.time()
            if rate > 0:
                free_at = max(free_at, now) + len(data) / rate
                due = free_at + delay
            else:
                due = now + delay
            queue.put_nowait((due, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def main():
    # A SIGTERM ignored by whoever started us would otherwise be ignored here too.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    listen_host, target_host, delay_ms, rate, *ports = sys.argv[1:]
    delay, rate = float(delay_ms) / 1000, float(rate)
    parent = os.getppid()

    def serve(port):
        async def handle(client_reader, client_writer):
            try:
                server_reader, server_writer = await asyncio.open_connection(target_host, port)
            except OSError:
                client_writer.close()
                return
            for sock in (client_writer, server_writer):
                s = sock.get_extra_info("socket")
                if s is not None:
                    import socket
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(pump(client_reader, server_writer, delay, rate), pump(server_reader, client_writer, delay, rate))
        return asyncio.start_server(handle, listen_host, port)

    servers = [await serve(int(p)) for p in ports]
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
